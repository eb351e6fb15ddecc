# PACL's recipe (configs/_base_/methods/pacl.py) on a frozen CLIP ViT-B/16 (the paper's
# headline numbers are ViT-L/14: pacl_vit_l14.py), evaluated on VOC, Pascal Context,
# COCO-Stuff and ADE20K without background (configs/_base_/protocols/pacl.py). Needs the
# user's data and weights and, realistically, GPUs:
#   torchrun --nproc_per_node 4 -m ovseg_bench.cli train configs/pacl/pacl_vit_b16.py \
#       --launcher pytorch
#   ovseg-bench test configs/pacl/pacl_vit_b16.py --checkpoint work_dirs/pacl_vit_b16/head.pt
#
# Weights (never downloaded): the base config reads checkpoints/ViT-B-16.pt; another local
# file (OpenAI .pt or open_clip state dict):
#   --cfg-options backbone.pretrained=/path/to/ViT-B-16.pt
# or a transformers save_pretrained folder (`_delete_` drops the open_clip arguments):
#   --cfg-options backbone._delete_=True backbone.type=HFCLIPBackbone \
#                 backbone.path=/path/to/clip-vit-base-patch16
_base_ = ['../_base_/backbones/vit_b16.py', '../_base_/protocols/pacl.py',
          '../_base_/methods/pacl.py']
work_dir = 'work_dirs/pacl_vit_b16'
