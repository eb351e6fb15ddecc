# Pretrains the project's tiny CLIP (open_clip `ovseg-tiny`: 64 px, patch 8, width 128, 4
# vision + 2 text layers, MLP ratio 2) from scratch on the synthetic captions; the embedded
# default's backbone (configs/_base_/backbones/tiny_synth.py loads
# work_dirs/clip_tiny_synth/backbone.pt).
#   ovseg-bench make-synthetic && ovseg-bench train configs/clip/clip_tiny_synth.py
# Each image is encoded from a random half of its patches (FLIP's masking). The architecture,
# the masking and the schedule, and what they reach on held-out images:
# docs/measurements.md#the-tiny-clip.
_base_ = ['../_base_/protocols/synth.py']
backbone = dict(type='OpenCLIPBackbone', model='ovseg-tiny', pretrained=None)
method = dict(type='CLIP', patch_dropout=0.5)   # FLIP: half the patches, training only
train_data = dict(
    type='CocoCaptionDataset',
    data_root='data/synth/coco',
    ann_file='annotations/captions_train2017.json',
    img_dir='train2017',
    # Crops from half the image to the whole image: smaller crops often cut away the
    # things a caption names.
    pipeline=[
        dict(type='RandomResizedCropRGB', size=64, scale=(0.5, 1.0), flip_prob=0.5),
        dict(type='ToTensorRGB'),
    ])
train = dict(
    iters=600, batch_size=64, num_workers=1,
    lr=1e-3, weight_decay=0.1, betas=(0.9, 0.98), warmup_iters=50,
    backbone_lr_mult=1.0,      # pretraining: the backbone is the whole model
    grad_clip=1.0, seed=0, log_interval=25, checkpoint_interval=600,
    cpu_threads=2)             # the 2 cores; the data worker mostly waits on a full queue
work_dir = 'work_dirs/clip_tiny_synth'
# Held-out check at the end: zero-shot classification of the validation captions' images
# over the 8 thing classes, and over the 6 stuff classes (accuracy vs chance in the log,
# vis_data/scalars.json and work_dir/zeroshot.json).
zeroshot = dict(
    ann_file='data/synth/coco/annotations/captions_val2017.json',
    img_dir='data/synth/coco/val2017',
    templates='imagenet80')
