"""The harness presets give the official harnesses' labels, pixel for pixel.

Each official harness's inference after the image encoder -- SCLIP's ``CLIPForSegmentation``
(wangf3014/SCLIP clip_segmentor.py), NACLIP's ``NACLIP`` (sinahmr/NACLIP naclip.py),
ClearCLIP's ``ClearCLIPSegmentation`` (mc-lan/ClearCLIP clearclip_segmentor.py) -- is
re-derived below from reading that code: one forward per window (a strided patch embedding
drops the pixels past the last whole patch), logits per name stretched over the window, summed
into the image and divided by the cover count, resized to the original image, PAMR (NACLIP),
softmax over every name at the logit scale, max over each class's names, area rule (SCLIP),
threshold. It runs on the same random CLIP (patch 16, a few layers) and the same normalised
inputs as ``OVSegmentor`` under the preset; the labels must agree on >= 99.9% of each image's
pixels, with the official class-name files.
"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.structures import BaseDataElement

from ovseg_bench.protocol import resolve_protocol
from ovseg_bench.segmentor import OVSegmentor
from ovseg_bench.text import select_vocabulary, templates
from test_pamr import official_pamr  # the plain PAMR reference (tests/test_pamr.py)

PRESETS = Path(__file__).parents[1] / 'configs' / '_base_' / 'protocols'
AGREEMENT = 0.999
# A ViT-B/16-shaped CLIP, only thinner: the arithmetic under test does not depend on width.
SMALL_CLIP = {
    'embed_dim': 64,
    'vision_cfg': {'image_size': 224, 'patch_size': 16, 'width': 64, 'layers': 3,
                   'head_width': 32, 'mlp_ratio': 2.0},
    'text_cfg': {'context_length': 24, 'vocab_size': 49408, 'width': 64, 'heads': 2,
                 'layers': 1, 'mlp_ratio': 2.0},
}
# Original sizes (H, W): a VOC/COCO aspect ratio whose resized size is on the patch grid, and
# one off it (336 x 505; 448 x 673). Small originals keep the work at the original size (PAMR,
# softmax over names) quick; real-sized images are checked on the real samples.
SIZES = {'voc': [(150, 200), (133, 200)], 'coco': [(120, 160), (107, 160)]}


@pytest.fixture(scope='module')
def head(tmp_path_factory):
    from ovseg_bench_methods.maskclip import MaskCLIP
    from ovseg_bench.backbones import OpenCLIPBackbone
    path = tmp_path_factory.mktemp('clip') / 'small-b16.json'
    path.write_text(json.dumps(SMALL_CLIP))
    torch.manual_seed(0)
    backbone = OpenCLIPBackbone(str(path)).eval()
    return MaskCLIP(backbone, last_block='csa').eval()


# ------------------------------------------------------------ the official arithmetic
_QUERIES = {}


def official_queries(head, names):
    """Per name: mean over the 80 templates of the normalised prompt embeddings, normalised
    (computed once per head and name list)."""
    key = (id(head), tuple(names))
    if key not in _QUERIES:
        _QUERIES[key] = _official_queries(head, names)
    return _QUERIES[key]


def _official_queries(head, names):
    rows = []
    with torch.no_grad():
        for name in names:
            tokens = head.backbone.tokenize([t.format(name) for t in templates('imagenet80')])
            emb = head.backbone.encode_text(tokens).float()
            emb = emb / emb.norm(dim=-1, keepdim=True)
            mean = emb.mean(0)
            rows.append(mean / mean.norm())
    return torch.stack(rows)


def official_features(head, queries, img, center_pad=0):
    """``forward_feature``: name logits on the patch grid, bilinearly stretched over ``img``.
    With ``center_pad`` (ClearCLIP) the window is first zero-padded around to that multiple
    and the logits cut back out; without, the strided patch embedding ignores the rows and
    columns past the last whole patch."""
    h, w = img.shape[-2:]
    p = head.backbone.patch_size
    if center_pad:
        ph, pw = (-h) % center_pad, (-w) % center_pad
        top, left = ph // 2, pw // 2
        padded = F.pad(img, (left, pw - left, top, ph - top))
        out = official_features(head, queries, padded)
        return out[..., top:top + h, left:left + w]
    grid = head.predict_dense(img[..., :h // p * p, :w // p * p], queries)
    return F.interpolate(grid, size=(h, w), mode='bilinear', align_corners=False)


def official_slide(head, queries, img, crop, stride, center_pad=0):
    """``forward_slide``: windows every ``stride``, the last pushed back inside the image;
    their logits summed in place and divided by how many windows cover each pixel."""
    _, _, H, W = img.shape
    rows = max(H - crop + stride - 1, 0) // stride + 1
    cols = max(W - crop + stride - 1, 0) // stride + 1
    total = torch.zeros(1, len(queries), H, W)
    cover = torch.zeros(1, 1, H, W)
    for r in range(rows):
        for c in range(cols):
            y2, x2 = min(r * stride + crop, H), min(c * stride + crop, W)
            y1, x1 = max(y2 - crop, 0), max(x2 - crop, 0)
            total[..., y1:y2, x1:x2] += official_features(head, queries, img[..., y1:y2, x1:x2],
                                                          center_pad)
            cover[..., y1:y2, x1:x2] += 1
    return total / cover


def official_labels(logits, query_idx, logit_scale, prob_thd, area_thd=None):
    """``postprocess_result``: softmax over all names, per-class max (one-hot mask times the
    probabilities, max over names), area rule on the non-background argmax, threshold."""
    probs = (logits[0] * logit_scale).softmax(0)
    n_cls = int(query_idx.max()) + 1
    if n_cls != len(query_idx):
        # max over names of probs x one-hot(class): with probs > 0, the max over the class's
        # own names (the same values, without the classes x names x H x W product)
        probs = torch.stack([probs[query_idx == c].max(0)[0] for c in range(n_cls)])
    if area_thd is not None:
        won = F.one_hot(probs.argmax(0), n_cls).to(probs.dtype)
        area = won[:, :, 1:].sum((0, 1))
        probs[1:] *= (area > area_thd * area.sum()).to(probs.dtype)[:, None, None]
    labels = probs.argmax(0)
    labels[probs.max(0)[0] < prob_thd] = 0
    return labels


def official_predict(head, queries, query_idx, img, ori_shape, harness, cfg):
    """Labels of one normalised image as ``harness`` ('sclip', 'naclip', 'clearclip') gives
    them; ``cfg``: its values for the dataset (crop, stride, whole, logit_scale, prob_thd,
    area_thd, pamr)."""
    center = head.backbone.patch_size if harness == 'clearclip' else 0
    if cfg.get('whole'):
        logits = official_features(head, queries, img, center)
    else:
        logits = official_slide(head, queries, img, cfg['crop'], cfg['stride'], center)
    logits = F.interpolate(logits, size=ori_shape, mode='bilinear', align_corners=False)
    if cfg.get('pamr'):
        image = F.interpolate(img, size=ori_shape, mode='bilinear', align_corners=False)
        logits = official_pamr(image, logits, *cfg['pamr'])
    return official_labels(logits, query_idx, cfg['logit_scale'], cfg.get('prob_thd', 0.0),
                           cfg.get('area_thd'))


# Each harness's values per dataset, read from its configs/cfg_*.py and constructor defaults.
OFFICIAL = {
    'sclip': {  # CLIPForSegmentation defaults: logit_scale 40, prob_thd 0, crop 224, stride 112
        'voc21': dict(short=336, crop=224, stride=112, logit_scale=65, prob_thd=0.1,
                      area_thd=0.1),
        'voc20': dict(short=336, crop=224, stride=112, logit_scale=40),
        'context60': dict(short=336, crop=224, stride=112, logit_scale=50, prob_thd=0.1),
        'coco_object': dict(short=336, crop=224, stride=112, logit_scale=50, prob_thd=0.1),
        'coco_stuff171': dict(short=448, crop=224, stride=112, logit_scale=40),
    },
    'naclip': {  # NACLIP defaults: logit_scale 40; eval.py --pamr on: 10 steps, (8, 16)
        'voc21': dict(short=336, whole=True, logit_scale=40, prob_thd=0.1, pamr=(10, (8, 16))),
        'voc20': dict(short=336, whole=True, logit_scale=40, pamr=(10, (8, 16))),
    },
    'clearclip': {  # ClearCLIPSegmentation defaults: logit_scale 50, crop 448, stride 224
        'voc21': dict(short=448, crop=448, stride=224, logit_scale=50, prob_thd=0.5),
        'voc20': dict(short=448, crop=448, stride=224, logit_scale=50),
    },
}
CASES = [(h, d) for h, per in OFFICIAL.items() for d in per]


# ------------------------------------------------------------ inputs and comparison
def resized_size(h, w, short, long=2048):
    """mmcv's keep-ratio rescale to the scale (long, short)."""
    s = min(long / max(h, w), short / min(h, w))
    return int(h * s + 0.5), int(w * s + 0.5)


def smooth_image(h, w, seed):
    """A normalised image with regions (smooth noise), so labels form areas."""
    g = torch.Generator().manual_seed(seed)
    low = torch.randn(1, 3, h // 40 + 2, w // 40 + 2, generator=g)
    return F.interpolate(low, size=(h, w), mode='bilinear', align_corners=False) * 1.5 \
        + 0.2 * torch.randn(1, 3, h, w, generator=g)


def ours(head, dataset, preset, img, ori_shape, vocabulary, **overrides):
    cfg = Config.fromfile(str(PRESETS / f'{preset}.py'))
    protocol = resolve_protocol(cfg.protocol.to_dict(), dataset)
    protocol.update(text_cache=None, **overrides)
    has_bg = dataset in ('voc21', 'context60', 'coco_object')
    model = OVSegmentor(head, vocabulary, has_bg, protocol)
    sample = BaseDataElement(metainfo=dict(ori_shape=ori_shape))
    return model.predict(img, [sample])[0].pred_sem_seg.data[0]


def agreement(head, harness, dataset, img, ori_shape, **overrides):
    _, vocabulary = select_vocabulary(dataset, dataset, {'naclip': 'sclip'}.get(harness, harness))
    names = [n for c in vocabulary for n in c]
    query_idx = torch.tensor([c for c, syn in enumerate(vocabulary) for _ in syn])
    with torch.no_grad():
        want = official_predict(head, official_queries(head, names), query_idx, img, ori_shape,
                                harness, OFFICIAL[harness][dataset])
    got = ours(head, dataset, harness, img, ori_shape, vocabulary, **overrides)
    return (got == want).float().mean().item(), want


def family(dataset):
    return 'coco' if dataset.startswith('coco') else 'voc'


@pytest.mark.parametrize('harness,dataset', CASES, ids=[f'{h}-{d}' for h, d in CASES])
def test_preset_labels_agree_with_the_official_harness(head, harness, dataset):
    cfg = OFFICIAL[harness][dataset]
    for i, (h, w) in enumerate(SIZES[family(dataset)]):
        img = smooth_image(*resized_size(h, w, cfg['short']), seed=i)
        agree, want = agreement(head, harness, dataset, img, (h, w))
        assert agree >= AGREEMENT, f'{harness} {dataset} {h}x{w}: {agree:.4%} of pixels agree'
        assert want.unique().numel() > 1   # not a degenerate all-one-label image


def test_the_check_tells_the_merge_orders_apart(head):
    """The comparison has power: our own order (max of logits in each window) on SCLIP's
    VOC21 values gives other labels on some image."""
    worst = 1.0
    for i, (h, w) in enumerate(SIZES['voc']):
        img = smooth_image(*resized_size(h, w, 336), seed=i)
        agree, _ = agreement(head, 'sclip', 'voc21', img, (h, w), synonym_merge='logit_max')
        worst = min(worst, agree)
    assert worst < AGREEMENT


def test_the_presets_resize_is_mmsegs_keep_ratio_resize():
    """The evaluation pipeline's Resize, on extreme aspect ratios too, gives the size of
    mmseg's Resize(scale=(2048, S), keep_ratio=True) that the harnesses configure."""
    from mmseg.datasets.transforms import Resize  # noqa: F401  (registers mmseg's transforms)
    from mmseg.registry import TRANSFORMS

    from ovseg_bench.engine.evaluate import test_pipeline
    protocol = resolve_protocol(Config.fromfile(str(PRESETS / 'sclip.py')).protocol.to_dict(),
                                'voc21')
    ours_resize = TRANSFORMS.build(test_pipeline(protocol)[1])
    theirs = TRANSFORMS.build(dict(type='Resize', scale=(2048, 336), keep_ratio=True))
    for h, w in [(375, 500), (100, 2000), (2000, 90), (50, 4000), (333, 333), (7, 1500)]:
        img = np.zeros((h, w, 3), np.uint8)
        a = ours_resize(dict(img=img.copy()))['img'].shape
        b = theirs(dict(img=img.copy()))['img'].shape
        assert a == b == (*resized_size(h, w, 336), 3)


def test_real_voc_images_agree(head, real_samples):
    """The same check on the real VOC samples (../shared/real_samples), read and resized by
    mmcv as the harnesses' pipeline does."""
    import mmcv
    root = real_samples / 'VOCdevkit' / 'VOC2012'
    stems = (root / 'ImageSets' / 'Segmentation' / 'val.txt').read_text().split()[:2]
    mean = torch.tensor(head.backbone.mean).view(1, 3, 1, 1)
    std = torch.tensor(head.backbone.std).view(1, 3, 1, 1)
    for harness, dataset in [('sclip', 'voc21'), ('naclip', 'voc21'), ('clearclip', 'voc21')]:
        for stem in stems:
            bgr = mmcv.imread(str(root / 'JPEGImages' / f'{stem}.jpg'))
            short = OFFICIAL[harness][dataset]['short']
            resized = mmcv.imrescale(bgr, (2048, short), interpolation='bilinear')
            rgb = torch.from_numpy(resized[..., ::-1].copy()).permute(2, 0, 1)[None].float()
            agree, _ = agreement(head, harness, dataset, (rgb - mean) / std, bgr.shape[:2])
            assert agree >= AGREEMENT, f'{harness} {stem}: {agree:.4%}'
