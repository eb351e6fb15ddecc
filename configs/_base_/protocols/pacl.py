# PACL's evaluation (Mukhoti et al., CVPR 2023). No official code is public, so nothing here
# is reproduced from a harness: the paper scores every dataset over its object/stuff classes
# only (VOC20, Context59, COCO-Stuff 171, ADE20K 150: background or "other" pixels ignored),
# so no threshold is involved; it does not state its resize, windows or templates: SCLIP's
# short side 336 is used, and the defaults (ovseg_bench/protocol.py) for the rest (SCLIP's
# 224/112 windows and 80 templates, the project's vocabularies, logit_max), all recorded.
protocol = dict(name='pacl_nobg', short_side=336)
datasets = ['voc20', 'context59', 'coco_stuff171', 'ade150']
