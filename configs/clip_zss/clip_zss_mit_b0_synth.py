# CLIP-ZSS on the embedded default with the paper's kind of encoder: a closed-set SegFormer
# (mmseg's MiT-B0) instead of the default's copy of the tiny CLIP's image tower; otherwise the
# default's recipe (configs/_base_/methods/clip_zss_tiny_synth.py). Without ImageNet weights
# it transfers less to the unseen classes than the default's student (docs/methods/
# clip_zss.md). Not in the default matrix (its name does not end in _tiny_synth).
#   ovseg-bench train configs/clip_zss/clip_zss_mit_b0_synth.py
_base_ = ['../_base_/backbones/tiny_synth.py', '../_base_/protocols/synth.py',
          '../_base_/zero_shot/splits.py', '../_base_/methods/clip_zss_tiny_synth.py']
_unseen = {{_base_.zero_shot_splits.synth_coco}}

method = dict(
    unseen_classes=_unseen,
    # The encoder: SegFormer MiT-B0 (mmseg's segformer_mit-b0 backbone) with a SegformerHead
    # of 128 channels (mmseg's: 256; 128 keeps a training step near the CLIP-ViT student's
    # on 2 CPU cores). Random initialisation, stated: no ImageNet weights on these machines.
    encoder=dict(
        type='mmseg', pretrained=None,
        backbone=dict(type='MixVisionTransformer', in_channels=3, embed_dims=32, num_stages=4,
                      num_layers=[2, 2, 2, 2], num_heads=[1, 2, 5, 8],
                      patch_sizes=[7, 3, 3, 3], sr_ratios=[8, 4, 2, 1], out_indices=(0, 1, 2, 3),
                      mlp_ratio=4, qkv_bias=True, drop_rate=0.0, attn_drop_rate=0.0,
                      drop_path_rate=0.1),
        decode_head=dict(type='SegformerHead', in_channels=[32, 64, 160, 256],
                         in_index=[0, 1, 2, 3], channels=128, dropout_ratio=0.1,
                         norm_cfg=dict(type='BN', requires_grad=True), align_corners=False)),
)
train_data = dict(pipeline=[
    dict(t, dataset='synth_coco', unseen=_unseen) if t.type == 'IgnoreUnseenClasses' else t
    for t in _base_.train_data.pipeline])
work_dir = 'work_dirs/clip_zss_mit_b0_synth'
unseen_classes = {{_base_.zero_shot_splits}}
