# SegCLIP's evaluation (ArrowLuo/SegCLIP @ df09ba2: seg_segmentation/default.yml,
# seg_segmentation/configs/_base_/datasets/*.py, seg_segmentation/evaluation/vit_seg.py):
# GroupViT's evaluation code (groupvit.py) at SegCLIP's 224 px. The protocol values are this
# file's; how SegCLIP's head computes its scores is the method's (methods/segclip.py).
_base_ = ['./groupvit.py']
protocol = dict(
    name='segclip',
    bg_rule='group_score',    # the background of GroupViT's evaluator (vit_seg.py): a group
                              # score below min(bg_threshold, the window's best)
    short_side=224,           # datasets/*.py: img_scale=(2048, 224)
    crop=224,                 # ... test_cfg crop_size=(224, 224)
    stride=224,               # ... stride=(224, 224)
    templates='single',       # default.yml evaluate.seg.template: simple ('a photo of a {}.')
    per_dataset=dict(
        voc21=dict(bg_threshold=0.80),         # pascal_voc12.py: bg_thresh=.80
        context60=dict(bg_threshold=0.25),     # pascal_context.py: bg_thresh=.25
        coco_object=dict(bg_threshold=0.65),   # coco.py: bg_thresh=.65
    ),
)
