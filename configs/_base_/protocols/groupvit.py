# The GroupViT / TCL protocol (GroupViT's segmentation configs, reused by TCL): short side
# 448, sliding windows of 448 every 224. Background by a threshold on VOC (0.95), Pascal
# Context 60 (0.35) and COCO-Object (0.95), GroupViT's values. Their threshold is read here
# as our rule (max class probability at `logit_scale`), so resizing, windows and thresholds
# match, but a method's probabilities need not be calibrated like GroupViT's group scores.
# TCL also applies PAMR, which this preset does not (postprocess='none').
protocol = dict(
    name='groupvit',
    short_side=448,
    mode='slide',
    crop=448,
    stride=224,
    templates='imagenet80',
    logit_scale=100.0,        # CLIP's own (learned, capped) temperature
    bg_threshold=0.0,
    area_threshold=0.0,
    postprocess='none',
    per_dataset=dict(
        voc21=dict(bg_threshold=0.95),
        context60=dict(bg_threshold=0.35),
        coco_object=dict(bg_threshold=0.95),
    ),
)
datasets = ['voc21', 'context60', 'coco_object']
