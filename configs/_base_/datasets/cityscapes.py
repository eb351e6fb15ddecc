# 500 val images (2048x1024), 19 classes as train ids (255: every other label), no background.
dataset = dict(
    name='cityscapes',
    description='Cityscapes val, fine annotations: 19 classes',
    vocabulary='cityscapes',
    has_background=False,
    root='data',
    subdir='cityscapes',
    prepare='ovseg-bench prepare cityscapes --src RAW --out data',
    eval=dict(type='CityscapesDataset',
              data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val')),
    train=dict(type='CityscapesDataset',
               data_prefix=dict(img_path='leftImg8bit/train', seg_map_path='gtFine/train')),
)
