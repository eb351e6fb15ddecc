# 60-style: background (0) is the unlabelled stuff class ("wood"), as in Context.
dataset = dict(
    name='synth_context',
    description='Synthetic world, Pascal Context layout: background + 8 things + 5 stuff',
    vocabulary='synth_context',
    has_background=True,
    root='data/synth',
    subdir='VOCdevkit/VOC2010',
    prepare='ovseg-bench make-synthetic --out data/synth',
    eval=dict(type='SynthContextDataset',
              data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassContext'),
              ann_file='ImageSets/SegmentationContext/val.txt'),
    train=dict(type='SynthContextDataset',
               data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassContext'),
               ann_file='ImageSets/SegmentationContext/train.txt'),
)
