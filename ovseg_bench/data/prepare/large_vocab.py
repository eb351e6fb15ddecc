"""``ovseg-bench prepare context459`` and ``prepare ade847``: the large-vocabulary sets in the
16-bit layouts MaskFormer's converters write and ProxyCLIP's harness reads.

Pascal Context with all 459 classes (MaskFormer's ``prepare_pascal_context_full``)::

    VOCdevkit/VOC2010/annotations_detectron2/pc459_{train,val}/<name>.tif

uint16: PASCAL-Context label ``k`` (1..459 of its ``labels.txt``) becomes ``k - 1``; label 0
(no annotation) becomes 65535, the ignore value. Images and split lists are those of the
``context`` layout (VOC 2010's JPEGImages, ImageSets/SegmentationContext).

ADE20K-Full, 847 classes (MaskFormer's ``prepare_ade20k_full_sem_seg``)::

    ADE20K_2021_17_01/images_detectron2/{training,validation}/<name>.jpg
    ADE20K_2021_17_01/annotations_detectron2/{training,validation}/<name>.tif

As that converter does, images with a short side over 512 are shrunk to 512 (and every image
re-saved as JPEG), so the files equal the ones other harnesses read.
"""
import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..layouts import ADE_DIRS, LAYOUTS, SPLITS, WIDE_VOID
from .context import CONTEXT_MAX_LABEL, convert_label_map, prepare_context
from .files import Progress, find_root, partial_path, pick_splits, require, up_to_date

CONTEXT459, ADE847 = LAYOUTS['context459'], LAYOUTS['ade847']


def save_wide_mask(labels, dst):
    """Write a uint16 label map as a single-channel 16-bit TIFF, through a temporary file."""
    dst = Path(dst)
    tmp = partial_path(dst)
    Image.fromarray(np.ascontiguousarray(labels, dtype=np.uint16)).save(tmp, format='TIFF')
    os.replace(tmp, dst)


def context459_labels(label_map):
    """A PASCAL-Context ``LabelMap`` (0..459) -> 0..458, and 65535 where it is 0."""
    label_map = np.asarray(label_map).astype(np.int64)
    if label_map.size and (label_map.min() < 0 or label_map.max() > CONTEXT_MAX_LABEL):
        raise ValueError(f'labels outside 0..{CONTEXT_MAX_LABEL}: not a 459-class '
                         f'LabelMap')
    return np.where(label_map == 0, WIDE_VOID, label_map - 1).astype(np.uint16)


def convert_context459_mask(mat_path, dst, force=False):
    return convert_label_map(mat_path, dst, context459_labels, save_wide_mask, force)


def prepare_context459(src, out, splits=None, force=False, log=print):
    """The ``context`` converter's raw files and splits, with 459-class 16-bit masks."""
    prepare_context(src, out, splits, force, log, layout=CONTEXT459,
                    convert=convert_context459_mask)


# ---------------------------------------------------------------- ADE20K-Full (847 classes)
# The ADE20K object index (``R // 10 * 256 + G`` of a ``*_seg.png``) of each of the 847
# classes, one per line in class order (MaskFormer's ADE20K_SEM_SEG_FULL_CATEGORIES, by
# trainId); every other object becomes 65535.
ADE847_IDS = tuple(int(v) for v in
                   (Path(__file__).parents[1] / 'ade847_ids.txt').read_text().split())
ADE847_SHORT = 512          # MaskFormer's converter shrinks images whose short side is longer


def ade847_labels(seg_rgb):
    """An ADE20K ``*_seg.png`` (R, G encode the object index) -> 0..846, 65535 elsewhere."""
    seg = np.asarray(seg_rgb)
    index = (seg[..., 0] / 10).astype(np.int32) * 256 + seg[..., 1].astype(np.int32)
    lut = np.full(max(ADE847_IDS + (int(index.max()),)) + 1, WIDE_VOID, np.uint16)
    lut[list(ADE847_IDS)] = np.arange(len(ADE847_IDS))
    return lut[index]


def ade847_size(h, w, short=ADE847_SHORT):
    """MaskFormer's output size: the short side brought down to ``short`` (never up)."""
    if w >= h > short:
        return short, round(w / float(h) * short)
    if h >= w > short:
        return round(h / float(w) * short), short
    return h, w


def convert_ade847(img_path, seg_path, img_dst, mask_dst, force=False):
    """One image and its mask as MaskFormer's converter writes them: resized (bilinear image,
    nearest mask) when the short side passes 512, the image re-saved as JPEG by PIL."""
    import cv2
    if up_to_date(mask_dst, [seg_path], force) and up_to_date(img_dst, [img_path]):
        return False
    with Image.open(img_path) as im:
        img = np.asarray(im.convert('RGB'))
    with Image.open(seg_path) as sm:
        labels = ade847_labels(sm.convert('RGB'))
    h, w = img.shape[:2]
    nh, nw = ade847_size(h, w)
    if (nh, nw) != (h, w):
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
        labels = cv2.resize(labels, (nw, nh), interpolation=cv2.INTER_NEAREST)
    tmp = partial_path(Path(img_dst))
    Image.fromarray(img).save(tmp, format='JPEG')
    os.replace(tmp, img_dst)
    save_wide_mask(labels, mask_dst)
    return True


def prepare_ade847(src, out, splits=None, force=False, log=print):
    """ADE20K_2021_17_01 (``images/ADE/{training,validation}/**/<name>.jpg`` with
    ``<name>_seg.png``) -> ``OUT/ADE20K_2021_17_01/{images,annotations}_detectron2``."""
    raw = find_root(src, ['ADE20K_2021_17_01', '.'], ['images/ADE'], ADE847)
    available = {s: raw / 'images' / 'ADE' / ADE_DIRS[s] for s in SPLITS}
    for split in pick_splits(ADE847, splits, available, log):
        images = sorted(available[split].rglob('*.jpg'))
        segs = [p.with_name(f'{p.stem}_seg.png') for p in images]
        require(ADE847, split, segs, 'object masks (<name>_seg.png)')
        progress = Progress(f'ade847 {split}', len(images), log)
        for img, seg in zip(images, segs):
            progress.step(convert_ade847(
                img, seg, ADE847.images(out, split) / img.name,
                ADE847.masks(out, split) / f'{img.stem}.tif', force))
        progress.finish(ADE847.official[split], Path(out) / ADE847.subdir)
