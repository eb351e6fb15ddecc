"""``prepare context``: Pascal Context, 59 classes + background (context60 and context59), from
VOC 2010 images and PASCAL-Context's 459-class label maps."""
import json
from pathlib import Path

import numpy as np

from ..layouts import LAYOUTS, SPLITS
from .files import (Progress, find_root, first_file, link_or_copy, lookup, pick_splits,
                    read_list, require, save_mask, up_to_date, write_list)

# ---------------------------------------------------------------- label maps
# Pascal Context: the ids (in the 459-class labels.txt of PASCAL-Context) of mmseg's
# PascalContextDataset classes 1..59, in that order; every other label becomes background 0.
CONTEXT59_LABEL_IDS = (
    2, 9, 18, 19, 22, 23, 25, 31, 33, 34, 44, 45, 46, 59, 65, 68, 72, 80, 85, 98, 104, 105,
    113, 115, 144, 158, 159, 162, 187, 189, 207, 220, 232, 258, 259, 260, 284, 295, 296, 308,
    324, 326, 347, 349, 354, 355, 360, 366, 368, 397, 415, 416, 420, 424, 427, 440, 445, 454,
    458)
CONTEXT_MAX_LABEL = 459

CONTEXT_LUT = lookup(CONTEXT59_LABEL_IDS, CONTEXT_MAX_LABEL + 1, 0)       # label -> 0..59


def context_labels(label_map):
    """A 459-class PASCAL-Context ``LabelMap`` -> 0 background, 1..59 (mmseg's order)."""
    label_map = np.asarray(label_map)
    if label_map.size and (label_map.min() < 0 or label_map.max() > CONTEXT_MAX_LABEL):
        raise ValueError(f'labels outside 0..{CONTEXT_MAX_LABEL}: not a 459-class LabelMap')
    return CONTEXT_LUT[label_map.astype(np.int64)]


def load_label_map(path):
    """The ``LabelMap`` of a PASCAL-Context ``.mat`` file."""
    try:
        from scipy.io import loadmat
    except ImportError as err:      # scipy comes with scikit-image, a dependency
        raise ImportError('prepare context reads .mat files with scipy: pip install scipy') \
            from err
    mat = loadmat(str(path))
    if 'LabelMap' not in mat:
        raise ValueError(f'{path}: no LabelMap in this .mat file (keys: '
                         f'{", ".join(k for k in mat if not k.startswith("__"))})')
    return mat['LabelMap']


def convert_label_map(mat_path, dst, to_labels, save=save_mask, force=False):
    """A PASCAL-Context ``.mat`` label map -> ``save(to_labels(LabelMap), dst)``; False when
    ``dst`` was already up to date."""
    mat_path, dst = Path(mat_path), Path(dst)
    if up_to_date(dst, [mat_path], force):
        return False
    try:
        labels = to_labels(load_label_map(mat_path))
    except ValueError as err:
        raise ValueError(f'{mat_path}: {err}') from None
    save(labels, dst)
    return True


def convert_context_mask(mat_path, dst, force=False):
    return convert_label_map(mat_path, dst, context_labels, force=force)


def _context_splits_from_json(path):
    """Image names per split of the Detail API's ``trainval_merged.json`` (``phase``)."""
    with open(path) as f:
        images = json.load(f).get('images', [])
    splits = {s: [] for s in SPLITS}
    for image in images:
        if image.get('phase') in splits:
            name = (Path(image['file_name']).stem if image.get('file_name') else
                    f'{str(image["image_id"])[:4]}_{str(image["image_id"])[4:]}')
            splits[image['phase']].append(name)
    return splits


def prepare_context(src, out, splits=None, force=False, log=print, layout=None,
                    convert=convert_context_mask):
    """PASCAL VOC 2010 images + PASCAL-Context ``trainval/<name>.mat`` label maps ->
    ``OUT/VOCdevkit/VOC2010`` (``SegmentationClassContext``, 0 background + 59 classes).

    The split is the Detail API's (``trainval_merged.json``, as mmseg's converter reads it)
    when that file is in RAW, else VOC 2010's ``ImageSets/Main/{train,val}.txt`` (4998 /
    5105 images, the sizes of the Context splits; check-data compares them).
    ``layout`` and ``convert`` (mat path, mask path, force) serve other label sets of the same
    files (Pascal Context 459, :mod:`.large_vocab`)."""
    layout = layout or LAYOUTS['context']
    raw = find_root(src, ['VOCdevkit/VOC2010', 'VOC2010', '.'], ['JPEGImages'], layout)
    src = Path(src)
    mat_dirs = [src / 'trainval', src / 'trainval/trainval', raw / 'trainval',
                src / 'context/trainval', raw / 'context_raw/trainval/trainval']
    mat_dir = next((d for d in mat_dirs if d.is_dir() and next(d.glob('*.mat'), None)), None)
    if mat_dir is None:
        raise FileNotFoundError(
            f'context: no PASCAL-Context label maps (<name>.mat) in any of '
            f'{", ".join(map(str, mat_dirs))}; extract trainval.tar.gz of PASCAL-Context '
            f'(https://cs.stanford.edu/~roozbeh/pascal-context/) into {src}.')
    json_path = first_file([src / 'trainval_merged.json', raw / 'trainval_merged.json'])
    if json_path is not None:
        names_of = _context_splits_from_json(json_path)
        available = {s: (bool(names_of[s]), f'images of phase {s!r} in {json_path}')
                     for s in SPLITS}
        log(f'context: split from {json_path}')
    else:
        available = {s: raw / 'ImageSets/Main' / f'{s}.txt' for s in SPLITS}
        names_of = {s: read_list(p) for s, p in available.items() if p.is_file()}
    for split in pick_splits(layout, splits, available, log):
        names = names_of[split]
        images = [raw / 'JPEGImages' / f'{n}.jpg' for n in names]
        mats = [mat_dir / f'{n}.mat' for n in names]
        require(layout, split, images, 'images')
        require(layout, split, mats, 'PASCAL-Context label maps')
        progress = Progress(f'context {split}', len(names), log)
        for name, img, mat in zip(names, images, mats):
            wrote = link_or_copy(img, layout.images(out, split) / img.name, force)
            wrote |= convert(mat, layout.masks(out, split) / f'{name}{layout.mask_suffix}', force)
            progress.step(wrote)
        write_list(names, layout.list_file(out, split))
        progress.finish(layout.official[split], Path(out) / layout.subdir)
