"""``prepare voc``: PASCAL VOC 2012 segmentation (the voc21 and voc20 configs)."""
from pathlib import Path

import numpy as np
from PIL import Image

from ..layouts import LAYOUTS, SPLITS, VOC_PALETTE, VOID, voc_colormap
from .files import (Progress, find_root, link_or_copy, pick_splits, read_list, require,
                    save_mask, up_to_date, write_list)


def voc_colours_to_labels(rgb, path=''):
    """An RGB-coloured VOC mask -> its label indices (0..20, 255); unknown colours fail."""
    cmap = voc_colormap(256).astype(np.int64)
    indices = list(range(21)) + [VOID]
    code_of = {int((cmap[i, 0] << 16) | (cmap[i, 1] << 8) | cmap[i, 2]): i for i in indices}
    rgb = rgb.astype(np.int64)
    codes, inverse = np.unique((rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2],
                               return_inverse=True)
    unknown = [c for c in codes.tolist() if c not in code_of]
    if unknown:
        shown = ', '.join(f'({c >> 16}, {(c >> 8) & 255}, {c & 255})' for c in unknown[:5])
        raise ValueError(f'{path}: colours that are not in VOC\'s colour map: {shown}')
    return np.array([code_of[c] for c in codes.tolist()], np.uint8)[inverse.reshape(
        rgb.shape[:2])]


def _check_values(labels, num_labels, path):
    bad = np.unique(labels[(labels >= num_labels) & (labels != VOID)])
    if bad.size:
        raise ValueError(f'{path}: label values {bad.tolist()[:10]} outside 0..'
                         f'{num_labels - 1} and {VOID}')


def convert_voc_mask(src, dst, force=False):
    """A VOC class mask -> a single-channel index PNG (0 background, 1..20, 255 void).

    The official palette PNGs already are one: checked and linked as they are. An
    RGB-coloured mask (as some mirrors ship) is mapped through VOC's colour map exactly."""
    src, dst = Path(src), Path(dst)
    if up_to_date(dst, [src], force):
        return False
    with Image.open(src) as img:
        mode = img.mode
        if mode in ('P', 'L'):
            labels = np.asarray(img)
        elif mode in ('RGB', 'RGBA'):
            labels = voc_colours_to_labels(np.asarray(img.convert('RGB')), src)
        else:
            raise ValueError(f'{src}: a {mode} image, not a VOC class mask (palette PNG)')
    _check_values(labels, 21, src)
    if mode in ('P', 'L'):
        return link_or_copy(src, dst, force)
    save_mask(labels, dst, VOC_PALETTE)
    return True


def prepare_voc(src, out, splits=None, force=False, log=print):
    """PASCAL VOC 2012 (``RAW/VOCdevkit/VOC2012``) -> ``OUT/VOCdevkit/VOC2012``."""
    layout = LAYOUTS['voc']
    raw = find_root(src, ['VOCdevkit/VOC2012', 'VOC2012', '.'],
                     ['JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation'], layout)
    lists = {s: raw / 'ImageSets/Segmentation' / f'{s}.txt' for s in SPLITS}
    for split in pick_splits(layout, splits, lists, log):
        names = read_list(lists[split])
        images = [raw / 'JPEGImages' / f'{n}.jpg' for n in names]
        masks = [raw / 'SegmentationClass' / f'{n}.png' for n in names]
        require(layout, split, images, f'images listed in {lists[split]}')
        require(layout, split, masks, f'masks listed in {lists[split]}')
        progress = Progress(f'voc {split}', len(names), log)
        for name, img, mask in zip(names, images, masks):
            wrote = link_or_copy(img, layout.images(out, split) / img.name, force)
            wrote |= convert_voc_mask(mask, layout.masks(out, split) / mask.name, force)
            progress.step(wrote)
        write_list(names, layout.list_file(out, split))
        progress.finish(layout.official[split], Path(out) / layout.subdir)
