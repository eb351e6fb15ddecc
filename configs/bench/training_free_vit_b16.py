# The training-free heads on CLIP ViT-B/16, each in its own setting: its ViT-B/16 config's
# protocol preset (the authors' harness: resize, windows, class-name files, thresholds,
# post-processing) and datasets. Their rows line up with the published reference rows of the
# same presets. The same heads under one shared protocol: training_free_vit_b16_sclip.py.
#
# Not run on these machines (no real data or weights; realistically a GPU). It needs:
#   checkpoints/ViT-B-16.pt               OpenAI's CLIP ViT-B/16 (nothing is downloaded)
#   checkpoints/dino_vitb8_pretrain.pth   DINO ViT-B/8 (ProxyCLIP's proxy model)
#   data/VOCdevkit/VOC2012, data/VOCdevkit/VOC2010, data/coco_stuff164k,
#   data/ade/ADEChallengeData2016        `ovseg-bench prepare ...`, `ovseg-bench check-data data`
#   ovseg-bench bench configs/bench/training_free_vit_b16.py --dry-run     # the plan
#   ovseg-bench bench configs/bench/training_free_vit_b16.py --only method=NACLIP
_base_ = ['../_base_/bench/paper_vit_b16.py']
methods = ['MaskCLIP', 'SCLIP', 'ClearCLIP', 'NACLIP', 'ProxyCLIP']
datasets = None           # each config's own `datasets`
out_dir = 'work_dirs/bench_training_free_vit_b16'
