# CLIP (Radford et al., ICML 2021) ViT-B/16 as the naive dense baseline: every patch token of
# the standard last block, projected into the joint space, against the class text embeddings.
# Training-free on the given weights: this config only evaluates. Training CLIP itself at
# ViT-B/16 scale (OpenAI's CLIP learned from 400M image-text pairs on hundreds of GPUs) is out
# of scope for this benchmark; the project pretrains only its tiny CLIP
# (configs/clip/clip_tiny_synth.py), with the same CLIP method and loss.
#   ovseg-bench test configs/clip/clip_vit_b16.py
#   ovseg-bench test configs/clip/clip_vit_b16.py --dataset voc21
#
# Weights (never downloaded): the base config reads checkpoints/ViT-B-16.pt; another local
# file (OpenAI .pt or open_clip state dict):
#   --cfg-options backbone.pretrained=/path/to/ViT-B-16.pt
# or a transformers save_pretrained folder (`_delete_` drops the open_clip arguments):
#   --cfg-options backbone._delete_=True backbone.type=HFCLIPBackbone \
#                 backbone.path=/path/to/clip-vit-base-patch16
#
# Evaluated under the SCLIP protocol on its seven datasets (voc21, context60, coco_object,
# voc20, context59, coco_stuff171, ade150): the setting in which the training-free methods
# (SCLIP, ClearCLIP, NACLIP, MaskCLIP re-runs) report this baseline.
_base_ = ['../_base_/backbones/vit_b16.py', '../_base_/protocols/sclip.py']

method = dict(type='CLIP')
