# 1,449 val images; background (0) has no text: decided by the protocol's threshold.
dataset = dict(
    name='voc21',
    description='PASCAL VOC 2012 val with background: 21 classes',
    vocabulary='voc21',
    has_background=True,
    root='data',
    subdir='VOCdevkit/VOC2012',
    prepare='ovseg-bench prepare voc21 --src RAW --out data',
    eval=dict(type='PascalVOCDataset',
              data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
              ann_file='ImageSets/Segmentation/val.txt'),
    train=dict(type='PascalVOCDataset',
               data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
               ann_file='ImageSets/Segmentation/train.txt'),
)
