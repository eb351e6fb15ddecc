# SegCLIP on the embedded default: the project's pretrained tiny CLIP (4 blocks; the group
# module after block 3, as the paper's after 10 of 12), the synthetic captions, the four
# synthetic datasets. A few minutes on 2 CPU cores.
#   ovseg-bench train configs/segclip/segclip_tiny_synth.py
#   ovseg-bench test configs/segclip/segclip_tiny_synth.py \
#       --checkpoint work_dirs/segclip_tiny_synth/head.pt
# The contrastive loss alone (train and test with the options):
#   --cfg-options method.loss_weights.reconstruction=0 method.loss_weights.superpixel=0 \
#                 work_dir=work_dirs/segclip_tiny_synth_contrastive_only
_base_ = ['../_base_/backbones/tiny_synth.py', '../_base_/protocols/synth.py',
          '../_base_/methods/segclip.py']

method = dict(
    split_layer=3,            # first stage = blocks 1-3, the last block runs on the centers
    dense='soft',             # patch soft assignment x center-class cosine: the synthetic
                              # protocol thresholds a softmax of logits, not group scores
    norm_pix=True)

# Random resized crops of 0.5-1 of the image at the tiny CLIP's 64 px (the authors' scale
# range, no flip); Felzenszwalb superpixels of the crop, one id per 8 px patch. The authors
# use scale 224, sigma 0.9, min_size 224 px on ~224 px images; min_size is an area, so it is
# scaled to the 64 px crop (224 * 64^2 / 224^2 ~ 18 px): about 15 segments per crop.
train_data = dict(
    type='CocoCaptionDataset', data_root='data/synth/coco',
    ann_file='annotations/captions_train2017.json', img_dir='train2017',
    pipeline=[
        dict(type='RandomResizedCropRGB', size=64, scale=(0.5, 1.0), flip_prob=0.0),
        dict(type='Superpixels', patch=8, scale=224, sigma=0.9, min_size=18),
        dict(type='ToTensorRGB'),
    ])

# The authors' optimiser (AdamW, betas 0.9/0.98, eps 1e-6, weight decay 0.05, 15 % linear
# warm-up then cosine, gradient clipping at 1, new modules at 4e-3 and CLIP at 1e-3 of that),
# on a short schedule: 300 steps of 32, ~3 epochs of the 3000 synthetic caption images
# (other lengths: docs/methods/segclip.md).
train = dict(iters=300, batch_size=32, num_workers=1, lr=4e-3, weight_decay=0.05,
             betas=(0.9, 0.98), eps=1e-6, warmup_iters=45, backbone_lr_mult=1e-3,
             grad_clip=1.0, seed=0, log_interval=20, checkpoint_interval=300,
             max_keep_ckpts=1)
work_dir = 'work_dirs/segclip_tiny_synth'
