"""The inductive generalized zero-shot training protocol's data side: unseen-class pixels become
ignore (:class:`IgnoreUnseenClasses`, with :func:`unseen_lut` over :func:`dataset_classes`), and
each crop carries its image's id and unpadded size (:class:`PackImageInfo`) for a method's
memory bank and pseudo labels. Configs name the transforms by type (mmseg's ``TRANSFORMS``)."""
import hashlib

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import DATASETS, TRANSFORMS

from .catalog import load_dataset_cfg
from .image_text import add_view

IGNORE = 255


def dataset_classes(name):
    """Class names, in label order, of the named dataset config (``configs/_base_/datasets``),
    as its mmseg dataset class reports them (after ``reduce_zero_label``)."""
    ds = load_dataset_cfg(name)
    split = ds.get('train') or ds['eval']
    cls = DATASETS.get(split['type'])
    if cls is None:
        raise KeyError(f'dataset type {split["type"]!r} of {name!r} is not registered')
    return tuple(cls.METAINFO['classes'])


def unseen_lut(classes, unseen, ignore_index=IGNORE):
    """uint8/long lookup table over label values 0..255: unseen classes -> ``ignore_index``."""
    unknown = sorted(set(unseen) - set(classes))
    if unknown:
        raise ValueError(f'unseen classes not in the dataset: {unknown}; classes: {classes}')
    lut = np.arange(256, dtype=np.int64)
    for i, name in enumerate(classes):
        if name in unseen:
            lut[i] = ignore_index
    return lut


@TRANSFORMS.register_module()
class IgnoreUnseenClasses(BaseTransform):
    """Inductive zero-shot training: every pixel of an unseen class becomes ``ignore_index``.

    Place it right after ``LoadAnnotations``. ``unseen``: class names (as the dataset class
    reports them); ``dataset``: a dataset config name whose classes give the label order, or
    ``classes``: the names in label order. Images are kept (the inductive setting of
    ZegCLIP / CLIP-ZSS: unseen objects may appear in training images, unlabelled).
    """

    def __init__(self, unseen, dataset=None, classes=None, ignore_index=IGNORE):
        if (dataset is None) == (classes is None):
            raise ValueError('give exactly one of dataset= or classes=')
        classes = tuple(classes) if classes is not None else dataset_classes(dataset)
        self.unseen = tuple(unseen)
        self.ignore_index = ignore_index
        self.lut = unseen_lut(classes, self.unseen, ignore_index)

    def transform(self, results):
        gt = results['gt_seg_map']
        results['gt_seg_map'] = self.lut[gt.astype(np.int64)].astype(gt.dtype)
        return results

    def __repr__(self):
        return f'{type(self).__name__}(unseen={self.unseen}, ignore_index={self.ignore_index})'


def image_id(path):
    """A stable 63-bit id of an image file path (the same on every rank and every epoch)."""
    digest = hashlib.blake2b(str(path).encode(), digest_size=8).digest()
    return int.from_bytes(digest, 'little') >> 1


@TRANSFORMS.register_module()
class PackImageInfo(BaseTransform):
    """Adds two training views: ``image_id`` (:func:`image_id` of ``img_path``: crops of one
    image share it, so the GLM memory bank never scores them as negatives of each other) and
    ``valid_hw`` (the crop's height and width before padding: ``Pad`` pads bottom and right,
    and padding never becomes a pseudo class). Place it after the crop, before ``Pad``."""

    def transform(self, results):
        if 'img_path' not in results:
            raise KeyError('PackImageInfo needs img_path (place it after LoadImageFromFile)')
        add_view(results, 'image_id', image_id(results['img_path']))
        add_view(results, 'valid_hw', np.array(results['img'].shape[:2], dtype=np.int64))
        return results
