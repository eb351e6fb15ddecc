# CLIP-ZSS on the embedded default, inductive generalized zero-shot: the project's pretrained
# tiny CLIP as the frozen teacher (and text encoder), a trainable copy of its image tower as
# the segmentation encoder, trained on the seen-class masks of synth_coco's train split
# (unseen: diamond, heart, sky -> ignore), evaluated on the four synthetic datasets with
# mIoU_seen / mIoU_unseen / hIoU. A few minutes on 2 CPU cores.
#   ovseg-bench train configs/clip_zss/clip_zss_tiny_synth.py
#   ovseg-bench test configs/clip_zss/clip_zss_tiny_synth.py \
#       --checkpoint work_dirs/clip_zss_tiny_synth/head.pt
# Ablations (same schedule): method.use_glm=False (no GLM), method.use_plm=False (no PLM),
# both (the supervised baseline: CE + NEL on the seen classes), e.g.
#   --cfg-options method.use_glm=False method.use_plm=False \
#       work_dir=work_dirs/clip_zss_tiny_synth_baseline
# The paper's kind of encoder (a closed-set SegFormer, here MiT-B0 from random weights):
#   configs/clip_zss/clip_zss_mit-b0_synth.py
_base_ = ['../_base_/backbones/tiny_synth.py', '../_base_/protocols/synth.py',
          '../_base_/zero_shot/splits.py']

method = dict(
    type='CLIPZSS',
    train_dataset='synth_coco',            # its classes fix the label order
    unseen_classes={{_base_.zero_shot_splits.synth_coco}},
    # The encoder: a trainable copy of the tiny CLIP's image tower. The paper's encoders are
    # closed-set segmenters initialised on ImageNet, which these machines do not have; a
    # randomly initialised SegFormer MiT-B0 learns the seen classes but never predicts an
    # unseen one here (clip_zss_mit-b0_synth.py, docs/methods/clip_zss.md).
    encoder=dict(type='clip_vit'),
    templates='imagenet80',                # seen-class text embeddings, as the protocol's
    use_glm=True,                          # Global Learning Module
    use_plm=True,                          # Pixel Learning Module
    teacher_last_block='value',            # teacher dense tokens (MaskCLIP's value path)
    queue_size=256,                        # GLM memory bank of CLIP class tokens
    glm_temperature=0.07,
    seed_windows=(4, 2),                   # K-means seeds: 4x4 / 2x2 window means of the
    kmeans_iters=10,                       # 8x8 token grid (K = 4 and 16)
    fusion_threshold=0.9,                  # mask fusion: cosine of the masks' mean tokens,
                                           # each mask used once
    pseudo_min_ignore=0.5,                 # a region mostly unannotated -> pseudo class
    max_pseudo=16,
    synthesizer_heads=4,
    detach_pseudo_weights=False,           # the pixel loss trains the synthesizer too
    # L_global + L_NEL (ZegCLIP's focal x100 + dice x1) + CE over the fused labels + L_bce
    loss_weights=dict(glm=1.0, ce=1.0, focal=100.0, dice=1.0, bce=1.0))

# Seen-class pixel labels: synth_coco's train split (COCO-Stuff layout, 8 things + 6 stuff),
# unseen pixels set to ignore first; mmseg's augmentation at the synthetic images' scale,
# 64 px crops (the tiny CLIP's size).
train_data = dict(
    type='NamedSplit', name='synth_coco', split='train',
    pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='IgnoreUnseenClasses', dataset='synth_coco',
             unseen={{_base_.zero_shot_splits.synth_coco}}),
        dict(type='RandomResize', scale=(128, 96), ratio_range=(0.75, 1.5), keep_ratio=True),
        dict(type='RandomCrop', crop_size=(64, 64), cat_max_ratio=0.75),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PhotoMetricDistortion'),
        dict(type='PackImageInfo'),               # image id (memory bank), unpadded size
        dict(type='ToTensorRGB'),
    ])

# AdamW as mmseg trains transformer segmenters (lr 1e-4, weight decay 0.01), warm-up then
# cosine; the teacher is frozen, so every trainable parameter is the head's. 500 steps of 16
# (~27 epochs of the 300 masks; 1000 before the default benchmark's 15-minute budget,
# docs/measurements.md).
train = dict(iters=500, batch_size=16, num_workers=2, lr=1e-4, weight_decay=0.01,
             warmup_iters=25, grad_clip=1.0, seed=0, log_interval=50,
             checkpoint_interval=500, max_keep_ckpts=1)
work_dir = 'work_dirs/clip_zss_tiny_synth'

# Evaluation: every synthetic dataset has a declared split (configs/_base_/zero_shot).
datasets = ['synth_coco', 'synth_context', 'synth_ade', 'synth_voc']
unseen_classes = {{_base_.zero_shot_splits}}
