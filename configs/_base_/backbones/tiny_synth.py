# The embedded default's CLIP: the tiny open_clip model pretrained by the project itself
# (`ovseg-bench train configs/clip/clip_tiny_synth.py` writes this checkpoint).
backbone = dict(type='OpenCLIPBackbone', model='ovseg-tiny',
                pretrained='work_dirs/clip_tiny_synth/backbone.pt')
