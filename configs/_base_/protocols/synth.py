# Evaluation protocol of the embedded default (synthetic images are 128x96); unset fields are
# the defaults (ovseg_bench/protocol.py). Background is predicted through its own prompts
# (the synthetic vocabularies name it), so there is no threshold.
protocol = dict(
    name='synth',
    short_side=96,         # resize so the short side is 96 px
    crop=64,               # sliding windows of the tiny CLIP's pretraining size
    stride=32,
    logit_scale=50.0,      # softmax temperature
    batch_size=8,          # images per forward (all 128x96: stacked, 48 windows at once)
)
datasets = ['synth_voc', 'synth_context', 'synth_coco', 'synth_ade']
