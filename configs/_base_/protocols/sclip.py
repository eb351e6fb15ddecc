# The SCLIP protocol (Wang et al., arXiv 2312.01597; official repo configs), the common
# training-free setting also used by ClearCLIP and NACLIP: short side 336, sliding windows of
# 224 every 112, the 80 ImageNet templates, no post-processing. Datasets with a background
# class set it by a probability threshold (0.1), each with its own softmax temperature; on
# VOC21 classes covering at most 10% of the image's non-background prediction are dropped.
# The per-dataset values are SCLIP's own and are recorded in every result row.
protocol = dict(
    name='sclip',
    short_side=336,
    mode='slide',
    crop=224,
    stride=112,
    templates='imagenet80',
    logit_scale=40.0,
    bg_threshold=0.0,
    area_threshold=0.0,
    postprocess='none',
    per_dataset=dict(
        voc21=dict(logit_scale=65.0, bg_threshold=0.1, area_threshold=0.1),
        context60=dict(logit_scale=50.0, bg_threshold=0.1),
        coco_object=dict(logit_scale=50.0, bg_threshold=0.1),
    ),
)
datasets = ['voc21', 'context60', 'coco_object', 'voc20', 'context59', 'coco_stuff171',
            'ade150']
