"""``ovseg-bench prepare``: the official downloads -> the layouts the dataset configs read.

One converter per dataset family, named as on the command line (:data:`PREPARERS`):

``voc``          PASCAL VOC 2012 segmentation (the voc21 and voc20 configs)
``context``      Pascal Context, 59 classes + background (context60 and context59)
``coco-stuff``   COCO-Stuff 164k, 171 train ids (coco_stuff171)
``coco-object``  COCO-Object, background + 80 things, from the instance annotations
                 (coco_object)
``ade20k``       ADE20K SceneParsing, ADEChallengeData2016 (ade150)
``cityscapes``   Cityscapes, 19 train ids (cityscapes; prepare_cityscapes.py)
``context459``   Pascal Context with all 459 classes, 16-bit (context459; prepare_large_vocab.py)
``ade847``       ADE20K-Full, 847 classes, 16-bit (ade847; prepare_large_vocab.py)

The dataset config names (``voc21``, ``context59``, ...) are accepted too
(:func:`resolve_name`), so the ``Prepare it with:`` hints of the dataset classes run as
printed.

Images are hardlinked (copied when the output is on another filesystem), never re-encoded.
Every output goes through a temporary file, so an interrupted run leaves no truncated file,
and a rerun skips outputs already newer than their source (``force`` redoes them). Raw files
are checked before anything is written: a missing folder or file fails naming it and the
official download it comes from.
"""
import io
import json
import os
import shutil
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .synthetic import voc_colormap

SPLITS = ('train', 'val')
VOID = 255                  # the ignore value of every layout
PROGRESS_EVERY = 500        # a progress line every this many images


@dataclass(frozen=True)
class Layout:
    """A prepared dataset under ``DATA_ROOT``: what ``prepare`` writes, ``check-data`` checks
    and the dataset configs read. Folder templates take ``{split}``, the split's folder name
    (``split_dirs``)."""
    name: str               # the name given to ``ovseg-bench prepare`` and ``check-data``
    subdir: str             # the dataset's folder under DATA_ROOT
    img_dir: str
    mask_dir: str
    mask_suffix: str        # the mask of image <name><img_suffix> is <name><mask_suffix>
    num_labels: int         # valid mask values: 0..num_labels-1, and VOID
    official: dict          # split -> number of images in the official release
    configs: tuple          # the dataset configs (configs/_base_/datasets) that read it
    download: str           # the official download, for error messages
    split_file: str = ''    # set when a file lists the split's images (one name per line)
    split_dirs: dict = field(default_factory=lambda: {s: s for s in SPLITS})
    img_suffix: str = '.jpg'
    void: int = VOID        # the ignore value (65535 in the 16-bit layouts of 459/847 classes)

    def _path(self, root, template, split):
        return Path(root) / self.subdir / template.format(split=self.split_dirs[split])

    def images(self, root, split):
        return self._path(root, self.img_dir, split)

    def masks(self, root, split):
        return self._path(root, self.mask_dir, split)

    def list_file(self, root, split):
        return self._path(root, self.split_file, split) if self.split_file else None

    def prepare_command(self, root='DATA_ROOT'):
        return f'ovseg-bench prepare {self.name} --src RAW --out {root}'


_VOC_DOWNLOAD = ('VOCtrainval_11-May-2012.tar (PASCAL VOC 2012, '
                 'http://host.robots.ox.ac.uk/pascal/VOC/voc2012/)')
_CONTEXT_DOWNLOAD = ('VOCtrainval_03-May-2010.tar (PASCAL VOC 2010, '
                     'http://host.robots.ox.ac.uk/pascal/VOC/voc2010/) and trainval.tar.gz '
                     '(PASCAL-Context, https://cs.stanford.edu/~roozbeh/pascal-context/)')
_COCO_IMAGES = 'train2017.zip and val2017.zip (COCO 2017, https://cocodataset.org/#download)'
_COCO_STUFF_DOWNLOAD = (f'{_COCO_IMAGES} and stuffthingmaps_trainval2017.zip '
                        '(COCO-Stuff, https://github.com/nightrome/cocostuff)')
_COCO_OBJECT_DOWNLOAD = (f'{_COCO_IMAGES} and annotations_trainval2017.zip '
                         '(instances_{train,val}2017.json, same page)')
_ADE_DOWNLOAD = ('ADEChallengeData2016.zip (MIT Scene Parsing benchmark, '
                 'http://sceneparsing.csail.mit.edu/)')
_COCO_DIRS = {'train': 'train2017', 'val': 'val2017'}

LAYOUTS = {layout.name: layout for layout in (
    Layout('voc', 'VOCdevkit/VOC2012', 'JPEGImages', 'SegmentationClass', '.png', 21,
           {'train': 1464, 'val': 1449}, ('voc21', 'voc20'), _VOC_DOWNLOAD,
           split_file='ImageSets/Segmentation/{split}.txt'),
    Layout('context', 'VOCdevkit/VOC2010', 'JPEGImages', 'SegmentationClassContext', '.png',
           60, {'train': 4998, 'val': 5105}, ('context60', 'context59'), _CONTEXT_DOWNLOAD,
           split_file='ImageSets/SegmentationContext/{split}.txt'),
    Layout('coco-stuff', 'coco_stuff164k', 'images/{split}', 'annotations/{split}',
           '_labelTrainIds.png', 171, {'train': 118287, 'val': 5000}, ('coco_stuff171',),
           _COCO_STUFF_DOWNLOAD, split_dirs=_COCO_DIRS),
    Layout('coco-object', 'coco_stuff164k', 'images/{split}', 'annotations/{split}',
           '_instanceTrainIds.png', 81, {'train': 118287, 'val': 5000}, ('coco_object',),
           _COCO_OBJECT_DOWNLOAD, split_dirs=_COCO_DIRS),
    Layout('ade20k', 'ADEChallengeData2016', 'images/{split}', 'annotations/{split}', '.png',
           151, {'train': 20210, 'val': 2000}, ('ade150',), _ADE_DOWNLOAD,
           split_dirs={'train': 'training', 'val': 'validation'}),
)}
# Every dataset config name (and a few spellings) -> the layout that serves it.
ALIASES = {config: layout.name for layout in LAYOUTS.values() for config in layout.configs}
ALIASES.update({'coco_stuff': 'coco-stuff', 'cocostuff': 'coco-stuff', 'ade': 'ade20k',
                'pascal_context': 'context', 'pascal-context': 'context'})


def resolve_name(name):
    """The layout name for a prepare/check-data name or a dataset config name."""
    if name in LAYOUTS:
        return name
    if name in ALIASES:
        return ALIASES[name]
    raise KeyError(f'unknown dataset {name!r} to prepare; valid: {", ".join(LAYOUTS)} '
                   f'(or a dataset config name: {", ".join(sorted(ALIASES))})')


# ---------------------------------------------------------------- label maps
# Pascal Context: the ids (in the 459-class labels.txt of PASCAL-Context) of mmseg's
# PascalContextDataset classes 1..59, in that order; every other label becomes background 0.
CONTEXT59_LABEL_IDS = (
    2, 9, 18, 19, 22, 23, 25, 31, 33, 34, 44, 45, 46, 59, 65, 68, 72, 80, 85, 98, 104, 105,
    113, 115, 144, 158, 159, 162, 187, 189, 207, 220, 232, 258, 259, 260, 284, 295, 296, 308,
    324, 326, 347, 349, 354, 355, 360, 366, 368, 397, 415, 416, 420, 424, 427, 440, 445, 454,
    458)
CONTEXT_MAX_LABEL = 459

# COCO: stuffthingmaps hold the COCO category id - 1 (0..181). These 11 ids were never used;
# the other 171 become train ids 0..170 in order (mmseg's COCOStuffDataset classes).
COCO_UNUSED_IDS = (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90)
COCO_STUFF_IDS = tuple(i for i in range(182) if i not in COCO_UNUSED_IDS)
# The 80 thing category ids of instances_*.json (1..90 with gaps), in COCO-Stuff's order.
COCO_THING_CATEGORY_IDS = tuple(i + 1 for i in range(90) if i not in COCO_UNUSED_IDS)


def _lookup(ids, size, default):
    lut = np.full(size, default, np.uint8)
    lut[list(ids)] = np.arange(len(ids)) + (1 if default == 0 else 0)
    return lut


CONTEXT_LUT = _lookup(CONTEXT59_LABEL_IDS, CONTEXT_MAX_LABEL + 1, 0)      # label -> 0..59
COCO_STUFF_LUT = _lookup(COCO_STUFF_IDS, 256, VOID)                      # id -> 0..170
COCO_THING_TRAIN_ID = {cat: i + 1 for i, cat in enumerate(COCO_THING_CATEGORY_IDS)}


# ---------------------------------------------------------------- files
def _stat_mtime(path):
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


def _up_to_date(dst, sources, force=False):
    """``dst`` exists and is at least as new as every source (and no ``force``)."""
    if force:
        return False
    done = _stat_mtime(dst)
    return done is not None and all(done >= src.stat().st_mtime for src in sources)


def _partial(dst):
    dst.parent.mkdir(parents=True, exist_ok=True)
    return dst.with_name(f'.{dst.name}.part')


def link_or_copy(src, dst, force=False):
    """Hardlink ``src`` to ``dst`` (no space, no re-encoding), copying across filesystems or
    where a link is refused. Returns False when ``dst`` was already up to date."""
    src, dst = Path(src), Path(dst)
    if not force and (_up_to_date(dst, [src]) or
                      (dst.exists() and os.path.samefile(src, dst))):
        return False
    tmp = _partial(dst)
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:                 # another filesystem, or a file this user may not link
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    return True


def save_mask(labels, dst, palette=None):
    """Write a uint8 label map as a single-channel PNG (palette PNG with ``palette``)."""
    dst = Path(dst)
    img = Image.fromarray(np.ascontiguousarray(labels, dtype=np.uint8), 'L')
    if palette is not None:
        img = img.convert('P')      # 'L' -> 'P' keeps the indices
        img.putpalette(palette)
    tmp = _partial(dst)
    img.save(tmp, format='PNG')
    os.replace(tmp, dst)


class Progress:
    """Counts the images of one split, printing a line every ``every`` and a summary."""

    def __init__(self, label, total, log, every=PROGRESS_EVERY):
        self.label, self.total, self.log, self.every = label, total, log, every
        self.done = self.written = 0

    def step(self, wrote):
        self.done += 1
        self.written += bool(wrote)
        if self.done % self.every == 0 and self.done < self.total:
            self.log(f'  {self.label}: {self.done}/{self.total}')

    def finish(self, official, where):
        note = (f'; the official split has {official}: a partial copy'
                if official and self.done != official else '')
        self.log(f'  {self.label}: {self.done} images ({self.written} written, '
                 f'{self.done - self.written} already up to date) -> {where}{note}')


def _first_dir(candidates):
    return next((c for c in candidates if c.is_dir()), None)


def _first_file(candidates):
    return next((c for c in candidates if c.is_file()), None)


def _find_root(src, candidates, required, layout):
    """The first of ``src``/candidate holding every ``required`` path, else a clear error."""
    src = Path(src)
    _require_dir(src, layout)
    for candidate in candidates:
        root = src / candidate
        if all((root / r).exists() for r in required):
            return root
    best = src / candidates[0]
    missing = [str(best / r) for r in required if not (best / r).exists()]
    raise FileNotFoundError(
        f'{layout.name}: {src} is not the extracted official download: missing '
        f'{", ".join(missing)}. Expected {best}/{{{",".join(required)}}}; download '
        f'{layout.download} and extract it into {src}.')


def _require(layout, split, paths, what):
    missing = [p for p in paths if not p.is_file()]
    if missing:
        shown = '\n  '.join(map(str, missing[:5]))
        more = f'\n  ... and {len(missing) - 5} more' if len(missing) > 5 else ''
        raise FileNotFoundError(
            f'{layout.name} {split}: {len(missing)} {what} missing:\n  {shown}{more}\n'
            f'The raw folder is incomplete; extract {layout.download} again.')


def _pick_splits(layout, requested, sources, log):
    """The splits to prepare: ``requested`` (each must be in the raw files) or every split
    that is (the others are skipped with a note: a val-only copy is fine for evaluation).

    ``sources``: split -> the raw path that holds it, or (found, what is missing)."""
    found = {s: (src.exists(), str(src)) if isinstance(src, Path) else src
             for s, src in sources.items()}
    for split in requested or ():
        if not found[split][0]:
            raise FileNotFoundError(
                f'{layout.name}: no {split} split in the raw files: missing {found[split][1]} '
                f'(part of {layout.download}).')
    if requested:
        return list(requested)
    chosen = [s for s in SPLITS if found[s][0]]
    if not chosen:
        raise FileNotFoundError(
            f'{layout.name}: no split found in the raw files: missing '
            f'{" and ".join(found[s][1] for s in SPLITS)} (part of {layout.download}).')
    for split in SPLITS:
        if split not in chosen:
            log(f'{layout.name}: skipping {split}, not in the raw files ({found[split][1]})')
    return chosen


def _require_dir(src, layout):
    if not Path(src).is_dir():
        raise FileNotFoundError(f'{layout.name}: raw folder {src} does not exist. '
                                f'Download {layout.download} and extract it there.')


def _read_list(path):
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]


def _write_list(names, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _partial(path)
    tmp.write_text(''.join(f'{n}\n' for n in names))
    os.replace(tmp, path)


# ---------------------------------------------------------------- VOC 2012
VOC_PALETTE = voc_colormap(256).reshape(-1).tolist()


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
    if _up_to_date(dst, [src], force):
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
    raw = _find_root(src, ['VOCdevkit/VOC2012', 'VOC2012', '.'],
                     ['JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation'], layout)
    lists = {s: raw / 'ImageSets/Segmentation' / f'{s}.txt' for s in SPLITS}
    for split in _pick_splits(layout, splits, lists, log):
        names = _read_list(lists[split])
        images = [raw / 'JPEGImages' / f'{n}.jpg' for n in names]
        masks = [raw / 'SegmentationClass' / f'{n}.png' for n in names]
        _require(layout, split, images, f'images listed in {lists[split]}')
        _require(layout, split, masks, f'masks listed in {lists[split]}')
        progress = Progress(f'voc {split}', len(names), log)
        for name, img, mask in zip(names, images, masks):
            wrote = link_or_copy(img, layout.images(out, split) / img.name, force)
            wrote |= convert_voc_mask(mask, layout.masks(out, split) / mask.name, force)
            progress.step(wrote)
        _write_list(names, layout.list_file(out, split))
        progress.finish(layout.official[split], Path(out) / layout.subdir)


# ---------------------------------------------------------------- Pascal Context
def context_labels(label_map):
    """A 459-class PASCAL-Context ``LabelMap`` -> 0 background, 1..59 (mmseg's order)."""
    label_map = np.asarray(label_map)
    if label_map.size and (label_map.min() < 0 or label_map.max() > CONTEXT_MAX_LABEL):
        raise ValueError(f'labels outside 0..{CONTEXT_MAX_LABEL}: not a 459-class LabelMap')
    return CONTEXT_LUT[label_map.astype(np.int64)]


def _load_label_map(path):
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


def convert_context_mask(mat_path, dst, force=False):
    mat_path, dst = Path(mat_path), Path(dst)
    if _up_to_date(dst, [mat_path], force):
        return False
    try:
        labels = context_labels(_load_label_map(mat_path))
    except ValueError as err:
        raise ValueError(f'{mat_path}: {err}') from None
    save_mask(labels, dst)
    return True


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
    files (Pascal Context 459, prepare_large_vocab.py)."""
    layout = layout or LAYOUTS['context']
    raw = _find_root(src, ['VOCdevkit/VOC2010', 'VOC2010', '.'], ['JPEGImages'], layout)
    src = Path(src)
    mat_dirs = [src / 'trainval', src / 'trainval/trainval', raw / 'trainval',
                src / 'context/trainval', raw / 'context_raw/trainval/trainval']
    mat_dir = next((d for d in mat_dirs if d.is_dir() and next(d.glob('*.mat'), None)), None)
    if mat_dir is None:
        raise FileNotFoundError(
            f'context: no PASCAL-Context label maps (<name>.mat) in any of '
            f'{", ".join(map(str, mat_dirs))}; extract trainval.tar.gz of PASCAL-Context '
            f'(https://cs.stanford.edu/~roozbeh/pascal-context/) into {src}.')
    json_path = _first_file([src / 'trainval_merged.json', raw / 'trainval_merged.json'])
    if json_path is not None:
        names_of = _context_splits_from_json(json_path)
        available = {s: (bool(names_of[s]), f'images of phase {s!r} in {json_path}')
                     for s in SPLITS}
        log(f'context: split from {json_path}')
    else:
        available = {s: raw / 'ImageSets/Main' / f'{s}.txt' for s in SPLITS}
        names_of = {s: _read_list(p) for s, p in available.items() if p.is_file()}
    for split in _pick_splits(layout, splits, available, log):
        names = names_of[split]
        images = [raw / 'JPEGImages' / f'{n}.jpg' for n in names]
        mats = [mat_dir / f'{n}.mat' for n in names]
        _require(layout, split, images, 'images')
        _require(layout, split, mats, 'PASCAL-Context label maps')
        progress = Progress(f'context {split}', len(names), log)
        for name, img, mat in zip(names, images, mats):
            wrote = link_or_copy(img, layout.images(out, split) / img.name, force)
            wrote |= convert(mat, layout.masks(out, split) / f'{name}{layout.mask_suffix}', force)
            progress.step(wrote)
        _write_list(names, layout.list_file(out, split))
        progress.finish(layout.official[split], Path(out) / layout.subdir)


# ---------------------------------------------------------------- COCO
def _coco_images(src, folder, what):
    """The COCO image folder of a split (``RAW/images/<folder>`` or ``RAW/<folder>``)."""
    found = _first_dir([Path(src) / 'images' / folder, Path(src) / folder])
    if found is None:
        raise FileNotFoundError(f'{what}: no image folder {src}/images/{folder} or '
                                f'{src}/{folder}; extract {folder}.zip '
                                f'(https://cocodataset.org/#download) there.')
    return found


def coco_stuff_labels(ids):
    """COCO-Stuff stuffthingmap ids (0..181, 255 unlabelled) -> train ids 0..170, 255."""
    return COCO_STUFF_LUT[np.asarray(ids, np.uint8)]


def convert_coco_stuff_mask(src, dst, force=False):
    src, dst = Path(src), Path(dst)
    if _up_to_date(dst, [src], force):
        return False
    with Image.open(src) as img:
        if img.mode not in ('L', 'P'):
            raise ValueError(f'{src}: a {img.mode} image, not a stuffthingmap (8-bit ids)')
        labels = coco_stuff_labels(np.asarray(img))
    save_mask(labels, dst)
    return True


def prepare_coco_stuff(src, out, splits=None, force=False, log=print):
    """COCO 2017 images + COCO-Stuff ``stuffthingmaps`` -> ``OUT/coco_stuff164k``
    (``<id>_labelTrainIds.png``). The stuffthingmaps may sit in ``RAW/annotations/<split>``
    (mmseg's layout) or ``RAW/stuffthingmaps/<split>``."""
    layout = LAYOUTS['coco-stuff']
    src = Path(src)
    _require_dir(src, layout)
    mask_dirs = {}
    for split, folder in _COCO_DIRS.items():
        candidates = [src / 'annotations' / folder, src / 'stuffthingmaps' / folder]
        mask_dirs[split] = _first_dir(candidates) or candidates[0]
    for split in _pick_splits(layout, splits, mask_dirs, log):
        folder = _COCO_DIRS[split]
        img_dir = _coco_images(src, folder, f'coco-stuff {split}')
        ids = sorted(_coco_ids(img_dir, '.jpg'))
        if not ids:
            raise FileNotFoundError(f'coco-stuff {split}: no <id>.jpg images in {img_dir}')
        _require(layout, split, [mask_dirs[split] / f'{i}.png' for i in ids],
                 f'stuffthingmaps (of the images in {img_dir})')
        progress = Progress(f'coco-stuff {split}', len(ids), log)
        for i in ids:
            wrote = link_or_copy(img_dir / f'{i}.jpg', layout.images(out, split) / f'{i}.jpg',
                                 force)
            wrote |= convert_coco_stuff_mask(mask_dirs[split] / f'{i}.png',
                                             layout.masks(out, split) / f'{i}{layout.mask_suffix}',
                                             force)
            progress.step(wrote)
        progress.finish(layout.official[split], Path(out) / layout.subdir)


def _coco_ids(folder, suffix):
    """The numeric stems of ``folder``'s ``*<suffix>`` files (raw COCO names: <12 digits>)."""
    return [p.name[:-len(suffix)] for p in Path(folder).iterdir()
            if p.name.endswith(suffix) and p.name[:-len(suffix)].isdigit()]


def coco_object_labels(coco, image_id):
    """The COCO-Object label map of one image from its instance annotations.

    0 background, 1..80 the things in COCO-Stuff's order, 255 where a crowd region is not
    covered by any single instance. Instances are painted largest first, so where two overlap
    the smaller one (usually the one in front, e.g. a cup on a table) keeps the pixels."""
    info = coco.imgs[image_id]
    labels = np.zeros((info['height'], info['width']), np.uint8)
    anns = [a for a in coco.imgToAnns.get(image_id, ()) if a.get('segmentation')]
    for ann in anns:
        if ann.get('iscrowd'):
            labels[coco.annToMask(ann) > 0] = VOID
    for ann in sorted((a for a in anns if not a.get('iscrowd')),
                      key=lambda a: (-a.get('area', 0), a['id'])):
        if ann['category_id'] not in COCO_THING_TRAIN_ID:
            raise ValueError(f'annotation {ann["id"]} of image {image_id}: category '
                             f'{ann["category_id"]} is not one of the 80 COCO things')
        labels[coco.annToMask(ann) > 0] = COCO_THING_TRAIN_ID[ann['category_id']]
    return labels


def prepare_coco_object(src, out, splits=None, force=False, log=print):
    """COCO 2017 images + ``annotations/instances_<split>2017.json`` -> ``OUT/coco_stuff164k``
    (``<id>_instanceTrainIds.png``; every image of the json, those without an instance as
    all background)."""
    from pycocotools.coco import COCO
    layout = LAYOUTS['coco-object']
    src = Path(src)
    _require_dir(src, layout)
    jsons = {s: src / 'annotations' / f'instances_{f}.json' for s, f in _COCO_DIRS.items()}
    for split in _pick_splits(layout, splits, jsons, log):
        folder = _COCO_DIRS[split]
        img_dir = _coco_images(src, folder, f'coco-object {split}')
        log(f'coco-object {split}: reading {jsons[split]}')
        with redirect_stdout(io.StringIO()):        # pycocotools prints its progress
            coco = COCO(str(jsons[split]))
        image_ids = sorted(coco.imgs)
        images = [img_dir / coco.imgs[i]['file_name'] for i in image_ids]
        _require(layout, split, images, f'images listed in {jsons[split].name}')
        progress = Progress(f'coco-object {split}', len(image_ids), log)
        for image_id, img in zip(image_ids, images):
            dst = layout.masks(out, split) / f'{img.stem}{layout.mask_suffix}'
            wrote = link_or_copy(img, layout.images(out, split) / img.name, force)
            if not _up_to_date(dst, [jsons[split]], force):
                labels = coco_object_labels(coco, image_id)
                with Image.open(img) as im:
                    if im.size != labels.shape[::-1]:
                        raise ValueError(f'{img} is {im.size[0]}x{im.size[1]} but '
                                         f'{jsons[split].name} says {labels.shape[1]}x'
                                         f'{labels.shape[0]}')
                save_mask(labels, dst)
                wrote = True
            progress.step(wrote)
        progress.finish(layout.official[split], Path(out) / layout.subdir)


# ---------------------------------------------------------------- ADE20K
def prepare_ade20k(src, out, splits=None, force=False, log=print):
    """ADEChallengeData2016 is already in the final layout: check that every image has its
    annotation and the other way round, then link both (and the class list files)."""
    layout = LAYOUTS['ade20k']
    raw = _find_root(src, ['ADEChallengeData2016', '.'], ['images', 'annotations'], layout)
    available = {s: raw / 'images' / layout.split_dirs[s] for s in SPLITS}
    for split in _pick_splits(layout, splits, available, log):
        img_dir, mask_dir = (raw / d / layout.split_dirs[split]
                             for d in ('images', 'annotations'))
        if not mask_dir.is_dir():
            raise FileNotFoundError(f'ade20k {split}: missing {mask_dir}; extract '
                                    f'{layout.download} again.')
        stems = sorted(p.stem for p in img_dir.glob('*.jpg'))
        mask_stems = {p.stem for p in mask_dir.glob('*.png')}
        _require(layout, split, [mask_dir / f'{s}.png' for s in stems], 'annotations')
        _require(layout, split, [img_dir / f'{s}.jpg' for s in sorted(mask_stems - set(stems))],
                 'images (of annotations)')
        progress = Progress(f'ade20k {split}', len(stems), log)
        for stem in stems:
            wrote = link_or_copy(img_dir / f'{stem}.jpg',
                                 layout.images(out, split) / f'{stem}.jpg', force)
            wrote |= link_or_copy(mask_dir / f'{stem}.png',
                                  layout.masks(out, split) / f'{stem}.png', force)
            progress.step(wrote)
        progress.finish(layout.official[split], Path(out) / layout.subdir)
    for extra in ('objectInfo150.txt', 'sceneCategories.txt'):
        if (raw / extra).is_file():
            link_or_copy(raw / extra, Path(out) / layout.subdir / extra, force)


PREPARERS = {'voc': prepare_voc, 'context': prepare_context, 'coco-stuff': prepare_coco_stuff,
             'coco-object': prepare_coco_object, 'ade20k': prepare_ade20k}


def _register(layout, preparer):
    """Add a dataset family converted in a module of its own."""
    LAYOUTS[layout.name] = layout
    PREPARERS[layout.name] = preparer
    ALIASES.update({config: layout.name for config in layout.configs})


def prepare(name, src, out, splits=None, force=False, log=print):
    """Prepare dataset ``name`` (a layout or dataset config name) from the official files in
    ``src`` into ``out``; ``splits``: a subset of ('train', 'val'), default every split the
    raw files have. Returns the layout written."""
    layout = LAYOUTS[resolve_name(name)]
    for split in splits or ():
        if split not in SPLITS:
            raise ValueError(f'unknown split {split!r}; valid: {", ".join(SPLITS)}')
    sub = Path(layout.subdir).parts
    if Path(out).parts[-len(sub):] == sub:
        # a common slip: --out names the dataset folder instead of the data root
        raise ValueError(f'--out is the data root that will hold {layout.subdir}, not that '
                         f'folder itself: use --out {Path(out, *[".."] * len(sub)).resolve()}')
    PREPARERS[layout.name](src, out, splits=splits, force=force, log=log)
    return layout


def _log(msg):
    print(msg, flush=True)


def main_prepare(name, src, out, splits=None, force=False, log=_log):
    """The ``ovseg-bench prepare`` command: prepare, then say what reads it and how to check."""
    layout = prepare(name, src, out, splits=splits, force=force, log=log)
    log(f'prepared {Path(out) / layout.subdir} for the dataset configs '
        f'{", ".join(layout.configs)}; check it with: ovseg-bench check-data {out} '
        f'--dataset {layout.name}')
    return 0


from . import prepare_cityscapes, prepare_large_vocab  # noqa: E402  (they use the helpers above)

_register(prepare_cityscapes.LAYOUT, prepare_cityscapes.prepare_cityscapes)
_register(prepare_large_vocab.CONTEXT459, prepare_large_vocab.prepare_context459)
_register(prepare_large_vocab.ADE847, prepare_large_vocab.prepare_ade847)
