# Pretrains the project's tiny CLIP (open_clip `ovseg-tiny`: 64 px, patch 8, width 128,
# 4+4 layers) from scratch on the synthetic captions; the embedded default's backbone
# (configs/_base_/backbones/tiny_synth.py loads work_dirs/clip_tiny_synth/backbone.pt).
#   ovseg-bench make-synthetic && ovseg-bench train configs/clip/clip_tiny_synth.py
# Measured: 5.5 min wall on 2 CPU cores shared with another job (0.63 s/iteration), loss
# 4.1 -> 1.0; zero-shot stuff classification 100% (chance 34%), things at chance (28% vs 27%).
# As a segmentation method, CLIP is the naive dense baseline (patch tokens vs class text),
# evaluated with the protocol below.
_base_ = ['../_base_/protocols/synth.py']
backbone = dict(type='OpenCLIPBackbone', model='ovseg-tiny', pretrained=None)
method = dict(type='CLIP')
train_data = dict(
    type='CocoCaptionDataset',
    data_root='data/synth/coco',
    ann_file='annotations/captions_train2017.json',
    img_dir='train2017',
    # Crops from a third of the image (about a 64 px window at native scale, what the
    # sliding-window protocol shows the model) to the whole image.
    pipeline=[
        dict(type='RandomResizedCropRGB', size=64, scale=(0.3, 1.0), flip_prob=0.5),
        dict(type='ToTensorRGB'),
    ])
train = dict(
    iters=500, batch_size=64, num_workers=1,
    lr=1e-3, weight_decay=0.1, betas=(0.9, 0.98), warmup_iters=50,
    backbone_lr_mult=1.0,      # pretraining: the backbone is the whole model
    grad_clip=1.0, seed=0, log_interval=25, checkpoint_interval=250,
    cpu_threads=1)             # one compute thread + one data worker on 2 cores; more
                               # threads thrash as soon as another job shares the cores
work_dir = 'work_dirs/clip_tiny_synth'
# Held-out check at the end: zero-shot classification of the validation captions' images
# over the 8 thing classes, and over the 6 stuff classes (accuracy vs chance in the log,
# vis_data/scalars.json and work_dir/zeroshot.json).
zeroshot = dict(
    ann_file='data/synth/coco/annotations/captions_val2017.json',
    img_dir='data/synth/coco/val2017',
    templates='imagenet80')
