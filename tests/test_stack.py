"""The installed stack: mmcv's compiled CPU ops, built by ``make install`` with reduced
optimisation and no debug info, give the same numbers as plain PyTorch references."""
import math

import pytest
import torch
import torch.nn.functional as F

ops = pytest.importorskip('mmcv.ops')


def _random_boxes(n, size=64.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size * 0.7
    wh = torch.rand(n, 2, generator=g) * size * 0.3 + 2
    return torch.cat([xy, xy + wh], 1)


def _iou(a, b):
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = lambda x: (x[:, 2:] - x[:, :2]).prod(-1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter)


def test_compiled_extension_is_loaded():
    from mmcv.utils import ext_loader
    ext = ext_loader.load_ext('_ext', ['nms', 'roi_align_forward'])
    assert hasattr(ext, 'nms') and hasattr(ext, 'roi_align_forward')


def test_nms_matches_greedy_reference():
    boxes = _random_boxes(200)
    scores = torch.rand(200, generator=torch.Generator().manual_seed(1))
    _, keep = ops.nms(boxes, scores, iou_threshold=0.3)
    order = scores.argsort(descending=True)
    iou = _iou(boxes, boxes)
    expected, suppressed = [], torch.zeros(200, dtype=torch.bool)
    for i in order.tolist():
        if not suppressed[i]:
            expected.append(i)
            suppressed |= iou[i] > 0.3
    assert keep.tolist() == expected
    assert 0 < len(expected) < 200


def test_bbox_overlaps_matches_reference():
    a, b = _random_boxes(30, seed=2), _random_boxes(40, seed=3)
    torch.testing.assert_close(ops.bbox_overlaps(a, b), _iou(a, b), rtol=1e-5, atol=1e-6)


def _bilinear(feat, y, x):
    """detectron2's bilinear sample of one (C,H,W) map, 0 outside [-1, H] x [-1, W]."""
    _, h, w = feat.shape
    if y < -1 or y > h or x < -1 or x > w:
        return feat.new_zeros(feat.shape[0])
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(y), int(x)
    if y0 >= h - 1:
        y0 = y1 = h - 1
        y = float(y0)
    else:
        y1 = y0 + 1
    if x0 >= w - 1:
        x0 = x1 = w - 1
        x = float(x0)
    else:
        x1 = x0 + 1
    ly, lx = y - y0, x - x0
    return ((1 - ly) * (1 - lx) * feat[:, y0, x0] + (1 - ly) * lx * feat[:, y0, x1]
            + ly * (1 - lx) * feat[:, y1, x0] + ly * lx * feat[:, y1, x1])


def _roi_align_reference(feat, rois, out, scale, ratio):
    result = []
    for b, x1, y1, x2, y2 in rois.tolist():
        x1, y1, x2, y2 = (v * scale - 0.5 for v in (x1, y1, x2, y2))  # aligned=True
        bh, bw = (y2 - y1) / out, (x2 - x1) / out
        cells = torch.zeros(feat.shape[1], out, out)
        for py in range(out):
            for px in range(out):
                samples = [_bilinear(feat[int(b)], y1 + py * bh + (iy + 0.5) * bh / ratio,
                                     x1 + px * bw + (ix + 0.5) * bw / ratio)
                           for iy in range(ratio) for ix in range(ratio)]
                cells[:, py, px] = torch.stack(samples).mean(0)
        result.append(cells)
    return torch.stack(result)


def test_roi_align_matches_bilinear_reference():
    feat = torch.randn(2, 3, 16, 20, generator=torch.Generator().manual_seed(4))
    boxes = _random_boxes(6, size=60.0, seed=5)
    rois = torch.cat([torch.tensor([0., 1, 0, 1, 1, 0])[:, None], boxes], 1)
    got = ops.roi_align(feat, rois, (4, 4), spatial_scale=0.25, sampling_ratio=2,
                        pool_mode='avg', aligned=True)
    expected = _roi_align_reference(feat, rois, 4, 0.25, 2)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_deform_conv_with_zero_offsets_is_a_convolution():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(2, 4, 9, 11, generator=g)
    weight = torch.randn(6, 4, 3, 3, generator=g) / math.sqrt(36)
    offset = torch.zeros(2, 2 * 9, 9, 11)
    got = ops.deform_conv2d(x, offset, weight, 1, 1)
    torch.testing.assert_close(got, F.conv2d(x, weight, padding=1), rtol=1e-4, atol=1e-5)
    mask = torch.ones(2, 9, 9, 11)
    got = ops.modulated_deform_conv2d(x, offset, mask, weight, None, 1, 1)
    torch.testing.assert_close(got, F.conv2d(x, weight, padding=1), rtol=1e-4, atol=1e-5)
