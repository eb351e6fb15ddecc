# 2,000 val images of ADE20K-Full, 847 classes, 16-bit masks (65535: other).
dataset = dict(
    name='ade847',
    description='ADE20K-Full val: 847 classes (16-bit masks)',
    vocabulary='ade847',
    has_background=False,
    root='data',
    subdir='ADE20K_2021_17_01',
    prepare='ovseg-bench prepare ade847 --src RAW --out data',
    ignore_index=65535,
    load_annotations=dict(type='LoadWideAnnotations'),
    eval=dict(type='ADE20K847Dataset',
              data_prefix=dict(img_path='images_detectron2/validation',
                               seg_map_path='annotations_detectron2/validation')),
    train=dict(type='ADE20K847Dataset',
               data_prefix=dict(img_path='images_detectron2/training',
                                seg_map_path='annotations_detectron2/training')),
)
