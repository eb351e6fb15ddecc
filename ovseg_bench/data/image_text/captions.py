"""Caption files as datasets: COCO captions JSON, Karpathy's split file, a CSV/TSV of image +
caption, and several of them as one."""
import csv
import io
import os
from contextlib import redirect_stdout
from pathlib import Path

import torch
from mmengine.logging import print_log
from mmseg.registry import DATASETS

from .base import ImageTextDataset, read_json, read_rgb


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
