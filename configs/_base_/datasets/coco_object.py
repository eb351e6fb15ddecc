# *_instanceTrainIds.png beside COCO-Stuff's masks (0 background, 1..80, 255 ignore).
dataset = dict(
    name='coco_object',
    description='COCO-Object val2017: background + 80 things (81 classes)',
    vocabulary='coco_object',
    has_background=True,
    root='data',
    subdir='coco_stuff164k',
    prepare='ovseg-bench prepare coco_object --src RAW --out data',
    eval=dict(type='COCOObjectDataset',
              data_prefix=dict(img_path='images/val2017', seg_map_path='annotations/val2017')),
    train=dict(type='COCOObjectDataset',
               data_prefix=dict(img_path='images/train2017',
                                seg_map_path='annotations/train2017')),
)
