"""Dataset classes registered into mmseg's ``DATASETS`` registry.

Synthetic views (written by ``ovseg-bench make-synthetic``) subclass mmseg's own classes and
override only ``METAINFO``, so they are read by exactly the code that reads the real data.
``PascalVOC20Dataset`` and ``COCOObjectDataset`` add the real views mmseg lacks. Every class
here checks its files before loading (:func:`check_layout`) and fails with a
``FileNotFoundError`` naming the expected layout and the command that prepares it.
"""
import os
import os.path as osp
import re
from pathlib import Path

import numpy as np
from PIL import Image

from mmseg.datasets import (ADE20KDataset, BaseSegDataset, COCOStuffDataset,
                            PascalContextDataset, PascalContextDataset59, PascalVOCDataset)
from mmcv.transforms import BaseTransform, LoadImageFromFile
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import DATASETS, TRANSFORMS

from .layouts import LAYOUTS, voc_colormap
from .synthetic import view_classes

SYNTH_ROOT = 'data/synth'
REAL_ROOT = 'data'

# The expected files and prepare commands of mmseg's own classes, for :func:`check_dataset_cfg`.
def _native(layout, config):
    return LAYOUTS[layout].subdir, LAYOUTS[layout].tree(), config


NATIVE = {
    'PascalVOCDataset': _native('voc', 'voc21'),
    'PascalContextDataset': _native('context', 'context60'),
    'PascalContextDataset59': _native('context', 'context59'),
    'COCOStuffDataset': _native('coco-stuff', 'coco_stuff171'),
    'ADE20KDataset': _native('ade20k', 'ade150'),
    'CityscapesDataset': _native('cityscapes', 'cityscapes'),
}


def _root_of(data_root, subdir, default):
    """The ``--out`` folder that holds ``subdir``, read back from a ``data_root``."""
    parts, sub = Path(str(data_root or '')).parts, Path(subdir).parts
    if sub and len(parts) >= len(sub) and parts[len(parts) - len(sub):] == sub:
        return str(Path(*parts[:len(parts) - len(sub)])) if len(parts) > len(sub) else '.'
    return default


def check_layout(data_root, data_prefix, ann_file='', layout='', prepare='', name='dataset'):
    """Raise ``FileNotFoundError`` (naming ``layout`` and ``prepare``) if the data root, the
    image or mask folder, or the split file is missing. Paths as mmseg holds them after
    joining ``data_root``."""
    missing = []
    if data_root and not osp.isdir(data_root):
        missing.append(f'data root {data_root}')
    else:
        for key, what in (('img_path', 'image folder'), ('seg_map_path', 'mask folder')):
            path = (data_prefix or {}).get(key)
            if path and not osp.isdir(path):
                missing.append(f'{what} {path}')
        if ann_file and not osp.isfile(ann_file):
            missing.append(f'split file {ann_file}')
    if missing:
        raise FileNotFoundError(
            f'{name}: missing {"; ".join(missing)}.\n'
            f'Expected layout:\n{layout}\n'
            f'Prepare it with: {prepare}')
    img_dir = (data_prefix or {}).get('img_path')
    if ann_file and not any(line.strip() for line in open(ann_file)):
        raise ValueError(f'{name}: the split file {ann_file} lists no image; prepare it again: '
                         f'{prepare}')
    if not ann_file and img_dir and not any(os.scandir(img_dir)):
        raise ValueError(f'{name}: the image folder {img_dir} is empty; prepare it again: '
                         f'{prepare}')


class LayoutCheck:
    """Mixin: check the files (:func:`check_layout`) before mmseg loads the data list."""
    SUBDIR = ''      # the layout's top folder under the ``--out`` root
    LAYOUT = ''      # the expected files, relative to that root
    SYNTHETIC = False
    PREPARE_NAME = ''  # real datasets: the name given to ``ovseg-bench prepare``

    @classmethod
    def prepare_command(cls, data_root=None):
        """The command that writes this layout, with ``--out`` read back from ``data_root``."""
        if cls.SYNTHETIC:
            return f'ovseg-bench make-synthetic --out {_root_of(data_root, cls.SUBDIR, SYNTH_ROOT)}'
        return (f'ovseg-bench prepare {cls.PREPARE_NAME} --src RAW --out '
                f'{_root_of(data_root, cls.SUBDIR, REAL_ROOT)}')

    def load_data_list(self):
        check_layout(self.data_root, self.data_prefix, self.ann_file, self.LAYOUT,
                     self.prepare_command(self.data_root), type(self).__name__)
        return super().load_data_list()


def check_dataset_cfg(cfg, prepare=None):
    """Check the files of an mmseg dataset config (``type``, ``data_root``, ``data_prefix``,
    ``ann_file``) before building it: the classes here check themselves, mmseg's own do not."""
    cls = DATASETS.get(cfg['type'])
    root = cfg.get('data_root') or ''
    prefix = {k: osp.join(root, v) for k, v in (cfg.get('data_prefix') or {}).items() if v}
    ann = osp.join(root, cfg['ann_file']) if cfg.get('ann_file') else ''
    if cls is not None and issubclass(cls, LayoutCheck):
        layout, default = cls.LAYOUT, cls.prepare_command(root)
    else:
        sub, layout, name = NATIVE.get(cfg['type'], ('', '', '<name>'))
        default = f'ovseg-bench prepare {name} --src RAW --out {_root_of(root, sub, REAL_ROOT)}'
    check_layout(root or None, prefix, ann, layout, prepare or default, cfg['type'])


def _meta(view):
    classes = view_classes(view)
    return dict(classes=classes, palette=voc_colormap(len(classes)).tolist())


# ---------------------------------------------------------------- checked loading
FIX = 'check the data root with `ovseg-bench check-data ROOT`'


def _reason(err):
    """An image decoder's error without its in-memory object names."""
    if isinstance(err, AssertionError):
        return 'not a decodable image'
    return re.sub(r' ?<_io\.BytesIO object at 0x[0-9a-f]+>', '', str(err)) or type(err).__name__


@TRANSFORMS.register_module()
class LoadImageChecked(LoadImageFromFile):
    """mmcv's ``LoadImageFromFile``; a missing or undecodable image fails in one line naming
    it (in a DataLoader worker the message would otherwise be a whole traceback)."""

    def transform(self, results):
        path = results['img_path']
        if not osp.isfile(path):
            raise FileNotFoundError(f'image {path} not found (listed in the split); {FIX}')
        try:
            return super().transform(results)
        except (AssertionError, OSError, ValueError) as err:
            raise ValueError(f'cannot read image {path} ({_reason(err)}); {FIX}') from None


@TRANSFORMS.register_module()
class LoadAnnotationsChecked(LoadAnnotations):
    """mmseg's ``LoadAnnotations`` for evaluation: a missing or unreadable mask, a colour
    (RGB) mask and a mask of another size than its image fail in one line naming the files."""

    def transform(self, results):
        path = results['seg_map_path']
        if not osp.isfile(path):
            raise FileNotFoundError(f'mask {path} not found; {FIX}')
        try:
            results = super().transform(results)
        except (AttributeError, OSError, ValueError) as err:
            raise ValueError(f'cannot read mask {path} ({_reason(err)}); {FIX}') from None
        seg = results['gt_seg_map']
        if seg.ndim != 2:
            raise ValueError(f'mask {path} has {seg.shape[-1]} channels: a colour-coded mask, not '
                             f'a single-channel label PNG; convert it (ovseg-bench prepare)')
        size = tuple(results.get('ori_shape') or seg.shape)
        if seg.shape != size:
            raise ValueError(f'mask {path} is {seg.shape[1]}x{seg.shape[0]} but its image '
                             f'{results["img_path"]} is {size[1]}x{size[0]}: not this image\'s '
                             f'mask; {FIX}')
        return results


# ---------------------------------------------------------------- synthetic views
@DATASETS.register_module()
class SynthVOCDataset(LayoutCheck, PascalVOCDataset):
    """Synthetic world in the PASCAL VOC 2012 layout: background + 8 things, 255 void borders."""
    METAINFO = _meta('voc')
    SUBDIR, SYNTHETIC = LAYOUTS['voc'].subdir, True
    LAYOUT = LAYOUTS['voc'].tree(n=len(METAINFO['classes']) - 1)


@DATASETS.register_module()
class SynthContextDataset(LayoutCheck, PascalContextDataset):
    """Synthetic world in the Pascal Context layout, 60-style: background + things + stuff."""
    METAINFO = _meta('context')
    SUBDIR, SYNTHETIC = LAYOUTS['context'].subdir, True
    LAYOUT = LAYOUTS['context'].tree(n=len(METAINFO['classes']) - 1)


@DATASETS.register_module()
class SynthContext59Dataset(LayoutCheck, PascalContextDataset59):
    """Synthetic world in the Pascal Context layout, 59-style: background ignored."""
    METAINFO = _meta('context59')
    SUBDIR, SYNTHETIC = LAYOUTS['context'].subdir, True
    LAYOUT = LAYOUTS['context'].tree(n=len(METAINFO['classes']))


@DATASETS.register_module()
class SynthCOCOStuffDataset(LayoutCheck, COCOStuffDataset):
    """Synthetic world in the COCO-Stuff 164k layout: things + stuff train ids, 255 unlabelled."""
    METAINFO = _meta('coco_stuff')
    SUBDIR, SYNTHETIC = LAYOUTS['coco-stuff'].subdir, True
    LAYOUT = LAYOUTS['coco-stuff'].tree(n=len(METAINFO['classes']) - 1)


@DATASETS.register_module()
class SynthADEDataset(LayoutCheck, ADE20KDataset):
    """Synthetic world in the ADE20K layout: 8 things + 5 stuff; 0 ("other") is ignored."""
    METAINFO = _meta('ade')
    SUBDIR, SYNTHETIC = LAYOUTS['ade20k'].subdir, True
    LAYOUT = LAYOUTS['ade20k'].tree(n=len(METAINFO['classes']))


# ---------------------------------------------------------------- real views mmseg lacks
@DATASETS.register_module()
class PascalVOC20Dataset(LayoutCheck, PascalVOCDataset):
    """PASCAL VOC 2012 without background: 20 classes, background (0) becomes ignore (255).

    Same files as ``PascalVOCDataset`` (``VOCdevkit/VOC2012``); ``reduce_zero_label=True``
    maps 0 to 255 and shifts 1..20 to 0..19 (255 void stays 255).
    """
    METAINFO = dict(classes=PascalVOCDataset.METAINFO['classes'][1:],
                    palette=PascalVOCDataset.METAINFO['palette'][1:])
    SUBDIR, PREPARE_NAME = LAYOUTS['voc'].subdir, 'voc20'
    LAYOUT = LAYOUTS['voc'].tree()

    def __init__(self, ann_file, reduce_zero_label=True, **kwargs):
        super().__init__(ann_file=ann_file, reduce_zero_label=reduce_zero_label, **kwargs)


@DATASETS.register_module()
class COCOObjectDataset(LayoutCheck, BaseSegDataset):
    """COCO-Object: background + the 80 COCO thing classes (81), from the instance masks.

    Layout (under ``data/coco_stuff164k``, beside COCO-Stuff's files)::

        images/{train2017,val2017}/<12-digit id>.jpg
        annotations/{train2017,val2017}/<12-digit id>_instanceTrainIds.png

    Masks are uint8: 0 background, 1..80 the things in COCO-Stuff's order, 255 ignore.
    """
    METAINFO = dict(classes=('background',) + COCOStuffDataset.METAINFO['classes'][:80],
                    palette=[[0, 0, 0]] + COCOStuffDataset.METAINFO['palette'][:80])
    SUBDIR, PREPARE_NAME = LAYOUTS['coco-object'].subdir, 'coco_object'
    LAYOUT = LAYOUTS['coco-object'].tree()

    def __init__(self, img_suffix='.jpg', seg_map_suffix='_instanceTrainIds.png',
                 reduce_zero_label=False, **kwargs):
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         reduce_zero_label=reduce_zero_label, **kwargs)


# ---------------------------------------------------------------- large vocabularies
@TRANSFORMS.register_module()
class LoadWideAnnotations(BaseTransform):
    """Load a 16-bit mask as it is (mmseg's ``LoadAnnotations`` casts masks to uint8, which
    would wrap the classes past 255 of the 459/847-class layouts and their 65535 ignore)."""

    def transform(self, results):
        with Image.open(results['seg_map_path']) as mask:
            results['gt_seg_map'] = np.asarray(mask).astype(np.uint16)
        results.setdefault('seg_fields', []).append('gt_seg_map')
        return results


def _names(vocabulary):
    from ..text import load_vocabulary
    return tuple(syns[0] for syns in load_vocabulary(vocabulary))


class _WideDataset(LayoutCheck, BaseSegDataset):
    """16-bit ``.tif`` masks, every class scored, 65535 ignored (the dataset config sets the
    metric's ``ignore_index`` and the ``LoadWideAnnotations`` loader)."""

    def __init__(self, img_suffix='.jpg', seg_map_suffix='.tif', reduce_zero_label=False,
                 **kwargs):
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         reduce_zero_label=reduce_zero_label, **kwargs)


@DATASETS.register_module()
class PascalContext459Dataset(_WideDataset):
    """Pascal Context with all 459 classes (``prepare context459``), as MaskFormer's converter
    writes it and ProxyCLIP's harness reads it."""
    METAINFO = dict(classes=_names('context459'))
    SUBDIR, PREPARE_NAME = LAYOUTS['context459'].subdir, 'context459'
    LAYOUT = LAYOUTS['context459'].tree()


@DATASETS.register_module()
class ADE20K847Dataset(_WideDataset):
    """ADE20K-Full, 847 classes (``prepare ade847``), in MaskFormer's layout."""
    METAINFO = dict(classes=_names('ade847'))
    SUBDIR, PREPARE_NAME = LAYOUTS['ade847'].subdir, 'ade847'
    LAYOUT = LAYOUTS['ade847'].tree()
