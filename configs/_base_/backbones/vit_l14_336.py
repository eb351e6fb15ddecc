# CLIP ViT-L/14@336px (24x24 patch grid). Weights are never downloaded: point `pretrained` at a
# local OpenAI or open_clip checkpoint, e.g. --cfg-options backbone.pretrained=/path/to/ViT-L-14-336px.pt
backbone = dict(type='OpenCLIPBackbone', model='ViT-L-14-336',
                pretrained='checkpoints/ViT-L-14-336px.pt')
