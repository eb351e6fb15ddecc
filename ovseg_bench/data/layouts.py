"""The on-disk layouts of the datasets: one table (:data:`LAYOUTS`) that ``prepare`` writes,
``check-data`` checks, the dataset classes describe when files are missing and the synthetic
world mirrors. Folder templates take ``{split}``, the split's folder name (``split_dirs``)."""
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SPLITS = ('train', 'val')
VOID = 255                  # the ignore value of the 8-bit layouts
WIDE_VOID = 65535           # the ignore value of the 16-bit layouts (459 and 847 classes)


@dataclass(frozen=True)
class Layout:
    """A prepared dataset under ``DATA_ROOT``."""
    name: str               # the name given to ``ovseg-bench prepare`` and ``check-data``
    subdir: str             # the dataset's folder under DATA_ROOT
    img_dir: str
    mask_dir: str
    mask_suffix: str        # the mask of image <name><img_suffix> is <name><mask_suffix>
    num_labels: int         # valid mask values: 0..num_labels-1, and ``void``
    official: dict          # split -> number of images in the official release
    configs: tuple          # the dataset configs (configs/_base_/datasets) that read it
    download: str           # the official download, for error messages
    values: str             # what the mask values mean; ``{n}``: the last class value
    split_file: str = ''    # set when a file lists the split's images (one name per line)
    split_dirs: dict = field(default_factory=lambda: {s: s for s in SPLITS})
    img_suffix: str = '.jpg'
    stem: str = '<name>'    # how an image's file name reads, for messages
    void: int = VOID

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

    def tree(self, n=None):
        """The expected files, as a dataset class names them when some are missing; ``n``: the
        last class value the masks hold (default ``num_labels - 1``)."""
        splits = '{' + ','.join(self.split_dirs[s] for s in SPLITS) + '}'
        names = '{' + ','.join(SPLITS) + '}'
        lines = [f'{self.subdir}/',
                 f'  {self.img_dir.format(split=splits)}/{self.stem}{self.img_suffix}',
                 f'  {self.mask_dir.format(split=splits)}/{self.stem}{self.mask_suffix}',
                 f'      {self.values.format(n=self.num_labels - 1 if n is None else n)}']
        if self.split_file:
            lines.append(f'  {self.split_file.format(split=names)}   one {self.stem} per line')
        return '\n'.join(lines)


def voc_colormap(n=256):
    """PASCAL VOC's colour map: index bits spread over the high bits of R, G and B."""
    idx = np.arange(n)
    cmap = np.zeros((n, 3), np.int64)
    for shift in range(8):
        for ch in range(3):
            cmap[:, ch] |= ((idx >> (3 * shift + ch)) & 1) << (7 - shift)
    return cmap.astype(np.uint8)


VOC_PALETTE = voc_colormap().ravel().tolist()     # the palette of VOC's mask PNGs


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
_CITYSCAPES_DOWNLOAD = ('leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip (Cityscapes, '
                        'https://www.cityscapes-dataset.com/downloads/)')
_ADE847_DOWNLOAD = 'ADE20K_2021_17_01.zip (ADE20K full release, https://ade20k.csail.mit.edu/)'
COCO_DIRS = {'train': 'train2017', 'val': 'val2017'}
ADE_DIRS = {'train': 'training', 'val': 'validation'}
_CONTEXT_SPLIT_FILE = 'ImageSets/SegmentationContext/{split}.txt'

LAYOUTS = {layout.name: layout for layout in (
    Layout('voc', 'VOCdevkit/VOC2012', 'JPEGImages', 'SegmentationClass', '.png', 21,
           {'train': 1464, 'val': 1449}, ('voc21', 'voc20'), _VOC_DOWNLOAD,
           'palette PNG: 0 background, 1..{n} classes, 255 void',
           split_file='ImageSets/Segmentation/{split}.txt'),
    Layout('context', 'VOCdevkit/VOC2010', 'JPEGImages', 'SegmentationClassContext', '.png',
           60, {'train': 4998, 'val': 5105}, ('context60', 'context59'), _CONTEXT_DOWNLOAD,
           'uint8: 0 background, 1..{n} classes', split_file=_CONTEXT_SPLIT_FILE),
    Layout('coco-stuff', 'coco_stuff164k', 'images/{split}', 'annotations/{split}',
           '_labelTrainIds.png', 171, {'train': 118287, 'val': 5000}, ('coco_stuff171',),
           _COCO_STUFF_DOWNLOAD, 'uint8: 0..{n} train ids, 255 unlabelled',
           split_dirs=COCO_DIRS, stem='<id>'),
    Layout('coco-object', 'coco_stuff164k', 'images/{split}', 'annotations/{split}',
           '_instanceTrainIds.png', 81, {'train': 118287, 'val': 5000}, ('coco_object',),
           _COCO_OBJECT_DOWNLOAD, 'uint8: 0 background, 1..{n} things, 255 ignore',
           split_dirs=COCO_DIRS, stem='<id>'),
    Layout('ade20k', 'ADEChallengeData2016', 'images/{split}', 'annotations/{split}', '.png',
           151, {'train': 20210, 'val': 2000}, ('ade150',), _ADE_DOWNLOAD,
           'uint8: 0 other, 1..{n} classes', split_dirs=ADE_DIRS,
           stem='ADE_{train,val}_<8 digits>'),
    Layout('cityscapes', 'cityscapes', 'leftImg8bit/{split}', 'gtFine/{split}',
           '_gtFine_labelTrainIds.png', 19, {'train': 2975, 'val': 500}, ('cityscapes',),
           _CITYSCAPES_DOWNLOAD, 'uint8: 0..{n} train ids, 255 every other label',
           img_suffix='_leftImg8bit.png', stem='<city>_<seq>_<frame>'),
    Layout('context459', 'VOCdevkit/VOC2010', 'JPEGImages', 'annotations_detectron2/pc459_{split}',
           '.tif', 459, {'train': 4998, 'val': 5105}, ('context459',), _CONTEXT_DOWNLOAD,
           'uint16: 0..{n} classes, 65535 ignore', split_file=_CONTEXT_SPLIT_FILE,
           void=WIDE_VOID),
    Layout('ade847', 'ADE20K_2021_17_01', 'images_detectron2/{split}',
           'annotations_detectron2/{split}', '.tif', 847, {'train': 25574, 'val': 2000},
           ('ade847',), _ADE847_DOWNLOAD, 'uint16: 0..{n}, 65535 ignore', split_dirs=ADE_DIRS,
           void=WIDE_VOID),
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
