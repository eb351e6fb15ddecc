# The training-free heads on CLIP ViT-B/16 under one shared protocol, SCLIP's preset (short
# side 336, 224/112 windows, SCLIP's class-name files and per-dataset thresholds, no PAMR), on
# its seven datasets: what differs between their rows is the head alone. Each head in its own
# setting: training_free_vit_b16.py. Needs what that matrix needs.
#   ovseg-bench bench configs/bench/training_free_vit_b16_sclip.py --dry-run
_base_ = ['../_base_/bench/paper_vit_b16.py', '../_base_/protocols/sclip.py']
methods = ['MaskCLIP', 'SCLIP', 'ClearCLIP', 'NACLIP', 'ProxyCLIP']
out_dir = 'work_dirs/bench_training_free_vit_b16_sclip'
