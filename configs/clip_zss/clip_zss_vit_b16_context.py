# CLIP-ZSS as in the paper's PASCAL Context setting, for users with the real data and CLIP
# ViT-B/16 weights (and, realistically, a GPU): 49 seen / 10 unseen of the 59 classes (the
# ZegCLIP line's split, configs/_base_/zero_shot/splits.py; for ZS3Net's, name
# ../_base_/zero_shot/context59_zs3net.py as the split base instead), ZegCLIP's 40k
# iterations; what the paper configs share is configs/_base_/methods/clip_zss_vit_b16.py.
#   ovseg-bench train configs/clip_zss/clip_zss_vit_b16_context.py \
#       --cfg-options backbone.pretrained=/path/to/ViT-B-16.pt \
#       method.encoder.pretrained=/path/to/mit_b5.pth
#   ovseg-bench test configs/clip_zss/clip_zss_vit_b16_context.py \
#       --checkpoint work_dirs/clip_zss_vit_b16_context/head.pt
# Not run here (no real data or weights on these machines).
_base_ = ['../_base_/backbones/vit_b16.py', '../_base_/zero_shot/splits.py',
          '../_base_/methods/clip_zss_vit_b16.py']
_unseen = {{_base_.zero_shot_splits.context59}}

method = dict(train_dataset='context59', unseen_classes=_unseen)
train_data = dict(name='context59', pipeline=[
    dict(t, dataset='context59', unseen=_unseen) if t.type == 'IgnoreUnseenClasses' else t
    for t in _base_.train_data.pipeline])
train = dict(iters=40000, checkpoint_interval=4000)
work_dir = 'work_dirs/clip_zss_vit_b16_context'
datasets = ['context59']
unseen_classes = {{_base_.zero_shot_splits}}
