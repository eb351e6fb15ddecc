"""Writing scenes in the real datasets' on-disk layouts (:mod:`ovseg_bench.data.layouts`) and
as COCO-format captions. Each layout has its own seed stream, and each image its own seed, so
images can be rendered in any order or process.

A layout's planner makes its folders and returns one step per split: ``(n, image, finish)``,
where ``image(i)`` renders and saves image ``i`` of the split (in a worker process) and returns
what ``finish(results)`` (in the parent, with the results in order) needs."""
import json
from functools import partial

import numpy as np
from PIL import Image

from ..layouts import LAYOUTS, VOC_PALETTE
from .scene import boundary, render
from .world import view_lut

_STREAMS = {'voc': 1, 'context': 2, 'coco_stuff': 3, 'ade': 4, 'captions': 5}
CAPTIONS_DIR = 'coco'
# The folders make_synthetic writes under its ``out``.
LAYOUT_DIRS = tuple(LAYOUTS[name].subdir for name in ('voc', 'context', 'coco-stuff', 'ade20k')) \
    + (CAPTIONS_DIR,)


def _scene(seed, stream, split_id, i, size):
    return render(np.random.default_rng([seed, _STREAMS[stream], split_id, i]), size)


def _save_jpg(rgb, path):
    Image.fromarray(rgb).save(path, quality=90)


def _save_png(values, path, palette=None):
    im = Image.fromarray(np.ascontiguousarray(values, np.uint8), 'P' if palette else 'L')
    if palette:
        im.putpalette(palette)
    im.save(path)


def _write_list(path, names):
    path.write_text(''.join(f'{x}\n' for x in names))


def _folders(layout, root, split):
    """The image and mask folders of ``split``, made."""
    dirs = layout.images(root, split), layout.masks(root, split)
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    return dirs


def _voc_image(img_dir, mask_dir, seed, split_id, offset, size, i):
    s = _scene(seed, 'voc', split_id, i, size)
    name = f'2012_{offset + i:06d}'
    seg = view_lut('voc')[s['label']]
    seg[boundary(s['instances'])] = 255   # void border around every object
    _save_jpg(s['rgb'], img_dir / f'{name}.jpg')
    _save_png(seg, mask_dir / f'{name}.png', VOC_PALETTE)
    return name


def _context_image(img_dir, mask_dir, seed, split_id, offset, size, i):
    s = _scene(seed, 'context', split_id, i, size)
    name = f'2010_{offset + i:06d}'
    _save_jpg(s['rgb'], img_dir / f'{name}.jpg')
    _save_png(view_lut('context')[s['label']], mask_dir / f'{name}.png')
    return name


def _plan_listed(layout, image, root, seed, splits, size):
    """VOC and Context: one image folder for both splits, named in a list file per split."""
    steps, offset = [], 0
    for split_id, (split, n) in enumerate(splits):
        img_dir, mask_dir = _folders(layout, root, split)
        list_file = layout.list_file(root, split)
        list_file.parent.mkdir(parents=True, exist_ok=True)
        steps.append((n, partial(image, img_dir, mask_dir, seed, split_id, offset, size),
                      partial(_write_list, list_file)))
        offset += n
    return steps


def plan_voc(root, seed, splits, size):
    return _plan_listed(LAYOUTS['voc'], _voc_image, root, seed, splits, size)


def plan_context(root, seed, splits, size):
    return _plan_listed(LAYOUTS['context'], _context_image, root, seed, splits, size)


def _coco_stuff_image(img_dir, ann_dir, seed, split_id, size, i):
    s = _scene(seed, 'coco_stuff', split_id, i, size)
    name = f'{(split_id + 1) * 100000 + i:012d}'
    seg, r = s['label'].copy(), s['stuff_regions']
    seam = np.zeros(r.shape, bool)   # unlabelled (255): 1-px seams between stuff regions
    seam[:, 1:] |= r[:, 1:] != r[:, :-1]
    seam[1:] |= r[1:] != r[:-1]
    seg[seam & (s['instances'] == 0)] = 255
    _save_jpg(s['rgb'], img_dir / f'{name}.jpg')
    _save_png(seg, ann_dir / f'{name}{LAYOUTS["coco-stuff"].mask_suffix}')


def plan_coco_stuff(root, seed, splits, size):
    return [(n, partial(_coco_stuff_image, *_folders(LAYOUTS['coco-stuff'], root, split), seed,
                        split_id, size), None)
            for split_id, (split, n) in enumerate(splits)]


def _ade_image(img_dir, ann_dir, tag, seed, split_id, size, i):
    s = _scene(seed, 'ade', split_id, i, size)
    name = f'ADE_{tag}_{i + 1:08d}'
    _save_jpg(s['rgb'], img_dir / f'{name}.jpg')
    _save_png(view_lut('ade')[s['label']], ann_dir / f'{name}.png')


def plan_ade(root, seed, splits, size):
    return [(n, partial(_ade_image, *_folders(LAYOUTS['ade20k'], root, split), split, seed,
                        split_id, size), None)
            for split_id, (split, n) in enumerate(splits)]


def _caption_image(img_dir, lab_dir, seed, split_id, size, i):
    s = _scene(seed, 'captions', split_id, i, size)
    image_id = (split_id + 1) * 1000000 + i
    name = f'{image_id:012d}'
    _save_jpg(s['rgb'], img_dir / f'{name}.jpg')
    _save_png(s['label'], lab_dir / f'{name}.png')
    h, w = s['label'].shape
    image = dict(license=1, file_name=f'{name}.jpg', coco_url='', height=h, width=w,
                 date_captured='2017-01-01 00:00:00', flickr_url='', id=image_id,
                 classes=s['classes'])
    return image, s['captions']


def _write_caption_json(path, split_id, results):
    images, anns = [], []
    for image, captions in results:
        images.append(image)
        for caption in captions:
            anns.append(dict(image_id=image['id'], id=len(anns) + 1 + split_id * 10000000,
                             caption=caption))
    doc = dict(
        info=dict(description='ovseg_bench synthetic world captions', url='',
                  version='1.0', year=2017, contributor='ovseg_bench',
                  date_created='2017/01/01'),
        licenses=[dict(url='', id=1, name='generated by ovseg_bench (no restrictions)')],
        images=images, annotations=anns)
    path.write_text(json.dumps(doc))


def plan_captions(root, seed, splits, size):
    base, steps = root / CAPTIONS_DIR, []
    (base / 'annotations').mkdir(parents=True, exist_ok=True)
    for split_id, (split, n) in enumerate(splits):
        img_dir, lab_dir = base / f'{split}2017', base / 'labels' / f'{split}2017'
        img_dir.mkdir(parents=True, exist_ok=True)
        lab_dir.mkdir(parents=True, exist_ok=True)
        steps.append((n, partial(_caption_image, img_dir, lab_dir, seed, split_id, size),
                      partial(_write_caption_json,
                              base / 'annotations' / f'captions_{split}2017.json', split_id)))
    return steps
