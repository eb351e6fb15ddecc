"""Image-caption training data: three on-disk formats, the training views and the collate.

Datasets (registered in mmseg's ``DATASETS``), map-style, one dict per item:

* :class:`CocoCaptionDataset` -- COCO captions JSON (``captions_{train,val}2017.json``);
* :class:`KarpathyCaptionDataset` -- Karpathy's split file (``dataset_coco.json``: COCO 2014
  images in train/restval/val/test);
* :class:`CsvCaptionDataset` -- a CSV/TSV of image path + caption (how CC3M/CC12M are kept);
* :class:`WebDatasetShards` -- img2dataset-style tar shards (``{key}.jpg`` + ``{key}.txt``),
  named by globs and/or shell brace ranges (``{00000..01242}.tar``);
* :class:`ConcatCaptionDatasets` -- several of the above as one (e.g. CC3M + COCO).

An item holds ``images`` (3,H,W uint8 RGB: normalisation is the model's job), ``captions``
(one caption drawn from the image's captions), ``all_captions``, ``img_path`` and whatever views
the pipeline adds. The item keys are the batch keys: :func:`image_text_collate` stacks tensors
and lists strings. Which views a method trains on is decided by the pipeline config alone
(transforms below, registered in mmseg's ``TRANSFORMS``); a head names the views it needs in
``train_views`` and the trainer checks the pipeline provides them.

A corrupt or missing image is reported by path (a warning, once per path), recorded in the
dataset's ``skipped`` dict and replaced by the next readable image; the paths skipped for an
item travel with it (``skipped_images``) so the trainer can count them over all workers.
"""
import csv
import glob
import io
import json
import logging
import os
import re
import tarfile
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.logging import print_log
from mmengine.registry import FUNCTIONS
from mmseg.registry import DATASETS, TRANSFORMS
from PIL import Image

IMAGE_EXTS = ('jpg', 'jpeg', 'png', 'webp', 'bmp')
# Item keys that are bookkeeping, not model inputs (the preprocessor drops them).
META_KEYS = ('img_path', 'skipped_images')


def _warn(msg):
    print_log(msg, logger='current', level=logging.WARNING)


def read_json(path):
    """A JSON file; ``ValueError`` naming it when it is not valid JSON."""
    with open(path, encoding='utf-8') as f:
        try:
            return json.load(f)
        except ValueError as err:
            raise ValueError(f'{path} is not valid JSON ({err}); download or extract it '
                             f'again') from None


def read_rgb(source):
    """HWC uint8 RGB array from a path or bytes; raises on a missing or corrupt file."""
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
        return np.asarray(im.convert('RGB'))


class Pipeline:
    """Transforms built from configs through mmseg's ``TRANSFORMS`` (so mmseg's and mmcv's
    transforms and the ones below can be mixed); ``None`` from a transform ends the chain."""

    def __init__(self, transforms=()):
        self.transforms = [TRANSFORMS.build(t) if isinstance(t, dict) else t
                           for t in transforms or ()]

    def __call__(self, results):
        for t in self.transforms:
            results = t(results)
            if results is None:
                return None
        return results

    def __repr__(self):
        return f'Pipeline({self.transforms})'


class ImageTextDataset(torch.utils.data.Dataset):
    """Base of the image-caption datasets: a list of records ``(image ref, [captions])``.

    Subclasses implement :meth:`load_records`, :meth:`image_path` and :meth:`read_image`.
    ``max_skip``: how many unreadable images in a row are tolerated before giving up.
    """
    source = ''

    def __init__(self, pipeline=(), max_skip=50):
        self.pipeline = Pipeline(pipeline)
        self.max_skip = max_skip
        self.skipped = {}            # path -> reason, in this process
        self.records = self.load_records()
        if not self.records:
            raise ValueError(f'{type(self).__name__}: no images with captions in '
                             f'{self.source}')

    # to implement ---------------------------------------------------------------------
    def load_records(self):
        raise NotImplementedError

    def image_path(self, index):
        raise NotImplementedError

    def read_image(self, index):
        raise NotImplementedError

    # ----------------------------------------------------------------------------------
    def __len__(self):
        return len(self.records)

    @property
    def num_skipped(self):
        return len(self.skipped)

    @property
    def metainfo(self):
        return dict(source=str(self.source), num_images=len(self))

    def captions(self, index):
        return self.records[index][1]

    def __getitem__(self, index):
        index = int(index)
        skipped = []
        for attempt in range(min(len(self), self.max_skip + 1)):
            i = (index + attempt) % len(self)
            try:
                img = self.read_image(i)
                if img.ndim != 3 or 0 in img.shape:
                    raise ValueError(f'empty image of shape {img.shape}')
            except (OSError, ValueError, SyntaxError, tarfile.TarError) as err:
                path = self.image_path(i)
                if path not in self.skipped:
                    _warn(f'skipping unreadable image {path} ({type(err).__name__}: {err})')
                self.skipped[path] = f'{type(err).__name__}: {err}'
                skipped.append(path)
                continue
            item = self.prepare(i, img)
            if item is None:          # a transform dropped it
                continue
            item['skipped_images'] = skipped
            return item
        first = skipped[0] if skipped else self.image_path(index)
        raise ValueError(f'{type(self).__name__}: {len(skipped)} unreadable images in a row '
                         f'(the first {first}: {self.skipped.get(first, "dropped")}); are the '
                         f'images of {self.source} where it says, and whole?')

    def prepare(self, index, img):
        captions = self.captions(index)
        results = dict(img=img, img_path=self.image_path(index), img_shape=img.shape[:2],
                       ori_shape=img.shape[:2], color_order='rgb', sample_idx=index,
                       caption=captions[np.random.randint(len(captions))],
                       all_captions=list(captions))
        results = self.pipeline(results)
        if results is None:
            return None
        return results if 'images' in results else pack(results)


@DATASETS.register_module()
class CocoCaptionDataset(ImageTextDataset):
    """COCO captions JSON (``images`` + ``annotations`` with ``caption``), read by pycocotools.

    ``data_root`` joins ``ann_file`` and ``img_dir`` when they are relative. Images without
    any caption are left out. The synthetic world's extra ``classes`` key of each image is
    kept (:meth:`classes`).
    """

    def __init__(self, data_root='', ann_file='annotations/captions_train2017.json',
                 img_dir='train2017', pipeline=(), max_skip=50):
        self.ann_file = Path(data_root or '') / ann_file
        self.img_dir = Path(data_root or '') / img_dir
        self.source = self.ann_file
        super().__init__(pipeline, max_skip)

    def load_records(self):
        if not self.ann_file.is_file():
            raise FileNotFoundError(f'COCO captions file not found: {self.ann_file}')
        from pycocotools.coco import COCO
        data = read_json(self.ann_file)
        if not isinstance(data, dict) or not isinstance(data.get('annotations', []), list):
            raise ValueError(f'{self.ann_file} is not a COCO captions file (expected '
                             f'{{"images": [...], "annotations": [{{"image_id", "caption"}}]}})')
        coco = COCO()
        coco.dataset = data
        with redirect_stdout(io.StringIO()):        # pycocotools prints progress
            coco.createIndex()
        if not coco.dataset.get('images'):
            raise ValueError(f'COCO captions file {self.ann_file} lists no images')
        self._classes = {}
        records = []
        for img_id in sorted(coco.getImgIds()):
            info = coco.imgs[img_id]
            caps = [a['caption'].strip() for a in coco.imgToAnns.get(img_id, ())
                    if a.get('caption', '').strip()]
            if caps:
                records.append((info['file_name'], caps))
                if 'classes' in info:
                    self._classes[len(records) - 1] = list(info['classes'])
        return records

    def classes(self, index):
        """The class names present in image ``index`` (synthetic world only), or None."""
        return self._classes.get(index)

    def image_path(self, index):
        return str(self.img_dir / self.records[index][0])

    def read_image(self, index):
        return read_rgb(self.image_path(index))


KARPATHY_SPLITS = ('train', 'restval', 'val', 'test')


@DATASETS.register_module()
class KarpathyCaptionDataset(ImageTextDataset):
    """Karpathy's caption split file (``dataset_coco.json`` of ``caption_datasets.zip``).

    The file lists every COCO 2014 image once: ``images[]`` with ``filepath`` (``train2014`` or
    ``val2014``), ``filename``, ``split`` (``train`` 82,783 = all of train2014; ``restval``
    30,504, ``val`` 5,000 and ``test`` 5,000 from val2014), ``cocoid`` and ``sentences[]`` whose
    ``raw`` is the caption. ``split``: one split name or several; ``('train', 'restval')`` is
    the usual 113k-image caption training set.

    Images are read from ``img_root/filepath/filename``; ``img_root`` defaults to
    ``data_root``, the folder holding COCO's ``train2014/`` and ``val2014/`` (an entry without
    ``filepath``, as in Karpathy's Flickr files, is read from ``img_root/filename``).
    ``exclude_ann_file``: a COCO-format JSON (e.g. ``annotations/captions_val2017.json``, also
    relative to ``data_root``) whose image ids are left out -- val2017 is a subset of val2014,
    so ``restval`` holds images that COCO-Stuff / COCO-Object evaluate on.
    """

    def __init__(self, data_root='', ann_file='dataset_coco.json', split=('train', 'restval'),
                 img_root=None, exclude_ann_file=None, pipeline=(), max_skip=50):
        root = Path(data_root or '')
        self.ann_file = root / ann_file
        self.img_root = root / img_root if img_root is not None else root
        self.splits = (split,) if isinstance(split, str) else tuple(split)
        unknown = sorted(set(self.splits) - set(KARPATHY_SPLITS))
        if unknown or not self.splits:
            raise ValueError(f'KarpathyCaptionDataset: unknown split {unknown or self.splits}; '
                             f'the splits of {ann_file} are {list(KARPATHY_SPLITS)}')
        self.exclude_ann_file = root / exclude_ann_file if exclude_ann_file else None
        self.source = f'{self.ann_file} (split {"+".join(self.splits)})'
        self.num_excluded = 0
        super().__init__(pipeline, max_skip)

    def _excluded_ids(self):
        if self.exclude_ann_file is None:
            return set()
        if not self.exclude_ann_file.is_file():
            raise FileNotFoundError(f'exclude_ann_file not found: {self.exclude_ann_file}')
        return {img['id'] for img in read_json(self.exclude_ann_file).get('images', ())}

    def load_records(self):
        if not self.ann_file.is_file():
            raise FileNotFoundError(
                f'Karpathy split file not found: {self.ann_file} (dataset_coco.json from '
                f'caption_datasets.zip, see docs/datasets/README.md)')
        data = read_json(self.ann_file)
        images = data.get('images') if isinstance(data, dict) else None
        if not images or not isinstance(images, list):
            raise ValueError(f'{self.ann_file} lists no images (expected Karpathy\'s format: '
                             f'{{"images": [{{"filepath", "filename", "split", "sentences"}}]}})')
        if 'sentences' not in images[0]:
            hint = (' -- it looks like an official COCO captions file: read it with '
                    'CocoCaptionDataset' if 'annotations' in data else '')
            raise ValueError(f'{self.ann_file}: images carry no "sentences", not Karpathy\'s '
                             f'format{hint}')
        excluded = self._excluded_ids()
        wanted = set(self.splits)
        records = []
        for info in images:
            if info.get('split') not in wanted:
                continue
            if info.get('cocoid') in excluded:
                self.num_excluded += 1
                continue
            caps = [s['raw'].strip() for s in info.get('sentences', ())
                    if s.get('raw', '').strip()]
            if caps:
                records.append((os.path.join(info.get('filepath', ''), info['filename']), caps))
        if excluded:
            print_log(f'{self.source}: {self.num_excluded} images of {self.exclude_ann_file} '
                      f'left out', logger='current')
        return records

    def image_path(self, index):
        return str(self.img_root / self.records[index][0])

    def read_image(self, index):
        return read_rgb(self.image_path(index))


@DATASETS.register_module()
class CsvCaptionDataset(ImageTextDataset):
    """A CSV/TSV with one (image, caption) per row, as CC3M/CC12M are usually kept.

    ``sep``: None picks it from the suffix (``.tsv`` -> tab, else comma). ``image_col`` /
    ``caption_col``: None looks for ``filepath`` or ``image`` / ``title`` or ``caption``.
    Relative image paths are under ``img_root`` (default: the file's folder). Rows naming the
    same image are grouped: their captions are that image's captions.
    """
    IMAGE_COLS = ('filepath', 'image', 'image_path', 'file_name')
    CAPTION_COLS = ('title', 'caption', 'text')

    def __init__(self, file, img_root=None, sep=None, image_col=None, caption_col=None,
                 pipeline=(), max_skip=50):
        self.file = Path(file)
        self.img_root = Path(img_root) if img_root is not None else self.file.parent
        self.sep = sep if sep is not None else ('\t' if self.file.suffix == '.tsv' else ',')
        self.image_col, self.caption_col = image_col, caption_col
        self.source = self.file
        super().__init__(pipeline, max_skip)

    def _column(self, header, given, candidates, what):
        if given is not None:
            if given not in header:
                raise KeyError(f'{self.file}: no {what} column {given!r}; columns: {header}')
            return given
        for name in candidates:
            if name in header:
                return name
        raise KeyError(f'{self.file}: no {what} column among {list(candidates)}; columns: '
                       f'{header} (set {what}_col)')

    def load_records(self):
        if not self.file.is_file():
            raise FileNotFoundError(f'caption file not found: {self.file}')
        with open(self.file, newline='', encoding='utf-8') as f:
            reader = csv.DictReader(f, delimiter=self.sep)
            header = reader.fieldnames or []
            if not header:
                raise ValueError(f'caption file {self.file} is empty (no header row)')
            img_col = self._column(header, self.image_col, self.IMAGE_COLS, 'image')
            cap_col = self._column(header, self.caption_col, self.CAPTION_COLS, 'caption')
            grouped = {}
            for row in reader:
                path, cap = (row.get(img_col) or '').strip(), (row.get(cap_col) or '').strip()
                if path and cap:
                    grouped.setdefault(path, []).append(cap)
        return list(grouped.items())

    def image_path(self, index):
        path = Path(self.records[index][0])
        return str(path if path.is_absolute() else self.img_root / path)

    def read_image(self, index):
        return read_rgb(self.image_path(index))


_NUMERIC_RANGE = re.compile(r'(-?\d+)\.\.(-?\d+)')
_GLOB_CHARS = re.compile(r'[*?[]')


def _brace_body(pattern, start):
    """End index of the brace opened at ``start`` and the positions of its top-level commas;
    ``(None, [])`` when it is never closed."""
    depth, commas = 0, []
    for i in range(start, len(pattern)):
        c = pattern[i]
        if c == '{':
            depth += 1
        elif c == '}':
            depth -= 1
            if depth == 0:
                return i, commas
        elif c == ',' and depth == 1:
            commas.append(i)
    return None, []


def _numeric_range(first, last):
    # zero padding as in bash: to the wider endpoint when either is written with a leading 0
    padded = any(len(e.lstrip('-')) > 1 and e.lstrip('-').startswith('0') for e in (first, last))
    width = max(len(first), len(last)) if padded else 0
    a, b = int(first), int(last)
    step = 1 if a <= b else -1
    return [f'{n:0{width}d}' for n in range(a, b + step, step)]


def expand_braces(pattern):
    """Shell brace expansion of ``pattern``, in order: numeric ranges ``{00000..01242}``
    (inclusive, zero-padded when an endpoint is) and lists ``{cc3m,cc12m}``; several braces
    multiply and lists nest. A brace that is neither (``{x}``, unclosed) stays literal."""
    start = pattern.find('{')
    if start < 0:
        return [pattern]
    end, commas = _brace_body(pattern, start)
    if end is None:
        return [pattern]
    head, body, tails = pattern[:start], pattern[start + 1:end], expand_braces(pattern[end + 1:])
    span = _NUMERIC_RANGE.fullmatch(body)
    if span:
        options = _numeric_range(*span.groups())
    elif commas:
        cuts = [start] + commas + [end]
        options = [o for a, b in zip(cuts, cuts[1:]) for o in expand_braces(pattern[a + 1:b])]
    else:
        return [head + '{' + body + '}' + t for t in tails]
    return [head + o + t for o in options for t in tails]


def resolve_shards(shards):
    """The tar files named by ``shards`` (a pattern or a list of them), in order. A pattern is
    brace-expanded (:func:`expand_braces`); each result is a glob or a path, and every one must
    match a file: a missing shard fails naming the pattern and the paths that match nothing."""
    patterns = [shards] if isinstance(shards, (str, Path)) else list(shards)
    if not patterns:
        raise ValueError('WebDatasetShards: no shard pattern given')
    paths = []
    for pattern in patterns:
        expanded = expand_braces(str(pattern))
        missing = []
        for path in expanded:
            found = sorted(glob.glob(path)) if _GLOB_CHARS.search(path) else (
                [path] if os.path.isfile(path) else [])
            if not found:
                missing.append(path)
            paths += found
        if len(expanded) == 1 and missing:
            raise FileNotFoundError(f'no tar shard matches {pattern}')
        if missing:
            shown = ', '.join(missing[:5]) + (f' ... (+{len(missing) - 5} more)'
                                             if len(missing) > 5 else '')
            raise FileNotFoundError(f'{len(missing)} of the {len(expanded)} shards named by '
                                    f'{pattern} match no file: {shown}')
    return paths


@DATASETS.register_module()
class WebDatasetShards(ImageTextDataset):
    """img2dataset-style tar shards: ``{key}.jpg`` (or png/webp) + ``{key}.txt`` [+ ``.json``].

    ``shards``: a pattern or a list of them; a pattern is a path, a glob (``data/cc3m/*.tar``)
    and/or a shell brace expression (``data/cc12m/{00000..01242}.tar``, ``{cc3m,cc12m}``), see
    :func:`resolve_shards`. Every shard is indexed once at construction (member offsets, with
    ``tarfile``), so items are read by random access. A sample without a ``.txt`` uses the
    ``caption`` of its ``.json`` if any; samples without an image or a caption are left out
    (counted in the log).
    """

    def __init__(self, shards, pipeline=(), max_skip=50):
        patterns = [shards] if isinstance(shards, (str, Path)) else list(shards)
        self.shards = resolve_shards(patterns)
        self.source = ', '.join(map(str, patterns))
        self._handles = {}
        super().__init__(pipeline, max_skip)

    def load_records(self):
        records, incomplete = [], 0
        for shard_id, path in enumerate(self.shards):
            samples = {}
            try:
                with tarfile.open(path, 'r:') as tar:
                    for m in tar:
                        if not m.isfile():
                            continue
                        base = os.path.basename(m.name)
                        if '.' not in base:
                            continue
                        stem, ext = base.split('.', 1)
                        key = os.path.join(os.path.dirname(m.name), stem)
                        samples.setdefault(key, {})[ext.lower()] = (m.offset_data, m.size)
                        if ext.lower() in ('txt', 'json'):
                            samples[key][ext.lower() + ':data'] = tar.extractfile(m).read()
            except tarfile.TarError as err:
                raise ValueError(f'cannot read tar shard {path}: {err}') from err
            for key, parts in samples.items():
                image = next((e for e in IMAGE_EXTS if e in parts), None)
                caption = self._caption(parts)
                if image is None or not caption:
                    incomplete += 1
                    continue
                records.append(((shard_id, key, image, parts[image]), [caption]))
        if incomplete:
            _warn(f'{self.source}: {incomplete} samples without an image or a caption left out')
        return records

    @staticmethod
    def _caption(parts):
        if 'txt:data' in parts:
            return parts['txt:data'].decode('utf-8', 'replace').strip()
        if 'json:data' in parts:
            try:
                meta = json.loads(parts['json:data'])
            except ValueError:
                return ''
            return str(meta.get('caption') or '').strip() if isinstance(meta, dict) else ''
        return ''

    def image_path(self, index):
        shard_id, key, ext, _ = self.records[index][0]
        return f'{self.shards[shard_id]}:{key}.{ext}'

    def _handle(self, shard_id):
        # one open file per shard and process (workers reopen after fork)
        pid = os.getpid()
        handle = self._handles.get(shard_id)
        if handle is None or handle[0] != pid:
            handle = (pid, open(self.shards[shard_id], 'rb'))
            self._handles[shard_id] = handle
        return handle[1]

    def read_image(self, index):
        shard_id, _, _, (offset, size) = self.records[index][0]
        f = self._handle(shard_id)
        f.seek(offset)
        data = f.read(size)
        if len(data) != size:
            raise OSError(f'truncated member ({len(data)} of {size} bytes)')
        return read_rgb(data)

    def __getstate__(self):
        state = dict(self.__dict__)
        state['_handles'] = {}
        return state


@DATASETS.register_module()
class ConcatCaptionDatasets(torch.utils.data.ConcatDataset):
    """Several image-caption datasets as one: the items of the first, then the second, ...
    (SegCLIP trains on CC3M and COCO together); torch's ``ConcatDataset`` over built members,
    with the skipped-image count and metainfo the trainer reads.

    ``datasets``: dataset configs (or built datasets). ``pipeline``: given to every member
    config that sets none, so a shared pipeline is written once.
    """

    def __init__(self, datasets, pipeline=None):
        def build(ds):
            if not isinstance(ds, dict):
                return ds
            ds = dict(ds)
            if pipeline is not None:
                ds.setdefault('pipeline', pipeline)
            return DATASETS.build(ds)

        super().__init__([build(ds) for ds in datasets])

    @property
    def skipped(self):
        return {p: r for d in self.datasets for p, r in getattr(d, 'skipped', {}).items()}

    @property
    def num_skipped(self):
        return len(self.skipped)

    @property
    def metainfo(self):
        parts = [getattr(d, 'metainfo', {}) for d in self.datasets]
        return dict(source=' + '.join(str(p.get('source', '?')) for p in parts),
                    num_images=len(self), parts=parts)


# ---------------------------------------------------------------------------- transforms
def _add_view(results, key, value):
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
        _add_view(results, 'global_crops', torch.from_numpy(np.stack(g)))
        if self.n_local:
            _add_view(results, 'local_crops', torch.from_numpy(np.stack(loc)))
        _add_view(results, 'crop_boxes', torch.tensor(gb + lb, dtype=torch.float32))
        _add_view(results, 'crop_flips', torch.tensor(gf + lf, dtype=torch.bool))
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
        _add_view(results, 'mask', torch.from_numpy(masked.reshape(h, w)))
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
        _add_view(results, 'superpixels', torch.from_numpy(ids.reshape(h, w).astype(np.int64)))
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


# ------------------------------------------------------------------------------ collate
@FUNCTIONS.register_module()
def image_text_collate(items):
    """A batch dict from item dicts: same-shape tensors stacked, numbers as a tensor,
    anything else (strings, lists, tensors of different shapes) as a list; the
    ``skipped_images`` lists are concatenated."""
    batch = {}
    for key in items[0]:
        values = [it.get(key) for it in items]
        if key == 'skipped_images':
            batch[key] = [p for v in values for p in (v or ())]
        elif all(torch.is_tensor(v) for v in values):
            same = all(v.shape == values[0].shape for v in values)
            batch[key] = torch.stack(values) if same else values
        elif all(isinstance(v, np.ndarray) for v in values) and \
                all(v.shape == values[0].shape for v in values):
            batch[key] = torch.from_numpy(np.stack(values))
        elif all(isinstance(v, (bool, int, float)) for v in values):
            batch[key] = torch.tensor(values)
        else:
            batch[key] = list(values)
    return batch
