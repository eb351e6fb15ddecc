"""The base of the image-caption datasets: records of (image, captions), reading an image, the
transform pipeline, and skipping unreadable images (reported once per path, counted per item)."""
import io
import json
import logging
import tarfile

import numpy as np
import torch
from mmengine.logging import print_log
from mmseg.registry import TRANSFORMS
from PIL import Image

from .transforms import pack

IMAGE_EXTS = ('jpg', 'jpeg', 'png', 'webp', 'bmp')
# Item keys that are bookkeeping, not model inputs (the preprocessor drops them).
META_KEYS = ('img_path', 'skipped_images')




def warn(msg):
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
                    warn(f'skipping unreadable image {path} ({type(err).__name__}: {err})')
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
