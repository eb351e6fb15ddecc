# ProxyCLIP's own evaluation harness (mc-lan/ProxyCLIP @ e7b767f: proxyclip_segmentor.py
# ProxyCLIPSegmentation, configs/base_config.py, configs/cfg_*.py, configs/cls_*.txt), derived
# from SCLIP's (sclip.py: short side 336, prob_max, 80 templates, logit scale 40, no area rule,
# no PAMR) with its own values below. Its class-name files separate synonyms by '; ' (VOC21's
# background is 26 stuff words). The proxy vision model (DINO ViT-B/8 in base_config.py) is
# the method's, not the protocol's.
_base_ = ['./sclip.py']
protocol = dict(
    name='proxyclip',
    crop=336,                 # ProxyCLIPSegmentation(slide_crop=336)
    stride=112,               # ProxyCLIPSegmentation(slide_stride=112)
    window_pad='center',      # forward_slide: compute_padsize(H, W, 56), zero pad split
    pad_multiple=56,          # around the window, to a multiple of 56
    vocabularies='proxyclip',  # configs/cls_*.txt, get_cls_idx splits on '; '
    per_dataset=dict(
        _delete_=True,        # none of SCLIP's per-dataset values
        voc21=dict(bg_threshold=0.2),          # cfg_voc21.py: prob_thd=0.2
        context60=dict(bg_threshold=0.15),     # cfg_context60.py: prob_thd=0.15
        coco_object=dict(bg_threshold=0.25),   # cfg_coco_object.py: prob_thd=0.25
        ade150=dict(short_side=448),           # cfg_ade20k.py: scale=(2048, 448)
        ade847=dict(short_side=448),           # cfg_ade847.py: scale=(2048, 448)
        context459=dict(short_side=448),       # cfg_context459.py: scale=(2048, 448)
        cityscapes=dict(short_side=448, crop=224, stride=112),  # cfg_city_scapes.py
    ),
)
