# SegCLIP as in the paper: CLIP ViT-B/16 at 224 px, pretrained on CC3M + COCO captions, for
# users with the data and the weights (nothing is downloaded), evaluated on PASCAL VOC, PASCAL
# Context and COCO-Object with background (voc21, context60, coco_object) under the SegCLIP
# protocol preset:
#   torchrun --nproc_per_node 8 -m ovseg_bench.cli train \
#       configs/segclip/segclip_vit_b16_cc3m_coco.py --launcher pytorch
#   ovseg-bench test configs/segclip/segclip_vit_b16_cc3m_coco.py --dataset voc21 \
#       --checkpoint work_dirs/segclip_vit_b16_cc3m_coco/head.pt
#
# Weights (never downloaded): the base config reads checkpoints/ViT-B-16.pt; another local
# file (OpenAI .pt, as the authors use, or open_clip state dict):
#   --cfg-options backbone.pretrained=/path/to/ViT-B-16.pt
# or a transformers save_pretrained folder (`_delete_` drops the open_clip arguments):
#   --cfg-options backbone._delete_=True backbone.type=HFCLIPBackbone \
#                 backbone.path=/path/to/clip-vit-base-patch16
_base_ = ['../_base_/backbones/vit_b16.py', '../_base_/protocols/segclip.py',
          '../_base_/methods/segclip.py']

method = dict(
    split_layer=10,           # the group module after the 10th of 12 blocks
    dense='groupvit',         # the authors' evaluator (GroupViT's rule)
    norm_pix=False,           # the authors regress the CLIP-normalised pixels as they are
    caption_tokens=32)        # captions cut to 32 tokens (the paper; --max_words 32)

# The authors' data: CC3M downloaded with img2dataset as webdataset shards, and COCO's
# Karpathy 'train' split (82,783 train2014 images, 414,113 captions; dataset_coco.json of
# caption_datasets.zip, images in data/coco/train2014/, see docs/datasets/README.md), as one
# dataset. Crops of 0.5-1 of the image at 224 px (the authors' range, no flip) and
# Felzenszwalb superpixels with the authors' parameters (scale 224, sigma 0.9, min_size 224),
# one id per 16 px patch. (The authors segment the whole image once, offline, and crop the
# segment map with the image; here the crop itself is segmented.) An item is an image with one
# of its captions drawn at random; the authors iterate over (image, caption) pairs, so per
# epoch COCO weighs 5x less here -- list the Karpathy dataset several times to match.
train_data = dict(
    type='ConcatCaptionDatasets',
    datasets=[
        dict(type='WebDatasetShards', shards='data/cc3m/*.tar'),
        dict(type='KarpathyCaptionDataset', data_root='data/coco',
             ann_file='dataset_coco.json', split='train'),
    ],
    pipeline=[
        dict(type='RandomResizedCropRGB', size=224, scale=(0.5, 1.0), flip_prob=0.0),
        dict(type='Superpixels', patch=16, scale=224, sigma=0.9, min_size=224),
        dict(type='ToTensorRGB'),
    ])

# The paper's schedule: global batch 768 (96 per process x 8 GPUs), 10 epochs, AdamW
# (betas 0.9/0.98, eps 1e-6, weight decay 0.05), 15 % linear warm-up then cosine, gradient
# clipping at 1. Learning rates as the authors' main_task_align.py sets them: 4e-3 for the
# new modules and for CLIP's image blocks after the group module (11-12), ln_post and proj;
# 4e-6 (backbone_lr_mult 1e-3) for the rest of CLIP (both towers, the logit scale); the image
# tower's patch embedding (conv1) and positional embedding frozen.
# The authors count an epoch over (image, caption) pairs: ~2.9 M CC3M pairs + 414,113 COCO
# pairs ~ 3.3 M, so 10 epochs = 10 x 3.3 M / 768 ~ 43,000 iterations (adjust `iters` to the
# number of pairs your CC3M copy has: iters = 10 * pairs / 768, warmup_iters = 0.15 * iters).
train = dict(iters=43000, batch_size=96, num_workers=8, lr=4e-3, weight_decay=0.05,
             betas=(0.9, 0.98), eps=1e-6, warmup_iters=6450, backbone_lr_mult=1e-3,
             custom_keys={'visual.transformer.resblocks.10.': dict(lr_mult=1.0),
                          'visual.transformer.resblocks.11.': dict(lr_mult=1.0),
                          'visual.ln_post.': dict(lr_mult=1.0),
                          'visual.proj': dict(lr_mult=1.0)},
             frozen=('visual.conv1.', 'visual.positional_embedding'),
             grad_clip=1.0, seed=0, log_interval=50, checkpoint_interval=2000,
             max_keep_ckpts=3,
             precision='fp32')  # the authors train in fp32 (main_task_align.py forces
                                # disable_amp); bf16 would be ~2x faster on recent GPUs
work_dir = 'work_dirs/segclip_vit_b16_cc3m_coco'

# The authors' test setting (GroupViT's code at 224 px) is the preset's: short side 224,
# 224 x 224 windows with stride 224, background thresholds per dataset, and their background
# rule (bg_rule='group_score': a pixel's group score below min(threshold, the window's best))
# and template ('a photo of a {}.').
protocol = dict(window_batch=16, num_workers=4)
datasets = ['voc21', 'context60', 'coco_object']
