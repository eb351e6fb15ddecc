# The SegCLIP protocol (Luo et al., ICML 2023; its evaluation follows GroupViT's code at
# SegCLIP's 224 px): short side 224, sliding windows of 224 every 224, background by a
# threshold on VOC (0.80), Pascal Context 60 (0.25) and COCO-Object (0.65), SegCLIP's values
# (the protocol column of its reference rows).
protocol = dict(
    name='segclip',
    short_side=224,
    mode='slide',
    crop=224,
    stride=224,
    templates='imagenet80',
    logit_scale=100.0,        # CLIP's own (learned, capped) temperature
    bg_threshold=0.0,
    area_threshold=0.0,
    postprocess='none',
    per_dataset=dict(
        voc21=dict(bg_threshold=0.80),
        context60=dict(bg_threshold=0.25),
        coco_object=dict(bg_threshold=0.65),
    ),
)
datasets = ['voc21', 'context60', 'coco_object']
