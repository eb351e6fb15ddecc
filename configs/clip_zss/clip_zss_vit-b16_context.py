# CLIP-ZSS as in the paper's PASCAL Context setting, for users with the real data and CLIP
# ViT-B/16 weights (and, realistically, a GPU): 49 seen / 10 unseen of the 59 classes
# (the ZegCLIP line's split, configs/_base_/zero_shot/splits.py; for ZS3Net's, name
# ../_base_/zero_shot/context59_zs3net.py as the split base instead), 512x512 crops, batch
# 16, 40k iterations.
#   ovseg-bench train configs/clip_zss/clip_zss_vit-b16_context.py \
#       --cfg-options backbone.pretrained=/path/to/ViT-B-16.pt
#   ovseg-bench test configs/clip_zss/clip_zss_vit-b16_context.py \
#       --checkpoint work_dirs/clip_zss_vit-b16_context/head.pt
# Not run here (no real data or weights on these machines). Schedule: the paper compares
# with ZegCLIP under ZegCLIP's inductive protocol; its iterations (VOC 20k, COCO-Stuff 80k,
# Context 40k), batch 16, 512 crops, AdamW at 2e-5 with 1500 warm-up iterations are used.
_base_ = ['../_base_/backbones/vit_b16.py', '../_base_/zero_shot/splits.py']

method = dict(
    type='CLIPZSS',
    train_dataset='context59',
    unseen_classes={{_base_.zero_shot_splits.context59}},
    # The encoder: a trainable copy of CLIP's ViT-B/16 image tower (the benchmark's rule).
    # The paper's convnet alternative through mmseg (DeepLabV3+, ResNet-101), e.g.:
    #   encoder=dict(type='mmseg',
    #       backbone=dict(type='ResNetV1c', depth=101, num_stages=4, out_indices=(0, 1, 2, 3),
    #                     dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1), contract_dilation=True,
    #                     norm_cfg=dict(type='BN', requires_grad=True), style='pytorch',
    #                     init_cfg=dict(type='Pretrained', checkpoint='/path/to/r101.pth')),
    #       decode_head=dict(type='DepthwiseSeparableASPPHead', in_channels=2048, in_index=3,
    #                        channels=512, dilations=(1, 12, 24, 36), c1_in_channels=256,
    #                        c1_channels=48, dropout_ratio=0.1,
    #                        norm_cfg=dict(type='BN', requires_grad=True), align_corners=False)),
    encoder=dict(type='clip_vit', last_block='std'),
    templates='imagenet80',
    use_glm=True, use_plm=True,
    teacher_last_block='value',
    queue_size=4096, glm_temperature=0.07,
    seed_windows=(16, 8, 4), kmeans_iters=10,    # K = 4, 16, 64 on a 512 crop's 32x32 tokens
    fusion_threshold=0.9, pseudo_min_ignore=0.5, max_pseudo=32,
    synthesizer_heads=8,
    loss_weights=dict(glm=1.0, ce=1.0, focal=100.0, dice=1.0, bce=1.0))

train_data = dict(
    type='NamedSplit', name='context59', split='train',
    pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='IgnoreUnseenClasses', dataset='context59',
             unseen={{_base_.zero_shot_splits.context59}}),
        dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
        dict(type='RandomCrop', crop_size=(512, 512), cat_max_ratio=0.75),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PhotoMetricDistortion'),
        dict(type='PackImageInfo'),                 # image id (memory bank), unpadded size
        dict(type='Pad', size=(512, 512)),          # ignore (255) in the padded labels
        dict(type='ToTensorRGB'),
    ])

train = dict(iters=40000, batch_size=16, num_workers=4, lr=2e-5, weight_decay=0.01,
             warmup_iters=1500, grad_clip=1.0, seed=0, log_interval=50,
             checkpoint_interval=4000, max_keep_ckpts=2)
work_dir = 'work_dirs/clip_zss_vit-b16_context'

# ZegCLIP's test setting: short side 512, 512 windows at stride 426.
protocol = dict(name='zs_512', short_side=512, mode='slide', crop=512, stride=426,
                templates='imagenet80', logit_scale=100.0, bg_threshold=0.0,
                postprocess='none', window_batch=16, batch_size=1, num_workers=4)
datasets = ['context59']
unseen_classes = {{_base_.zero_shot_splits}}
