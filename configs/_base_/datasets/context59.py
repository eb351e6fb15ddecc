# Same files as context60; reduce_zero_label turns background into ignore (255).
dataset = dict(
    name='context59',
    description='Pascal Context val without background: 59 classes',
    vocabulary='context59',
    has_background=False,
    root='data',
    subdir='VOCdevkit/VOC2010',
    prepare='ovseg-bench prepare context59 --src RAW --out data',
    eval=dict(type='PascalContextDataset59',
              data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassContext'),
              ann_file='ImageSets/SegmentationContext/val.txt'),
    train=dict(type='PascalContextDataset59',
               data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassContext'),
               ann_file='ImageSets/SegmentationContext/train.txt'),
)
