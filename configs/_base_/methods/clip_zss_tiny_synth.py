# CLIP-ZSS on the embedded default, what its configs share (configs/clip_zss/
# clip_zss_tiny_synth.py, the default; clip_zss_mit_b0_synth.py, the paper's kind of encoder):
# the tiny CLIP as the frozen teacher and text encoder, trained on the seen-class masks of
# synth_coco's train split; each config fills in the split (configs/_base_/zero_shot).
method = dict(
    type='CLIPZSS',
    train_dataset='synth_coco',            # its classes fix the label order
    # The encoder: a trainable copy of the tiny CLIP's image tower. The paper's encoders are
    # closed-set segmenters initialised on ImageNet, which these machines do not have; a
    # randomly initialised SegFormer MiT-B0 transfers less to the unseen classes here
    # (clip_zss_mit_b0_synth.py, docs/methods/clip_zss.md).
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
# unseen pixels set to ignore first (IgnoreUnseenClasses, filled in by each config); mmseg's
# augmentation at the synthetic images' scale, 64 px crops (the tiny CLIP's size).
train_data = dict(
    type='NamedSplit', name='synth_coco', split='train',
    pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='IgnoreUnseenClasses'),
        dict(type='RandomResize', scale=(128, 96), ratio_range=(0.75, 1.5), keep_ratio=True),
        dict(type='RandomCrop', crop_size=(64, 64), cat_max_ratio=0.75),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PhotoMetricDistortion'),
        dict(type='PackImageInfo'),               # image id (memory bank), unpadded size
        dict(type='ToTensorRGB'),
    ])

# AdamW as mmseg trains transformer segmenters (lr 1e-4, weight decay 0.01), warm-up then
# cosine; the teacher is frozen, so every trainable parameter is the head's. 500 steps of 16
# (~27 epochs of the 300 masks; the schedule's cost: docs/measurements.md).
train = dict(iters=500, batch_size=16, num_workers=2, lr=1e-4, weight_decay=0.01,
             warmup_iters=25, grad_clip=1.0, seed=0, log_interval=50,
             checkpoint_interval=500, max_keep_ckpts=1)
