# SigLIP ViT-B/16 (224 px; open_clip's timm image tower, attention-pool head, no class token).
# Weights are never downloaded: `pretrained` is the local open_clip checkpoint
# (open_clip_pytorch_model.bin of timm/ViT-B-16-SigLIP). Its text side needs the Hugging Face
# tokenizer timm/ViT-B-16-SigLIP in the local Hugging Face cache.
backbone = dict(type='OpenCLIPBackbone', model='ViT-B-16-SigLIP',
                pretrained='checkpoints/ViT-B-16-SigLIP.bin')
