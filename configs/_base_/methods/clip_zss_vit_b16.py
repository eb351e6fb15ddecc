# CLIP-ZSS at the paper's scale, what its per-dataset configs share (configs/clip_zss/
# clip_zss_vit_b16_{voc,context,coco_stuff}.py name the dataset, its split and its schedule).
# The paper compares with ZegCLIP under ZegCLIP's inductive protocol; its 512 crops, batch 16
# and AdamW at 2e-5 with 1500 warm-up iterations are used.
method = dict(
    type='CLIPZSS',
    # The encoder: a closed-set SegFormer (MiT-B5 + SegformerHead, mmseg's segformer_mit-b5
    # settings), ImageNet-initialised from mmseg's MiT-B5 checkpoint at `pretrained` (e.g.
    # mit_b5_20220624-658746d9.pth from mmseg's model zoo; None = random init). BN: use
    # SyncBN when training on several GPUs. CLIP is the teacher only. The CLIP-ViT student
    # (a trainable copy of CLIP's image tower) is a variant:
    #   --cfg-options method.encoder._delete_=True method.encoder.type=clip_vit
    encoder=dict(
        type='mmseg', pretrained='checkpoints/mit_b5.pth',
        backbone=dict(type='MixVisionTransformer', in_channels=3, embed_dims=64, num_stages=4,
                      num_layers=[3, 6, 40, 3], num_heads=[1, 2, 5, 8],
                      patch_sizes=[7, 3, 3, 3], sr_ratios=[8, 4, 2, 1], out_indices=(0, 1, 2, 3),
                      mlp_ratio=4, qkv_bias=True, drop_rate=0.0, attn_drop_rate=0.0,
                      drop_path_rate=0.1),
        decode_head=dict(type='SegformerHead', in_channels=[64, 128, 320, 512],
                         in_index=[0, 1, 2, 3], channels=768, dropout_ratio=0.1,
                         norm_cfg=dict(type='BN', requires_grad=True), align_corners=False)),
    templates='imagenet80',
    use_glm=True, use_plm=True,
    teacher_last_block='value',
    queue_size=4096, glm_temperature=0.07,
    seed_windows=(16, 8, 4), kmeans_iters=10,    # K = 4, 16, 64 on a 512 crop's 32x32 tokens
    fusion_threshold=0.9, pseudo_min_ignore=0.5, max_pseudo=32,
    synthesizer_heads=8,
    loss_weights=dict(glm=1.0, ce=1.0, focal=100.0, dice=1.0, bce=1.0))

# The seen-class masks of the dataset's train split; the per-dataset config names the dataset
# and fills in IgnoreUnseenClasses (unseen pixels -> ignore, right after the masks load).
train_data = dict(
    type='NamedSplit', split='train',
    pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='IgnoreUnseenClasses'),
        dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
        dict(type='RandomCrop', crop_size=(512, 512), cat_max_ratio=0.75),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PhotoMetricDistortion'),
        dict(type='PackImageInfo'),                 # image id (memory bank), unpadded size
        dict(type='Pad', size=(512, 512)),          # ignore (255) in the padded labels
        dict(type='ToTensorRGB'),
    ])

train = dict(batch_size=16, num_workers=4, lr=2e-5, weight_decay=0.01, warmup_iters=1500,
             grad_clip=1.0, seed=0, log_interval=50, max_keep_ckpts=2)

# ZegCLIP's test setting: short side 512, 512 windows at stride 426.
protocol = dict(name='zs_512', short_side=512, mode='slide', crop=512, stride=426,
                templates='imagenet80', logit_scale=100.0, bg_threshold=0.0,
                postprocess='none', window_batch=16, batch_size=1, num_workers=4)
