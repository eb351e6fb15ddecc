# CLIP-ZSS as in the paper's PASCAL VOC 2012 setting, for users with the real data and CLIP
# ViT-B/16 weights (and, realistically, a GPU): 15 seen / 5 unseen classes, background
# ignored (configs/_base_/zero_shot/splits.py), ZegCLIP's 20k iterations; what the paper
# configs share is configs/_base_/methods/clip_zss_vit_b16.py.
# The voc20 train split is ImageSets/Segmentation/train.txt (1464 images); for the usual
# SBD-augmented 10582, point the split file at it (train_data has name/split/root only: copy
# configs/_base_/datasets/voc20.py to a new name with ann_file changed).
#   ovseg-bench train configs/clip_zss/clip_zss_vit_b16_voc.py \
#       --cfg-options backbone.pretrained=/path/to/ViT-B-16.pt \
#       method.encoder.pretrained=/path/to/mit_b5.pth
#   ovseg-bench test configs/clip_zss/clip_zss_vit_b16_voc.py \
#       --checkpoint work_dirs/clip_zss_vit_b16_voc/head.pt
# Not run here (no real data or weights on these machines).
_base_ = ['../_base_/backbones/vit_b16.py', '../_base_/zero_shot/splits.py',
          '../_base_/methods/clip_zss_vit_b16.py']
_unseen = {{_base_.zero_shot_splits.voc20}}

method = dict(train_dataset='voc20', unseen_classes=_unseen)
train_data = dict(name='voc20', pipeline=[
    dict(t, dataset='voc20', unseen=_unseen) if t.type == 'IgnoreUnseenClasses' else t
    for t in _base_.train_data.pipeline])
train = dict(iters=20000, checkpoint_interval=4000)
work_dir = 'work_dirs/clip_zss_vit_b16_voc'
datasets = ['voc20']
unseen_classes = {{_base_.zero_shot_splits}}
