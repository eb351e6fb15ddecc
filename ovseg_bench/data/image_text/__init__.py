"""Image-caption training data: three on-disk formats, the training views and the collate.

Datasets (registered in mmseg's ``DATASETS``), map-style, one dict per item
(:mod:`.captions`, :mod:`.shards`, on the base of :mod:`.base`):

* :class:`CocoCaptionDataset` -- COCO captions JSON (``captions_{train,val}2017.json``);
* :class:`KarpathyCaptionDataset` -- Karpathy's split file (``dataset_coco.json``: COCO 2014
  images in train/restval/val/test);
* :class:`CsvCaptionDataset` -- a CSV/TSV of image path + caption (how CC3M/CC12M are kept);
* :class:`WebDatasetShards` -- img2dataset-style tar shards (``{key}.jpg`` + ``{key}.txt``),
  named by globs and/or shell brace ranges (``{00000..01242}.tar``);
* :class:`ConcatCaptionDatasets` -- several of the above as one (e.g. CC3M + COCO).

An item holds ``images`` (3,H,W uint8 RGB: normalisation is the model's job), ``captions``
(one caption drawn from the image's captions), ``all_captions``, ``img_path`` and whatever views
the pipeline adds. The item keys are the batch keys: :func:`image_text_collate`
(:mod:`.collate`) stacks tensors and lists strings. Which views a method trains on is decided
by the pipeline config alone (:mod:`.transforms`, registered in mmseg's ``TRANSFORMS``); a head
names the views it needs in ``train_views`` and the trainer checks the pipeline provides them.

A corrupt or missing image is reported by path (a warning, once per path), recorded in the
dataset's ``skipped`` dict and replaced by the next readable image; the paths skipped for an
item travel with it (``skipped_images``) so the trainer can count them over all workers.
"""
from .base import IMAGE_EXTS, META_KEYS, ImageTextDataset, Pipeline, read_json, read_rgb
from .captions import (KARPATHY_SPLITS, CocoCaptionDataset, ConcatCaptionDatasets,
                       CsvCaptionDataset, KarpathyCaptionDataset)
from .collate import image_text_collate
from .shards import WebDatasetShards, expand_braces, resolve_shards
from .transforms import (MultiCropViews, PatchMask, RandomResizedCropRGB, ResizeRGB,
                         Superpixels, ToTensorRGB, add_view, pack, sample_box)

__all__ = ['CocoCaptionDataset', 'ConcatCaptionDatasets', 'CsvCaptionDataset', 'IMAGE_EXTS',
           'ImageTextDataset', 'KARPATHY_SPLITS', 'KarpathyCaptionDataset', 'META_KEYS',
           'MultiCropViews', 'PatchMask', 'Pipeline', 'RandomResizedCropRGB', 'ResizeRGB',
           'Superpixels', 'ToTensorRGB', 'WebDatasetShards', 'add_view', 'expand_braces',
           'image_text_collate', 'pack', 'read_json', 'read_rgb', 'resolve_shards',
           'sample_box']
