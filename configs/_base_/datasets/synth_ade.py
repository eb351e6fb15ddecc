# 0 = "other" (the "sand" stuff) becomes ignore through reduce_zero_label.
dataset = dict(
    name='synth_ade',
    description='Synthetic world, ADE20K layout: 8 things + 5 stuff ("other" ignored)',
    vocabulary='synth_ade',
    has_background=False,
    root='data/synth',
    subdir='ADEChallengeData2016',
    prepare='ovseg-bench make-synthetic --out data/synth',
    eval=dict(type='SynthADEDataset',
              data_prefix=dict(img_path='images/validation',
                               seg_map_path='annotations/validation')),
    train=dict(type='SynthADEDataset',
               data_prefix=dict(img_path='images/training', seg_map_path='annotations/training')),
)
