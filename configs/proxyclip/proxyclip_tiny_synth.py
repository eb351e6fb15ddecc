# ProxyCLIP on the embedded default: the project's tiny CLIP, the four synthetic datasets.
# The synthetic world has no pretrained vision foundation model, so the proxy attention comes
# from the tiny CLIP's own image tower (vfm=None: its last block's output tokens), not from
# DINO as in the paper: this row measures proxy attention's mechanics (thresholded cosine
# attention over CLIP's values), not the benefit of a second, self-supervised model.
#   ovseg-bench test configs/proxyclip/proxyclip_tiny_synth.py --dataset synth_voc
_base_ = ['../_base_/backbones/tiny_synth.py', '../_base_/protocols/synth.py',
          '../_base_/methods/proxyclip.py']
method = dict(vfm=None)
