# SegCLIP as in the paper: CLIP ViT-B/16 at 224 px, pretrained on CC3M + COCO captions, for
# users with the data and the weights (nothing is downloaded):
#   torchrun --nproc_per_node 8 -m ovseg_bench.cli train \
#       configs/segclip/segclip_vit_b16_cc3m_coco.py --launcher pytorch \
#       --cfg-options backbone.pretrained=/path/to/ViT-B-16.pt \
#                     train_data.file=/path/to/cc3m_coco_train.tsv
#   ovseg-bench test configs/segclip/segclip_vit_b16_cc3m_coco.py --dataset voc21 \
#       --checkpoint work_dirs/segclip_vit_b16_cc3m_coco/head.pt
_base_ = ['../_base_/backbones/vit_b16.py']

method = dict(
    type='SegCLIP',
    split_layer=10,           # the group module after the 10th of 12 blocks
    num_centers=8,
    cross_layers=2,
    tau=0.9,
    eval_pool='hard',
    pool='max',
    mask_ratio=0.75,          # MAE branch: 75 % of the patches dropped, 3 decoder blocks
    norm_pix=True,
    decoder_layers=3,
    loss_weights=dict(contrastive=1.0, reconstruction=1.0, superpixel=1.0))

# CC3M and COCO (Karpathy train split, 82,783 images) in ONE caption table: a TSV with a
# `filepath` and a `title` column, one row per (image, caption); COCO's five captions per
# image are five rows with the same path, grouped into one image whose caption is drawn at
# random each time it is seen. Crops of 0.5-1 of the image at 224 px (the authors' range,
# no flip) and Felzenszwalb superpixels with the authors' parameters (scale 224, sigma 0.9,
# min_size 224), one id per 16 px patch. (The authors segment the whole image once, offline,
# and crop the segment map with the image; here the crop itself is segmented.)
train_data = dict(
    type='CsvCaptionDataset', file='data/cc3m_coco/train.tsv',
    pipeline=[
        dict(type='RandomResizedCropRGB', size=224, scale=(0.5, 1.0), flip_prob=0.0),
        dict(type='Superpixels', patch=16, scale=224, sigma=0.9, min_size=224),
        dict(type='ToTensorRGB'),
    ])

# The paper's schedule: global batch 768 (96 per process x 8 GPUs), 10 epochs, AdamW
# (betas 0.9/0.98, eps 1e-6, weight decay 0.05), lr 4e-3 for the new modules and 4e-6 for
# CLIP (backbone_lr_mult 1e-3), 15 % linear warm-up then cosine, gradient clipping at 1.
# The authors count an epoch over (image, caption) pairs: ~2.9 M CC3M pairs + 414,113 COCO
# pairs ~ 3.3 M, so 10 epochs = 10 x 3.3 M / 768 ~ 43,000 iterations (adjust `iters` to the
# number of pairs your CC3M copy has: iters = 10 * pairs / 768).
train = dict(iters=43000, batch_size=96, num_workers=8, lr=4e-3, weight_decay=0.05,
             betas=(0.9, 0.98), eps=1e-6, warmup_iters=6450, backbone_lr_mult=1e-3,
             grad_clip=1.0, seed=0, log_interval=50, checkpoint_interval=2000,
             max_keep_ckpts=3)
work_dir = 'work_dirs/segclip_vit_b16_cc3m_coco'

# The authors' test setting (GroupViT's): short side 224, 224 x 224 windows with stride 224,
# a single prompt template. Their background rule (threshold 0.8 on their own top-5
# re-weighted group scores) has no exact counterpart here: the protocol's threshold on the
# softmax at `logit_scale` is used instead, with their value.
protocol = dict(
    name='segclip_paper', short_side=224, mode='slide', crop=224, stride=224,
    templates='single', logit_scale=100.0, bg_threshold=0.8, postprocess='none',
    window_batch=16, batch_size=1, num_workers=4)
datasets = ['voc21', 'context60', 'coco_object']
