# The paper-scale matrix: every registered method on CLIP ViT-B/16 and the real datasets, each
# in its paper's own setting -- its config's datasets, protocol preset and training data
# (configs/*/*_vit*b16*.py; CLIP-ZSS once per dataset, trained on that dataset's seen
# classes). Its rows line up with the leaderboard's published reference rows, which use the
# same presets. For one protocol across all methods, see paper_vit_b16_sclip.py.
#
# Not run on these machines (no real data or weights; realistically a GPU). It needs:
#   checkpoints/ViT-B-16.pt    OpenAI or open_clip weights (nothing is downloaded)
#   data/VOCdevkit/VOC2012, data/VOCdevkit/VOC2010, data/coco_stuff164k,
#   data/ade/ADEChallengeData2016
#                              `ovseg-bench prepare ...`, then `ovseg-bench check-data data`
#   each trainable method's training data, as its config says (CC3M/CC12M, COCO captions;
#   for CLIP-ZSS the segmentation train splits)
#   ovseg-bench bench configs/bench/paper_vit_b16.py --dry-run     # the plan, nothing run
#   ovseg-bench bench configs/bench/paper_vit_b16.py --only method=MaskCLIP   # a slice
_base_ = ['../_base_/bench/paper_vit_b16.py']
datasets = None           # each config's own `datasets` (its paper's evaluation sets)
out_dir = 'work_dirs/bench_paper_vit_b16'
