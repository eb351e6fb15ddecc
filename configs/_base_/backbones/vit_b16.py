# CLIP ViT-B/16. Weights are never downloaded: point `pretrained` at a local open_clip or
# OpenAI checkpoint, e.g. --cfg-options backbone.pretrained=/path/to/ViT-B-16.pt
backbone = dict(type='OpenCLIPBackbone', model='ViT-B-16', pretrained='checkpoints/ViT-B-16.pt')
