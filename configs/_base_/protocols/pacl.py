# PACL's evaluation (Mukhoti et al., CVPR 2023): no background class. Every dataset is scored
# over its object/stuff classes only (VOC20, Context59, COCO-Stuff 171, ADE20K 150: background
# or "other" pixels are ignored), so no threshold is involved. The paper does not state its
# resize and windows; the SCLIP protocol's (336, 224/112) are used, and recorded.
protocol = dict(
    name='pacl_nobg',
    short_side=336,
    mode='slide',
    crop=224,
    stride=112,
    templates='imagenet80',
    logit_scale=100.0,        # only read by thresholds; none here
    bg_threshold=0.0,
    area_threshold=0.0,
    postprocess='none',
)
datasets = ['voc20', 'context59', 'coco_stuff171', 'ade150']
