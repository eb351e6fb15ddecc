"""``ovseg-bench prepare cityscapes``: leftImg8bit + gtFine -> the layout mmseg's
``CityscapesDataset`` reads, with 19-class train ids.

The official download keeps one folder per city (``leftImg8bit/<split>/<city>/``); the prepared
layout is flat (the file names already start with the city), which mmseg reads the same way
since it scans folders recursively, and which ``check-data`` can pair file by file::

    cityscapes/leftImg8bit/{train,val}/<city>_<seq>_<frame>_leftImg8bit.png
    cityscapes/gtFine/{train,val}/<city>_<seq>_<frame>_gtFine_labelTrainIds.png

Masks hold the 19 train ids (0..18) and 255 for every other label, from the ``labelIds``
masks by the Cityscapes label table (cityscapesScripts ``labels.py``); ``*_labelTrainIds.png``
already made by cityscapesScripts are linked as they are.
"""
from pathlib import Path

import numpy as np

from ..layouts import LAYOUTS, SPLITS, VOID
from .files import (Progress, convert_id_mask, find_root, link_or_copy, lookup, pick_splits,
                    require)

# labelId -> trainId of the 19 evaluated classes (road 7 -> 0, ..., bicycle 33 -> 18).
CITYSCAPES_LABEL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32,
                        33)
CITYSCAPES_LUT = lookup(CITYSCAPES_LABEL_IDS, 256, VOID)
LAYOUT = LAYOUTS['cityscapes']
IMG_SUFFIX, MASK_SUFFIX = LAYOUT.img_suffix, LAYOUT.mask_suffix
LABEL_IDS_SUFFIX = '_gtFine_labelIds.png'


def cityscapes_labels(label_ids):
    """Cityscapes labelIds (0..33, -1 stored as 255) -> train ids 0..18, 255 elsewhere."""
    return CITYSCAPES_LUT[np.asarray(label_ids, np.uint8)]


def convert_cityscapes_mask(src, dst, force=False):
    return convert_id_mask(src, dst, cityscapes_labels, 'a labelIds mask', force)


def prepare_cityscapes(src, out, splits=None, force=False, log=print):
    """Cityscapes ``leftImg8bit/`` and ``gtFine/`` (``RAW`` or ``RAW/cityscapes``) ->
    ``OUT/cityscapes``, flat per split, train-id masks."""
    raw = find_root(src, ['.', 'cityscapes'], ['leftImg8bit', 'gtFine'], LAYOUT)
    available = {s: raw / 'leftImg8bit' / s for s in SPLITS}
    for split in pick_splits(LAYOUT, splits, available, log):
        images = sorted((raw / 'leftImg8bit' / split).glob(f'*/*{IMG_SUFFIX}'))
        if not images:
            raise FileNotFoundError(f'cityscapes {split}: no <city>/*{IMG_SUFFIX} in '
                                    f'{raw / "leftImg8bit" / split}; extract '
                                    f'{LAYOUT.download} again.')
        stems = [p.name[:-len(IMG_SUFFIX)] for p in images]
        gt_dir = raw / 'gtFine' / split
        train_ids = [gt_dir / p.parent.name / f'{s}{MASK_SUFFIX}' for p, s in zip(images, stems)]
        label_ids = [gt_dir / p.parent.name / f'{s}{LABEL_IDS_SUFFIX}'
                     for p, s in zip(images, stems)]
        require(LAYOUT, split, [t if t.is_file() else lab
                                for t, lab in zip(train_ids, label_ids)],
                'gtFine labelIds masks')
        progress = Progress(f'cityscapes {split}', len(images), log)
        for img, stem, tid, lid in zip(images, stems, train_ids, label_ids):
            wrote = link_or_copy(img, LAYOUT.images(out, split) / img.name, force)
            dst = LAYOUT.masks(out, split) / f'{stem}{MASK_SUFFIX}'
            if tid.is_file():
                wrote |= link_or_copy(tid, dst, force)
            else:
                wrote |= convert_cityscapes_mask(lid, dst, force)
            progress.step(wrote)
        progress.finish(LAYOUT.official[split], Path(out) / LAYOUT.subdir)
