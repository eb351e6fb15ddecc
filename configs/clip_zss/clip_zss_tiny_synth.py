# CLIP-ZSS on the embedded default, inductive generalized zero-shot: the project's pretrained
# tiny CLIP as the frozen teacher (and text encoder), a trainable copy of its image tower as
# the segmentation encoder, trained on the seen-class masks of synth_coco's train split
# (unseen: diamond, heart, sky -> ignore), evaluated on the four synthetic datasets with
# mIoU_seen / mIoU_unseen / hIoU. A few minutes on 2 CPU cores. The recipe is
# configs/_base_/methods/clip_zss_tiny_synth.py.
#   ovseg-bench train configs/clip_zss/clip_zss_tiny_synth.py
#   ovseg-bench test configs/clip_zss/clip_zss_tiny_synth.py \
#       --checkpoint work_dirs/clip_zss_tiny_synth/head.pt
# Ablations (same schedule): method.use_glm=False (no GLM), method.use_plm=False (no PLM),
# both (the supervised baseline: CE + NEL on the seen classes), e.g.
#   --cfg-options method.use_glm=False method.use_plm=False \
#       work_dir=work_dirs/clip_zss_tiny_synth_baseline
# The paper's kind of encoder (a closed-set SegFormer, here MiT-B0 from random weights):
#   configs/clip_zss/clip_zss_mit_b0_synth.py
_base_ = ['../_base_/backbones/tiny_synth.py', '../_base_/protocols/synth.py',
          '../_base_/zero_shot/splits.py', '../_base_/methods/clip_zss_tiny_synth.py']
_unseen = {{_base_.zero_shot_splits.synth_coco}}

method = dict(unseen_classes=_unseen)
train_data = dict(pipeline=[
    dict(t, dataset='synth_coco', unseen=_unseen) if t.type == 'IgnoreUnseenClasses' else t
    for t in _base_.train_data.pipeline])
work_dir = 'work_dirs/clip_zss_tiny_synth'
unseen_classes = {{_base_.zero_shot_splits}}
