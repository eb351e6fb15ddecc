# TCL's evaluation (kakaobrain/tcl @ bc2b551: configs/eval.yml, configs/default.yml,
# datasets/templates.py, segmentation/configs/_base_/datasets/*.py,
# segmentation/evaluation/tcl_seg.py, models/tcl/tcl.py, models/tcl/pamr.py), built on
# GroupViT's (groupvit.py: img_scale=(2048, 448), slide 448/224 without padding, CLIP's
# learned scale capped at 100) with its own templates, PAMR and threshold.
# Not reproduced label for label (docs/protocol.md): TCL refines its masks with PAMR inside
# each window at mask resolution, and thresholds its own sigmoid mask scores against a
# constant background channel; here PAMR runs once at the original size and the threshold
# reads the softmax probability at `logit_scale`.
_base_ = ['./groupvit.py']
protocol = dict(
    name='tcl',
    templates='tcl',          # eval.yml template: custom = sub_imagenet_template + 2 (9)
    postprocess='pamr',       # eval.yml: pamr: true
    pamr_steps=10,            # tcl.py apply_pamr: pamr_iter = 10
    pamr_dilations=(1, 2, 4, 8, 12, 24),  # tcl.py apply_pamr: pamr_kernel
    per_dataset=dict(
        voc21=dict(bg_threshold=0.4),          # eval.yml: bg_thresh: 0.4 (0.5 without PAMR,
        context60=dict(bg_threshold=0.4),      # default.yml); one value for every dataset
        coco_object=dict(bg_threshold=0.4),    # with a background class
    ),
)
datasets = ['voc21', 'context60', 'coco_object', 'voc20', 'context59', 'coco_stuff171',
            'ade150']
