# ViL-Seg on the embedded default: the project's pretrained tiny CLIP (both towers trained
# jointly), the synthetic captions, the four synthetic datasets. A few minutes on 2 CPU cores.
#   ovseg-bench train configs/vilseg/vilseg_tiny_synth.py
#   ovseg-bench test configs/vilseg/vilseg_tiny_synth.py \
#       --checkpoint work_dirs/vilseg_tiny_synth/head.pt
_base_ = ['../_base_/backbones/tiny_synth.py', '../_base_/protocols/synth.py']

method = dict(
    type='ViLSeg',
    num_clusters=16,          # C: >= the 14 classes of the synthetic world (over-splitting a
                              # class only costs smaller groups; merging two loses one)
    global_pool='cls',        # image embedding for the contrasts: the class token
    last_block='std',
    proj_dim=128,             # vision-contrast projection (SimCLR-style MLP)
    vision_temperature=0.1,
    vision_weight=1.0, cross_weight=1.0, cluster_weight=1.0)

# The multi-crop views come from the pipeline: 2 global crops at the tiny CLIP's 64 px and
# 4 local crops at 32 px (DINO's scale ranges), with their boxes and flips for the clustering
# pairs; `images` (required by the trainer, unused by ViL-Seg) is the image at 64 px.
train_data = dict(
    type='CocoCaptionDataset', data_root='data/synth/coco',
    ann_file='annotations/captions_train2017.json', img_dir='train2017',
    pipeline=[
        dict(type='MultiCropViews', global_size=64, local_size=32, n_global=2, n_local=4,
             global_scale=(0.4, 1.0), local_scale=(0.05, 0.4), flip_prob=0.5),
        dict(type='ResizeRGB', size=64),
        dict(type='ToTensorRGB'),
    ])

# 360 steps of 32 (~4 epochs): the clustering loss starts near 0 (the mutual information has
# little gradient at a near-uniform assignment) and is still falling when a shorter schedule's
# learning rate reaches 0; at 360 it is flat over the last ~150 steps (docs/methods/vilseg.md).
train = dict(iters=360, batch_size=32, lr=5e-4, weight_decay=0.05, warmup_iters=15,
             backbone_lr_mult=0.1, num_workers=2, log_interval=20, checkpoint_interval=360,
             max_keep_ckpts=1, seed=0)
work_dir = 'work_dirs/vilseg_tiny_synth'
