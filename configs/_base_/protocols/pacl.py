# PACL's evaluation (Mukhoti et al., CVPR 2023). No official code is public, so nothing here
# is reproduced from a harness: the paper scores every dataset over its object/stuff classes
# only (VOC20, Context59, COCO-Stuff 171, ADE20K 150: background or "other" pixels ignored),
# so no threshold is involved; it does not state its resize and windows, and SCLIP's
# (336, 224/112, sclip.py) are used and recorded, with the project's own vocabularies.
protocol = dict(
    name='pacl_nobg',
    short_side=336,           # not stated by PACL; SCLIP's
    max_long_side=2048,
    mode='slide',
    crop=224,                 # not stated by PACL; SCLIP's
    stride=112,
    templates='imagenet80',   # not stated by PACL; the 80 ImageNet templates
    logit_scale=100.0,        # only read by thresholds; none here
    bg_threshold=0.0,
    area_threshold=0.0,
    postprocess='none',
)
datasets = ['voc20', 'context59', 'coco_stuff171', 'ade150']
