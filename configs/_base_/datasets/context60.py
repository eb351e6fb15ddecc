# 5,105 val images, masks from mmseg's converter; background (0) has no text.
dataset = dict(
    name='context60',
    description='Pascal Context val with background: 60 classes',
    vocabulary='context60',
    has_background=True,
    root='data',
    subdir='VOCdevkit/VOC2010',
    prepare='ovseg-bench prepare context60 --src RAW --out data',
    eval=dict(type='PascalContextDataset',
              data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassContext'),
              ann_file='ImageSets/SegmentationContext/val.txt'),
    train=dict(type='PascalContextDataset',
               data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassContext'),
               ann_file='ImageSets/SegmentationContext/train.txt'),
)
