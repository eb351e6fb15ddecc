# The SegCLIP protocol (Luo et al., ICML 2023): GroupViT's evaluation code (groupvit.py) at
# SegCLIP's 224 px -- short side 224, sliding windows of 224 every 224 -- with SegCLIP's
# background thresholds on VOC (0.80), Pascal Context 60 (0.25) and COCO-Object (0.65) (the
# protocol column of its reference rows).
_base_ = ['./groupvit.py']
protocol = dict(
    name='segclip',
    bg_rule='group_score',    # the background of GroupViT's evaluator (vit_seg.py): a group
                              # score below min(bg_threshold, the window's best)
    short_side=224,
    crop=224,
    stride=224,
    per_dataset=dict(
        voc21=dict(bg_threshold=0.80),
        context60=dict(bg_threshold=0.25),
        coco_object=dict(bg_threshold=0.65),
    ),
)
