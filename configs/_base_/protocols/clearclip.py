# ClearCLIP's own evaluation harness (mc-lan/ClearCLIP @ ad68a40: clearclip_segmentor.py
# ClearCLIPSegmentation, configs/cfg_*.py, configs/cls_*.txt). Its class-name files name the
# background "background" (one name per line: names split on ','). The model runs in fp16
# there (create_model(precision='fp16'), inputs.half()); our `precision` stays a separate field.
protocol = dict(
    name='clearclip',
    short_side=448,           # cfg_*.py: Resize(scale=(2048, 448), keep_ratio=True)
    max_long_side=2048,
    mode='slide',             # ClearCLIPSegmentation(slide_crop=448) > 0 -> forward_slide
    crop=448,                 # ClearCLIPSegmentation(slide_crop=448)
    stride=224,               # ClearCLIPSegmentation(slide_stride=224)
    window_pad='center',      # forward_slide + compute_padsize: zero pad split around the
    pad_multiple=0,           # window, to a multiple of the patch size (0 = patch size)
    templates='imagenet80',   # prompts/imagenet_template.py openai_imagenet_template
    vocabularies='clearclip',  # configs/cls_*.txt, get_cls_idx splits on ','
    synonym_merge='prob_max',  # postprocess_result: softmax over names, max per class
    logit_scale=50.0,         # ClearCLIPSegmentation(logit_scale=50)
    bg_threshold=0.0,         # ClearCLIPSegmentation(prob_thd=0.0)
    area_threshold=0.0,       # no area rule
    postprocess='none',       # no PAMR
    per_dataset=dict(
        voc21=dict(bg_threshold=0.5),          # cfg_voc21.py: prob_thd=0.5
        context60=dict(bg_threshold=0.15),     # cfg_context60.py: prob_thd=0.15
        coco_object=dict(bg_threshold=0.4),    # cfg_coco_object.py: prob_thd=0.4
        cityscapes=dict(crop=224),             # cfg_city_scapes.py: slide_crop=224 (stride 224)
    ),
)
datasets = ['voc21', 'context60', 'coco_object', 'voc20', 'context59', 'coco_stuff171',
            'ade150']
