# ProxyCLIP's own evaluation harness (mc-lan/ProxyCLIP @ e7b767f: proxyclip_segmentor.py
# ProxyCLIPSegmentation, configs/base_config.py, configs/cfg_*.py, configs/cls_*.txt). Its
# class-name files separate synonyms by '; ' (VOC21's background is 26 stuff words). The
# proxy vision model (DINO ViT-B/8 in base_config.py) is the method's, not the protocol's.
protocol = dict(
    name='proxyclip',
    short_side=336,           # cfg_voc*/context*/coco_*.py: Resize(scale=(2048, 336))
    max_long_side=2048,
    mode='slide',             # ProxyCLIPSegmentation(slide_crop=336) > 0 -> forward_slide
    crop=336,                 # ProxyCLIPSegmentation(slide_crop=336)
    stride=112,               # ProxyCLIPSegmentation(slide_stride=112)
    window_pad='center',      # forward_slide: compute_padsize(H, W, 56), zero pad split
    pad_multiple=56,          # around the window, to a multiple of 56
    templates='imagenet80',   # prompts/imagenet_template.py openai_imagenet_template
    vocabularies='proxyclip',  # configs/cls_*.txt, get_cls_idx splits on '; '
    synonym_merge='prob_max',  # postprocess_result: softmax over names, max per class
    logit_scale=40.0,         # ProxyCLIPSegmentation(logit_scale=40)
    bg_threshold=0.0,         # ProxyCLIPSegmentation(prob_thd=0.0)
    area_threshold=0.0,       # no area rule
    postprocess='none',       # no PAMR
    per_dataset=dict(
        voc21=dict(bg_threshold=0.2),          # cfg_voc21.py: prob_thd=0.2
        context60=dict(bg_threshold=0.15),     # cfg_context60.py: prob_thd=0.15
        coco_object=dict(bg_threshold=0.25),   # cfg_coco_object.py: prob_thd=0.25
        ade150=dict(short_side=448),           # cfg_ade20k.py: scale=(2048, 448)
        ade847=dict(short_side=448),           # cfg_ade847.py: scale=(2048, 448)
        context459=dict(short_side=448),       # cfg_context459.py: scale=(2048, 448)
        cityscapes=dict(short_side=448, crop=224, stride=112),  # cfg_city_scapes.py
    ),
)
datasets = ['voc21', 'context60', 'coco_object', 'voc20', 'context59', 'coco_stuff171',
            'ade150']
