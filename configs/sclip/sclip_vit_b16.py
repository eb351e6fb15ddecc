# SCLIP (Wang et al., ECCV 2024) on CLIP ViT-B/16 (OpenAI weights), training-free, under its
# own protocol preset (short side 336, 224/112 windows, 80 templates, per-dataset logit scale
# and background threshold) on its paper's eight-dataset table minus Cityscapes (not here).
#   ovseg-bench test configs/sclip/sclip_vit_b16.py
#
# Weights (never downloaded): checkpoints/ViT-B-16.pt, OpenAI's release (the .pt that
# clip.load('ViT-B/16') reads; built with QuickGELU as OpenAI trained it), or
#   --cfg-options backbone.pretrained=/path/to/ViT-B-16.pt
# The published numbers without PAMR are SCLIP's main table; its PAMR rows need the
# protocol's PAMR post-processing.
_base_ = ['../_base_/backbones/vit_b16.py', '../_base_/protocols/sclip.py',
          '../_base_/methods/sclip.py']
# positions resized as the official code does (DINO's interpolate_pos_encoding)
backbone = dict(pos_interpolation='dino')
