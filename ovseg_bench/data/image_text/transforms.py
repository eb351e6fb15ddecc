"""The training views of an image-caption item (registered in mmseg's ``TRANSFORMS``): crops,
resizes, multi-crop views, patch masks, superpixels, and the packing into the item dict."""
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS
from PIL import Image


def add_view(results, key, value):
    """Set ``results[key]`` and list ``key`` in ``view_keys``, so :func:`pack` puts it in the
    item."""
    results[key] = value
    keys = results.setdefault('view_keys', [])
    if key not in keys:
        keys.append(key)


def _resized_crop(img, box, size, flip=False):
    """Crop ``box`` (x0, y0, x1, y1, float pixels) of an HWC uint8 array, resized to
    ``size`` (int or (w, h)) with bicubic filtering, optionally flipped left-right."""
    w, h = (size, size) if isinstance(size, int) else size
    out = Image.fromarray(img).resize((w, h), Image.BICUBIC, box=tuple(float(b) for b in box))
    if flip:
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
    return np.asarray(out)


def sample_box(height, width, scale, ratio, rng=np.random):
    """A random crop box (x0, y0, x1, y1) covering ``scale`` of the area with an aspect ratio
    in ``ratio`` (log-uniform), as in Inception-style random resized crops; falls back to the
    largest centred box of an allowed ratio after 10 tries."""
    area = height * width
    log_ratio = (np.log(ratio[0]), np.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = np.exp(rng.uniform(*log_ratio))
        w = np.sqrt(target * aspect)
        h = np.sqrt(target / aspect)
        if 0 < w <= width and 0 < h <= height:
            x0 = rng.uniform(0, width - w)
            y0 = rng.uniform(0, height - h)
            return (x0, y0, x0 + w, y0 + h)
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, width / ratio[0]
    elif aspect > ratio[1]:
        w, h = height * ratio[1], height
    else:
        w, h = width, height
    x0, y0 = (width - w) / 2, (height - h) / 2
    return (x0, y0, x0 + w, y0 + h)


@TRANSFORMS.register_module()
class RandomResizedCropRGB(BaseTransform):
    """Random crop of ``scale`` of the image area, aspect ratio in ``ratio``, resized to
    ``size`` x ``size`` (bicubic); flipped left-right with probability ``flip_prob``.
    Works on ``img`` (HWC uint8) in place of the image; writes ``crop_box`` and ``flip``."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), flip_prob=0.0):
        self.size = int(size)
        self.scale = tuple(scale)
        self.ratio = tuple(ratio)
        self.flip_prob = flip_prob

    def transform(self, results):
        img = results['img']
        box = sample_box(img.shape[0], img.shape[1], self.scale, self.ratio)
        flip = bool(np.random.rand() < self.flip_prob)
        results['img'] = _resized_crop(img, box, self.size, flip)
        results['img_shape'] = results['img'].shape[:2]
        results['crop_box'] = np.array(box, np.float32)
        results['flip'] = flip
        return results


@TRANSFORMS.register_module()
class ResizeRGB(BaseTransform):
    """Resize ``img`` to ``size`` (int: square, or (w, h)), bicubic, ignoring the aspect."""

    def __init__(self, size):
        self.size = size

    def transform(self, results):
        img = results['img']
        results['img'] = _resized_crop(img, (0, 0, img.shape[1], img.shape[0]), self.size)
        results['img_shape'] = results['img'].shape[:2]
        return results


@TRANSFORMS.register_module()
class MultiCropViews(BaseTransform):
    """Multi-crop views of ``img`` (DINO/ViL-Seg style) for self-supervised objectives.

    Adds ``global_crops`` (G,3,S,S uint8), ``local_crops`` (L,3,s,s uint8), ``crop_boxes``
    (G+L,4 float: x0,y0,x1,y1 in pixels of the image the transform received, global views
    first) and ``crop_flips`` (G+L bool). ``img`` itself is left as it is, so a transform
    after this one (e.g. a resize) makes ``images``.
    """

    def __init__(self, global_size, local_size, n_global=2, n_local=4,
                 global_scale=(0.4, 1.0), local_scale=(0.05, 0.4), ratio=(3 / 4, 4 / 3),
                 flip_prob=0.5):
        self.global_size, self.local_size = int(global_size), int(local_size)
        self.n_global, self.n_local = int(n_global), int(n_local)
        self.global_scale, self.local_scale = tuple(global_scale), tuple(local_scale)
        self.ratio = tuple(ratio)
        self.flip_prob = flip_prob

    def _views(self, img, n, size, scale):
        crops, boxes, flips = [], [], []
        for _ in range(n):
            box = sample_box(img.shape[0], img.shape[1], scale, self.ratio)
            flip = bool(np.random.rand() < self.flip_prob)
            crops.append(_resized_crop(img, box, size, flip).transpose(2, 0, 1))
            boxes.append(box)
            flips.append(flip)
        return crops, boxes, flips

    def transform(self, results):
        img = results['img']
        g, gb, gf = self._views(img, self.n_global, self.global_size, self.global_scale)
        loc, lb, lf = self._views(img, self.n_local, self.local_size, self.local_scale)
        add_view(results, 'global_crops', torch.from_numpy(np.stack(g)))
        if self.n_local:
            add_view(results, 'local_crops', torch.from_numpy(np.stack(loc)))
        add_view(results, 'crop_boxes', torch.tensor(gb + lb, dtype=torch.float32))
        add_view(results, 'crop_flips', torch.tensor(gf + lf, dtype=torch.bool))
        return results


@TRANSFORMS.register_module()
class PatchMask(BaseTransform):
    """A random patch mask for masked-image objectives: ``mask`` (h,w bool, True = masked),
    exactly ``round(ratio * h * w)`` patches of ``patch`` pixels of the current ``img``."""

    def __init__(self, ratio=0.5, patch=16):
        if not 0 <= ratio <= 1:
            raise ValueError(f'ratio must be in [0, 1], got {ratio}')
        self.ratio, self.patch = ratio, int(patch)

    def transform(self, results):
        h, w = (s // self.patch for s in results['img'].shape[:2])
        n = h * w
        masked = np.zeros(n, bool)
        masked[np.random.permutation(n)[:int(round(self.ratio * n))]] = True
        add_view(results, 'mask', torch.from_numpy(masked.reshape(h, w)))
        return results


@TRANSFORMS.register_module()
class Superpixels(BaseTransform):
    """Felzenszwalb superpixels of the current ``img`` (scikit-image), as one id per patch:
    ``superpixels`` (h,w int64, ids 0..S-1), the most frequent superpixel in each ``patch``
    x ``patch`` cell. ``scale``, ``sigma``, ``min_size``: ``felzenszwalb``'s arguments."""

    def __init__(self, patch=16, scale=100.0, sigma=0.5, min_size=20):
        self.patch, self.scale, self.sigma, self.min_size = int(patch), scale, sigma, min_size

    def transform(self, results):
        from skimage.segmentation import felzenszwalb
        img = results['img']
        if results.get('color_order', 'bgr') != 'rgb':
            img = img[..., ::-1]
        seg = felzenszwalb(img, scale=self.scale, sigma=self.sigma, min_size=self.min_size)
        p = self.patch
        h, w = img.shape[0] // p, img.shape[1] // p
        cells = seg[:h * p, :w * p].reshape(h, p, w, p).transpose(0, 2, 1, 3).reshape(h * w, -1)
        n = int(seg.max()) + 1
        counts = np.zeros((h * w, n), np.int32)
        np.add.at(counts, (np.repeat(np.arange(h * w), cells.shape[1]), cells.ravel()), 1)
        ids = counts.argmax(1)
        _, ids = np.unique(ids, return_inverse=True)
        add_view(results, 'superpixels', torch.from_numpy(ids.reshape(h, w).astype(np.int64)))
        return results


def pack(results):
    """The item dict from transform ``results``: ``img`` -> ``images`` (3,H,W uint8 RGB),
    ``gt_seg_map`` -> ``gt_seg``, ``caption`` -> ``captions``, plus ``all_captions``,
    ``img_path`` and every view a transform added (``view_keys``)."""
    img = results['img']
    if results.get('color_order', 'bgr') != 'rgb':      # mmcv's loaders give BGR
        img = img[..., ::-1]
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    item = dict(images=torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))))
    if 'gt_seg_map' in results:
        item['gt_seg'] = torch.from_numpy(np.ascontiguousarray(results['gt_seg_map']))
    if 'caption' in results:
        item['captions'] = results['caption']
    for key in ('all_captions', 'img_path'):
        if key in results:
            item[key] = results[key]
    for key in results.get('view_keys', ()):
        value = results[key]
        item[key] = torch.from_numpy(value) if isinstance(value, np.ndarray) else value
    return item


@TRANSFORMS.register_module()
class ToTensorRGB(BaseTransform):
    """Last transform of a training pipeline: packs ``results`` into the item dict (see
    :func:`pack`). Images stay uint8 RGB; mmcv-loaded (BGR) images are flipped to RGB."""

    def transform(self, results):
        return pack(results)
