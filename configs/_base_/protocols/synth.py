# Evaluation protocol of the embedded default (synthetic images are 128x96).
# Every field is written into each result row.
protocol = dict(
    name='synth',
    short_side=96,         # resize so the short side is 96 px
    mode='slide',          # sliding window ...
    crop=64,               # ... of the tiny CLIP's pretraining size
    stride=32,
    templates='imagenet80',
    logit_scale=50.0,      # softmax temperature read by the background threshold
    bg_threshold=0.0,      # background is predicted through its own prompts (vocabulary)
    postprocess='none',
    window_batch=64,
    batch_size=8,          # images per forward (all 128x96: stacked, 48 windows at once)
    num_workers=2,
)
datasets = ['synth_voc', 'synth_context', 'synth_coco', 'synth_ade']
