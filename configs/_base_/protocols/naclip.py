# NACLIP's own evaluation harness (sinahmr/NACLIP @ 0cac3a6: naclip.py NACLIP,
# configs/cfg_*.py, configs/cls_*.txt -- byte-identical to SCLIP's --, eval.py, test_all.sh).
# Its main results are run with PAMR on (README: `test_all.sh reduced naclip 5 on`; eval.py
# --pamr on -> pamr_steps=10); `--cfg-options protocol.postprocess=none` gives its "off" runs.
protocol = dict(
    name='naclip',
    short_side=336,           # cfg_*.py: Resize(scale=(2048, 336), keep_ratio=True)
    max_long_side=2048,
    mode='slide',             # NACLIP(slide_crop=224) > 0 -> forward_slide
    crop=224,                 # NACLIP(slide_crop=224)
    stride=112,               # NACLIP(slide_stride=112)
    window_pad='none',        # forward_slide / forward_feature: no padding, the grid floors
    templates='imagenet80',   # prompts/imagenet_template.py openai_imagenet_template
    vocabularies='sclip',     # configs/cls_*.txt (identical to SCLIP's), split on ', '
    synonym_merge='prob_max',  # postprocess_result: softmax over names, max per class
    logit_scale=40.0,         # NACLIP(logit_scale=40); no cfg overrides it
    bg_threshold=0.0,         # NACLIP(prob_thd=0.0)
    area_threshold=0.0,       # NACLIP has no area rule
    postprocess='pamr',       # eval.py --pamr on: pamr_steps=10, on the name logits at the
    pamr_steps=10,            # original size, image resized there (predict)
    pamr_dilations=(8, 16),   # NACLIP(pamr_stride=(8, 16))
    per_dataset=dict(
        voc21=dict(mode='whole', bg_threshold=0.1),  # cfg_voc21.py: slide_crop=0, prob_thd=0.1
        voc20=dict(mode='whole'),                    # cfg_voc20.py: slide_crop=0
        context60=dict(bg_threshold=0.1),            # cfg_context60.py: prob_thd=0.1
        coco_object=dict(bg_threshold=0.1),          # cfg_coco_object.py: prob_thd=0.1
        cityscapes=dict(short_side=560),             # cfg_city_scapes.py: scale=(2048, 560)
    ),
)
datasets = ['voc21', 'context60', 'coco_object', 'voc20', 'context59', 'coco_stuff171',
            'ade150']
