# NACLIP (Hajimiri et al., WACV 2025) on CLIP ViT-B/16 (OpenAI weights), training-free, with
# the official defaults (reduced last block, Gaussian std 5) under its own harness's protocol
# (short side 336, 224/112 windows, whole images on VOC, PAMR 10 steps as its README's runs).
#   ovseg-bench test configs/naclip/naclip_vit_b16.py
#   ovseg-bench test configs/naclip/naclip_vit_b16.py --cfg-options protocol.postprocess=none
#
# Weights (never downloaded): checkpoints/ViT-B-16.pt, OpenAI's release, or
#   --cfg-options backbone.pretrained=/path/to/ViT-B-16.pt
_base_ = ['../_base_/backbones/vit_b16.py', '../_base_/protocols/naclip.py',
          '../_base_/methods/naclip.py']
# positions resized as the official code does (DINO's interpolate_pos_encoding)
backbone = dict(pos_interpolation='dino')
