# CLIP-ZSS as in the paper's COCO-Stuff 164k setting, for users with the real data and CLIP
# ViT-B/16 weights (and, realistically, a GPU): 156 seen / 15 unseen classes (SPNet split,
# configs/_base_/zero_shot/splits.py), ZegCLIP's 80k iterations; what the paper configs
# share is configs/_base_/methods/clip_zss_vit_b16.py.
#   ovseg-bench train configs/clip_zss/clip_zss_vit_b16_coco_stuff.py \
#       --cfg-options backbone.pretrained=/path/to/ViT-B-16.pt \
#       method.encoder.pretrained=/path/to/mit_b5.pth
#   ovseg-bench test configs/clip_zss/clip_zss_vit_b16_coco_stuff.py \
#       --checkpoint work_dirs/clip_zss_vit_b16_coco_stuff/head.pt
# Not run here (no real data or weights on these machines).
_base_ = ['../_base_/backbones/vit_b16.py', '../_base_/zero_shot/splits.py',
          '../_base_/methods/clip_zss_vit_b16.py']
_unseen = {{_base_.zero_shot_splits.coco_stuff171}}

method = dict(train_dataset='coco_stuff171', unseen_classes=_unseen)
train_data = dict(name='coco_stuff171', pipeline=[
    dict(t, dataset='coco_stuff171', unseen=_unseen) if t.type == 'IgnoreUnseenClasses' else t
    for t in _base_.train_data.pipeline])
train = dict(iters=80000, checkpoint_interval=8000)
work_dir = 'work_dirs/clip_zss_vit_b16_coco_stuff'
datasets = ['coco_stuff171']
unseen_classes = {{_base_.zero_shot_splits}}
