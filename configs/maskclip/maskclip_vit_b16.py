# MaskCLIP (Zhou et al., ECCV 2022) on CLIP ViT-B/16 in the paper's annotation-free setting:
# training-free, evaluated on PASCAL VOC 2012 without background (voc20), PASCAL Context 59
# and COCO-Stuff 164k (171 classes), the three datasets of the paper's main table.
#   ovseg-bench test configs/maskclip/maskclip_vit_b16.py
#   ovseg-bench test configs/maskclip/maskclip_vit_b16.py --dataset voc20
#
# Weights (never downloaded): the base config reads checkpoints/ViT-B-16.pt; another local
# file (OpenAI .pt or open_clip state dict):
#   --cfg-options backbone.pretrained=/path/to/ViT-B-16.pt
# or a transformers save_pretrained folder (`_delete_` drops the open_clip arguments):
#   --cfg-options backbone._delete_=True backbone.type=HFCLIPBackbone \
#                 backbone.path=/path/to/clip-vit-base-patch16
#
# What is configured: the method itself (last block = value path, no query-key attention).
# Not implemented in this project and therefore absent here: the paper's key smoothing and
# prompt denoising (training-free refinements of the dense logits) and MaskCLIP+
# (pseudo-label self-training). The published numbers with and without the refinements are in
# ovseg_bench/bench/reference_results.csv.
# The protocol follows the authors' code where it could be read: whole-image inference (their
# ViT-B/16 model config tests in mmseg's 'whole' mode) at short side 512, the test resize of
# mmseg's VOC and COCO-Stuff dataset configs that their configs name (their dataset files were
# not read; for Context mmseg bounds the image by 520 x 520 instead, which a short-side
# protocol cannot express). Prompts: the authors average 85 templates, ImageNet's 80 plus 5
# scene templates ("there is a {} in the scene." ...); only the 80 are available here. To
# compare with the SCLIP re-run of MaskCLIP, evaluate under the SCLIP preset instead
# (configs/_base_/protocols/sclip.py).
_base_ = ['../_base_/backbones/vit_b16.py']

method = dict(type='MaskCLIP', last_block='value')

protocol = dict(
    name='maskclip_paper',
    short_side=512,
    mode='whole',
    crop=512,                 # unused in 'whole' mode
    stride=512,
    window_batch=1,
    num_workers=4)
datasets = ['voc20', 'context59', 'coco_stuff171']
