# ClearCLIP on the embedded default: the project's tiny CLIP, the four synthetic datasets
# (last block reduced to q-q attention: no residual, no FFN).
#   ovseg-bench test configs/clearclip/clearclip_tiny_synth.py --dataset synth_voc
_base_ = ['../_base_/backbones/tiny_synth.py', '../_base_/protocols/synth.py',
          '../_base_/methods/clearclip.py']
