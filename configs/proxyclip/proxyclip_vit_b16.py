# ProxyCLIP (Lan et al., ECCV 2024) on CLIP ViT-B/16 (OpenAI weights) with DINO ViT-B/8 as the
# proxy model (the official base config), training-free, under its own harness's protocol
# (short side 336, 336/112 windows padded to a multiple of 56, its class-name files and
# per-dataset thresholds, logit scale 40).
#   ovseg-bench test configs/proxyclip/proxyclip_vit_b16.py
#
# Weights (never downloaded):
#   checkpoints/ViT-B-16.pt              OpenAI's CLIP release
#   checkpoints/dino_vitb8_pretrain.pth  DINO's ViT-B/8 backbone release (the file
#                                        torch.hub's dino_vitb8 reads), loaded through timm
# or --cfg-options backbone.pretrained=... method.vfm.pretrained=...
# DINOv2 instead (the code's other VFM): method.vfm.model=vit_base_patch14_reg4_dinov2.lvd142m
# method.vfm.pos_interpolation=timm with its checkpoint (windows must then be multiples of 14
# too: pad_multiple 56 is).
_base_ = ['../_base_/backbones/vit_b16.py', '../_base_/protocols/proxyclip.py',
          '../_base_/methods/proxyclip.py']
method = dict(vfm=dict(type='TimmVFM', model='vit_base_patch8_224.dino',
                       pretrained='checkpoints/dino_vitb8_pretrain.pth',
                       pos_interpolation='dino'))
# positions resized as the official code does (DINO's interpolate_pos_encoding), for both models
backbone = dict(pos_interpolation='dino')
