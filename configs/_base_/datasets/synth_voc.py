# Background (0) is every stuff pixel; 255 void borders around objects are ignored.
dataset = dict(
    name='synth_voc',
    description='Synthetic world, PASCAL VOC 2012 layout: background + 8 things',
    vocabulary='synth_voc',
    has_background=True,
    root='data/synth',
    subdir='VOCdevkit/VOC2012',
    prepare='ovseg-bench make-synthetic --out data/synth',
    eval=dict(type='SynthVOCDataset',
              data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
              ann_file='ImageSets/Segmentation/val.txt'),
    train=dict(type='SynthVOCDataset',
               data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
               ann_file='ImageSets/Segmentation/train.txt'),
)
