# *_labelTrainIds.png from mmseg's converter (0..170, 255 unlabelled).
dataset = dict(
    name='coco_stuff171',
    description='COCO-Stuff 164k val2017: 171 classes (80 things + 91 stuff)',
    vocabulary='coco_stuff171',
    has_background=False,
    root='data',
    subdir='coco_stuff164k',
    prepare='ovseg-bench prepare coco_stuff171 --src RAW --out data',
    eval=dict(type='COCOStuffDataset',
              data_prefix=dict(img_path='images/val2017', seg_map_path='annotations/val2017')),
    train=dict(type='COCOStuffDataset',
               data_prefix=dict(img_path='images/train2017',
                                seg_map_path='annotations/train2017')),
)
