# CLIP ViT-L/14 (224 px, 16x16 patch grid). Weights are never downloaded: point `pretrained`
# at a local OpenAI or open_clip checkpoint, e.g. --cfg-options backbone.pretrained=/path/to/ViT-L-14.pt
backbone = dict(type='OpenCLIPBackbone', model='ViT-L-14', pretrained='checkpoints/ViT-L-14.pt')
