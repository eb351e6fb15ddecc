# Same files as voc21; reduce_zero_label turns background into ignore (255).
dataset = dict(
    name='voc20',
    description='PASCAL VOC 2012 val without background: 20 classes',
    vocabulary='voc20',
    has_background=False,
    root='data',
    subdir='VOCdevkit/VOC2012',
    prepare='ovseg-bench prepare voc20 --src RAW --out data',
    eval=dict(type='PascalVOC20Dataset',
              data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
              ann_file='ImageSets/Segmentation/val.txt'),
    train=dict(type='PascalVOC20Dataset',
               data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
               ann_file='ImageSets/Segmentation/train.txt'),
)
