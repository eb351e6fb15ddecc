# GroupViT's evaluation (NVlabs/GroupViT @ 13b7861: configs/default.yml,
# datasets/imagenet_template.py, segmentation/configs/_base_/datasets/*.py,
# segmentation/evaluation/group_vit_seg.py). Resize, windows, template and thresholds are
# GroupViT's; unset fields are the defaults (ovseg_bench/protocol.py: sliding windows, the
# 2048 bound of img_scale=(2048, S), no area rule, no PAMR). Not label for label
# (docs/protocol.md): GroupViT decides background inside each window on its group-text
# probabilities (softmax over classes at its learned scale, capped at 100), before windows
# are averaged; here on the averaged, resized logits.
protocol = dict(
    name='groupvit',
    short_side=448,           # datasets/*.py: img_scale=(2048, 448), Resize(keep_ratio=True)
    crop=448,                 # ... test_cfg mode='slide', crop_size=(448, 448)
    stride=224,               # ... stride=(224, 224)
    window_pad='none',        # mmseg slide_inference: windows are not padded
    templates='single',       # default.yml evaluate.seg.template: simple ('a photo of a {}.')
    logit_scale=100.0,        # group_vit_seg.py: logit_scale.exp() clamped at 100
    per_dataset=dict(
        voc21=dict(bg_threshold=0.95),         # pascal_voc12.py: test_cfg bg_thresh=.95
        context60=dict(bg_threshold=0.35),     # pascal_context.py: bg_thresh=.35
        coco_object=dict(bg_threshold=0.95),   # coco.py: bg_thresh=.95
    ),
)
datasets = ['voc21', 'context60', 'coco_object']
