# The cells of the paper-scale matrices (configs/bench/paper_vit_b16*.py): every registered
# method on CLIP ViT-B/16 with its own ViT-B/16 config (CLIP-ZSS once per dataset).
methods = 'all'
method_configs = ['configs/*/*_vit_b16*.py']
# A plugin without a ViT-B/16 config of its own is evaluated in MaskCLIP's setting; a
# trainable plugin needs its own config (there is no default training data at this scale).
plugin_base = ['configs/maskclip/maskclip_vit_b16.py']
backbones = None          # each config's own: ViT-B/16 from checkpoints/ViT-B-16.pt
seeds = [0]
train_workers = 1         # one accelerator: one training at a time
save_predictions = 4
