# SCLIP on the embedded default: the project's tiny CLIP, the four synthetic datasets, the
# released form of its last block (correlative attention with the block's residual and MLP).
#   ovseg-bench test configs/sclip/sclip_tiny_synth.py --dataset synth_voc
_base_ = ['../_base_/backbones/tiny_synth.py', '../_base_/protocols/synth.py',
          '../_base_/methods/sclip.py']
