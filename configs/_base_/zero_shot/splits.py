# Seen/unseen splits of the inductive generalized zero-shot protocol: dataset config name ->
# the unseen class names, exactly as the dataset class reports them (every other class is
# seen). A method config sets
#   unseen_classes = dict(voc20={{_base_.zero_shot_splits.voc20}}, ...)
# and the evaluator then reports mIoU_seen, mIoU_unseen and their harmonic mean hIoU.
zero_shot_splits = dict(
    # PASCAL VOC 2012, 15 seen / 5 unseen: the last five of the 20 object classes, evaluated
    # without background (voc20). The split of ZegCLIP (Zhou et al., CVPR 2023, configs
    # voc12/*zero*: novel_class = [15..19]) and ZegFormer/ZSSeg, which CLIP-ZSS compares with.
    voc20=['pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor'],
    # COCO-Stuff 164k, 156 seen / 15 unseen: the split of SPNet (Xian et al., CVPR 2019),
    # used by ZegFormer, ZSSeg and ZegCLIP (train ids 19 23 28 29 36 51 76 88 94 112 133 136
    # 137 157 160).
    coco_stuff171=['cow', 'giraffe', 'suitcase', 'frisbee', 'skateboard', 'carrot', 'scissors',
                   'cardboard', 'clouds', 'grass', 'playingfield', 'river', 'road', 'tree',
                   'wall-concrete'],
    # PASCAL Context (59 classes, background ignored), 49 seen / 10 unseen: the split of the
    # ZegCLIP line that CLIP-ZSS compares with (ZegCLIP-derived configs: novel_class = [0, 2,
    # 3, 7, 9, 13, 17, 19, 31, 37] over mmseg's Context-59 order). ZS3Net's split is
    # context59_zs3net.py beside this file.
    context59=['aeroplane', 'bed', 'bedclothes', 'boat', 'bottle', 'car', 'cloth', 'cow',
               'keyboard', 'plate'],
    # The embedded synthetic world (ovseg_bench/data/synthetic/world.py: things circle square
    # triangle star cross ring diamond heart; stuff grass water brick sand wood sky). Declared
    # like VOC's split, by position and not by results: the last two things and the last
    # stuff class are unseen. Views that lack a class (VOC: stuff is background; Context:
    # wood is background; ADE: sand is "other") list only the unseen classes they have.
    synth_coco=['diamond', 'heart', 'sky'],
    synth_context=['diamond', 'heart', 'sky'],
    synth_ade=['diamond', 'heart', 'sky'],
    synth_voc=['diamond', 'heart'],
)

