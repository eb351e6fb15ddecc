# EVA02-CLIP ViT-B/16 (224 px; open_clip's timm Eva image tower with rotary positions).
# Weights are never downloaded: `pretrained` is the local open_clip checkpoint
# (EVA02_CLIP_B_psz16_s8B.pt converted by open_clip, or its open_clip_pytorch_model.bin).
backbone = dict(type='OpenCLIPBackbone', model='EVA02-B-16',
                pretrained='checkpoints/EVA02-B-16.bin')
