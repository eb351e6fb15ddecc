# MaskCLIP on the embedded default: the project's tiny CLIP, the four synthetic datasets.
#   ovseg-bench test configs/maskclip/maskclip_tiny_synth.py --dataset synth_voc
_base_ = ['../_base_/backbones/tiny_synth.py', '../_base_/protocols/synth.py']
method = dict(type='MaskCLIP', last_block='value')
