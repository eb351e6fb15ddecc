# NACLIP on the embedded default: the project's tiny CLIP, the four synthetic datasets, the
# official defaults (reduced last block, k-k attention plus a Gaussian of std 5 patches).
# On the synthetic protocol's 64 px windows the patch grid is 8 x 8, so std 5 spans most of
# it (on ViT-B/16's 224 px windows, 14 x 14, as in the paper).
#   ovseg-bench test configs/naclip/naclip_tiny_synth.py --dataset synth_voc
_base_ = ['../_base_/backbones/tiny_synth.py', '../_base_/protocols/synth.py',
          '../_base_/methods/naclip.py']
