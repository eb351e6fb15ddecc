# 2,000 val images; 0 = "other" becomes ignore through reduce_zero_label.
dataset = dict(
    name='ade150',
    description='ADE20K (SceneParsing) val: 150 classes ("other" ignored)',
    vocabulary='ade150',
    has_background=False,
    root='data',
    subdir='ADEChallengeData2016',
    prepare='ovseg-bench prepare ade150 --src RAW --out data',
    eval=dict(type='ADE20KDataset',
              data_prefix=dict(img_path='images/validation',
                               seg_map_path='annotations/validation')),
    train=dict(type='ADE20KDataset',
               data_prefix=dict(img_path='images/training', seg_map_path='annotations/training')),
)
