# NACLIP's own evaluation harness (sinahmr/NACLIP @ 0cac3a6: naclip.py NACLIP,
# configs/cfg_*.py, configs/cls_*.txt -- byte-identical to SCLIP's --, eval.py, test_all.sh):
# SCLIP's (sclip.py: resize, windows, no padding, class-name files, prob_max, logit scale 40),
# with its own per-dataset values. Its main results are run with PAMR on (README:
# `test_all.sh reduced naclip 5 on`; eval.py --pamr on -> pamr_steps=10);
# `--cfg-options protocol.postprocess=none` gives its "off" runs.
_base_ = ['./sclip.py']
protocol = dict(
    name='naclip',
    postprocess='pamr',       # eval.py --pamr on: pamr_steps=10, on the name logits at the
    pamr_steps=10,            # original size, image resized there (predict)
    pamr_dilations=(8, 16),   # NACLIP(pamr_stride=(8, 16))
    per_dataset=dict(
        _delete_=True,        # none of SCLIP's per-dataset values
        voc21=dict(mode='whole', bg_threshold=0.1),  # cfg_voc21.py: slide_crop=0, prob_thd=0.1
        voc20=dict(mode='whole'),                    # cfg_voc20.py: slide_crop=0
        context60=dict(bg_threshold=0.1),            # cfg_context60.py: prob_thd=0.1
        coco_object=dict(bg_threshold=0.1),          # cfg_coco_object.py: prob_thd=0.1
        cityscapes=dict(short_side=560),             # cfg_city_scapes.py: scale=(2048, 560)
    ),
)
