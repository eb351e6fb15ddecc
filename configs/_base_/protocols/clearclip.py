# ClearCLIP's own evaluation harness (mc-lan/ClearCLIP @ ad68a40: clearclip_segmentor.py
# ClearCLIPSegmentation, configs/cfg_*.py, configs/cls_*.txt), derived from SCLIP's
# (sclip.py: prob_max, 80 templates, no area rule, no PAMR) with its own values below. Its
# class-name files name the background "background" (one name per line: names split on ',').
# The model runs in fp16 there (create_model(precision='fp16'), inputs.half()); our
# `precision` stays a separate field.
_base_ = ['./sclip.py']
protocol = dict(
    name='clearclip',
    short_side=448,           # cfg_*.py: Resize(scale=(2048, 448), keep_ratio=True)
    crop=448,                 # ClearCLIPSegmentation(slide_crop=448)
    stride=224,               # ClearCLIPSegmentation(slide_stride=224)
    window_pad='center',      # forward_slide + compute_padsize: zero pad split around the
                              # window, to a multiple of the patch size
    vocabularies='clearclip',  # configs/cls_*.txt, get_cls_idx splits on ','
    logit_scale=50.0,         # ClearCLIPSegmentation(logit_scale=50)
    per_dataset=dict(
        _delete_=True,        # none of SCLIP's per-dataset values
        voc21=dict(bg_threshold=0.5),          # cfg_voc21.py: prob_thd=0.5
        context60=dict(bg_threshold=0.15),     # cfg_context60.py: prob_thd=0.15
        coco_object=dict(bg_threshold=0.4),    # cfg_coco_object.py: prob_thd=0.4
        cityscapes=dict(crop=224),             # cfg_city_scapes.py: slide_crop=224 (stride 224)
    ),
)
