# PACL on the embedded default: the project's pretrained tiny CLIP, frozen, with the vision
# embedder trained on the synthetic captions; the four synthetic datasets.
# A few minutes on 2 CPU cores.
#   ovseg-bench train configs/pacl/pacl_tiny_synth.py
#   ovseg-bench test configs/pacl/pacl_tiny_synth.py \
#       --checkpoint work_dirs/pacl_tiny_synth/head.pt
# Untrained embedders (identity init: frozen CLIP's own patch-text alignment):
#   ovseg-bench test configs/pacl/pacl_tiny_synth.py
_base_ = ['../_base_/backbones/tiny_synth.py', '../_base_/protocols/synth.py']

method = dict(
    type='PACL',
    text_embedder='identity',   # the paper trains e_v only
    activation='relu',          # MLP path Linear-ReLU-Linear, hidden width = embed width
    embed_input='joint',        # patch tokens after ln_post + projection (the paper reads them
                                # before the projection): lets the embedders start as the
                                # identity, so the untrained PACL is frozen CLIP
    init='identity',
    patch_temperature=0.1,      # softmax of 10 x cosine: the paper's plain softmax (1.0) is
                                # near uniform over the tiny CLIP's 64 patches (measurements
                                # in docs/methods/pacl.md)
    learn_logit_scale=True,     # contrastive temperature learned, from the frozen CLIP's
    last_block='std')           # patch tokens: standard last block

# Random resized crops of 0.6-1 of the image at the tiny CLIP's 64 px (the crop range the
# tiny CLIP was pretrained with, so the caption still describes the crop); flips.
train_data = dict(
    type='CocoCaptionDataset', data_root='data/synth/coco',
    ann_file='annotations/captions_train2017.json', img_dir='train2017',
    pipeline=[
        dict(type='RandomResizedCropRGB', size=64, scale=(0.6, 1.0), flip_prob=0.5),
        dict(type='ToTensorRGB'),
    ])

# The paper's optimiser as published (AdamW, lr 5e-4, weight decay 0.2, cosine) on a short
# schedule: 450 steps of 64, ~10 epochs of the 3000 synthetic caption images (what it
# reaches: docs/measurements.md#methods-on-the-tiny-clip). The CLIP encoders are frozen (no
# parameter of theirs is optimised; backbone_lr_mult unused).
train = dict(iters=450, batch_size=64, lr=5e-4, weight_decay=0.2, betas=(0.9, 0.98),
             warmup_iters=35, backbone_lr_mult=0.0, grad_clip=1.0, num_workers=1,
             log_interval=25, checkpoint_interval=450, max_keep_ckpts=1, seed=0)
work_dir = 'work_dirs/pacl_tiny_synth'

# Held-out check at the end: zero-shot classification of the validation images over the 8
# thing classes, scored with PACL's own compatibility (PACL.classify).
zeroshot = dict(
    ann_file='data/synth/coco/annotations/captions_val2017.json',
    img_dir='data/synth/coco/val2017',
    templates='imagenet80')
