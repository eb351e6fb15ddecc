# SCLIP's own evaluation harness, value for value (wangf3014/SCLIP @ b56bd30:
# clip_segmentor.py CLIPForSegmentation, configs/base_config.py, configs/cfg_*.py,
# configs/cls_*.txt). NACLIP, ClearCLIP and ProxyCLIP descend from it (naclip.py, clearclip.py,
# proxyclip.py); docs/protocol.md says what is reproduced exactly and what is not.
# Some values below equal the defaults (ovseg_bench/protocol.py) and are still set: the bench
# matrices that take this preset (configs/bench/*_sclip.py) set its fields in every cell, over
# the cell's own (a NACLIP cell's PAMR, a MaskCLIP cell's whole-image mode).
protocol = dict(
    name='sclip',
    short_side=336,           # cfg_*.py: Resize(scale=(2048, 336), keep_ratio=True)
    max_long_side=2048,       # ... the 2048 of that scale
    mode='slide',             # CLIPForSegmentation: slide_crop > 0 -> forward_slide
    crop=224,                 # CLIPForSegmentation(slide_crop=224)
    stride=112,               # CLIPForSegmentation(slide_stride=112)
    window_pad='none',        # forward_slide: windows are not padded; the patch grid floors
    templates='imagenet80',   # prompts/imagenet_template.py openai_imagenet_template (80)
    vocabularies='sclip',     # configs/cls_*.txt, names split on ', ' (get_cls_idx)
    synonym_merge='prob_max',  # postprocess_result: softmax over all names, then max per class
    logit_scale=40.0,         # CLIPForSegmentation(logit_scale=40)
    bg_threshold=0.0,         # CLIPForSegmentation(prob_thd=0.0)
    area_threshold=0.0,       # CLIPForSegmentation(area_thd=None)
    postprocess='none',       # CLIPForSegmentation(pamr_steps=0)
    per_dataset=dict(
        voc21=dict(logit_scale=65.0, bg_threshold=0.1, area_threshold=0.1),  # cfg_voc21.py
        context60=dict(logit_scale=50.0, bg_threshold=0.1),     # cfg_context60.py
        coco_object=dict(logit_scale=50.0, bg_threshold=0.1),   # cfg_coco_object.py
        coco_stuff171=dict(short_side=448),  # cfg_coco_stuff164k.py: scale=(2048, 448)
        cityscapes=dict(short_side=560),     # cfg_city_scapes.py: scale=(2048, 560)
    ),
)
datasets = ['voc21', 'context60', 'coco_object', 'voc20', 'context59', 'coco_stuff171',
            'ade150']
