# Head to head at paper scale: every open-vocabulary method on CLIP ViT-B/16 under one
# protocol, SCLIP's preset (short side 336, 224/112 windows, 80 templates, its per-dataset
# background thresholds), on its seven datasets. The same training runs as paper_vit_b16.py
# (finished ones are reused); only the evaluation differs. Needs what that matrix needs.
# CLIP-ZSS is left out: its zero-shot setting trains on each dataset's own seen classes and
# is compared in paper_vit_b16.py.
#   ovseg-bench bench configs/bench/paper_vit_b16_sclip.py --dry-run
_base_ = ['../_base_/bench/paper_vit_b16.py', '../_base_/protocols/sclip.py']
exclude = ['CLIPZSS']
out_dir = 'work_dirs/bench_paper_vit_b16_sclip'
