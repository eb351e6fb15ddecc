# ClearCLIP (Lan et al., ECCV 2024) on CLIP ViT-B/16 (OpenAI weights), training-free, under its
# own harness's protocol (short side 448, 448/224 windows padded to the patch, its class-name
# files, per-dataset background thresholds, logit scale 50) on the seven datasets here.
#   ovseg-bench test configs/clearclip/clearclip_vit_b16.py
#
# Weights (never downloaded): checkpoints/ViT-B-16.pt, OpenAI's release, or
#   --cfg-options backbone.pretrained=/path/to/ViT-B-16.pt
# The official code runs CLIP in fp16; add --cfg-options protocol.precision=bf16 on a GPU for
# a reduced-precision run (docs/methods/clearclip.md).
_base_ = ['../_base_/backbones/vit_b16.py', '../_base_/protocols/clearclip.py',
          '../_base_/methods/clearclip.py']
# positions resized as the official code does (DINO's interpolate_pos_encoding)
backbone = dict(pos_interpolation='dino')
