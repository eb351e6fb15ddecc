# SigLIP 2 ViT-B/16 (224 px; open_clip's timm image tower, attention-pool head, no class token).
# Weights are never downloaded: `pretrained` is the local open_clip checkpoint of
# timm/ViT-B-16-SigLIP2. Its text side needs the Hugging Face tokenizer timm/ViT-B-16-SigLIP2
# (Gemma's) in the local Hugging Face cache.
backbone = dict(type='OpenCLIPBackbone', model='ViT-B-16-SigLIP2',
                pretrained='checkpoints/ViT-B-16-SigLIP2.bin')
