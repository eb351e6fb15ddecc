"""``prepare coco-stuff`` (COCO-Stuff 164k, 171 train ids) and ``prepare coco-object``
(background + 80 things, from the instance annotations): COCO 2017 images, two label sets."""
import io
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
from PIL import Image

from ..layouts import COCO_DIRS, LAYOUTS, VOID
from .files import (Progress, convert_id_mask, first_dir, link_or_copy, lookup, pick_splits,
                    require, require_dir, save_mask, up_to_date)

# COCO: stuffthingmaps hold the COCO category id - 1 (0..181). These 11 ids were never used;
# the other 171 become train ids 0..170 in order (mmseg's COCOStuffDataset classes).
COCO_UNUSED_IDS = (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90)
COCO_STUFF_IDS = tuple(i for i in range(182) if i not in COCO_UNUSED_IDS)
# The 80 thing category ids of instances_*.json (1..90 with gaps), in COCO-Stuff's order.
COCO_THING_CATEGORY_IDS = tuple(i + 1 for i in range(90) if i not in COCO_UNUSED_IDS)
COCO_STUFF_LUT = lookup(COCO_STUFF_IDS, 256, VOID)                       # id -> 0..170
COCO_THING_TRAIN_ID = {cat: i + 1 for i, cat in enumerate(COCO_THING_CATEGORY_IDS)}


def _coco_images(src, folder, what):
    """The COCO image folder of a split (``RAW/images/<folder>`` or ``RAW/<folder>``)."""
    found = first_dir([Path(src) / 'images' / folder, Path(src) / folder])
    if found is None:
        raise FileNotFoundError(f'{what}: no image folder {src}/images/{folder} or '
                                f'{src}/{folder}; extract {folder}.zip '
                                f'(https://cocodataset.org/#download) there.')
    return found


def coco_stuff_labels(ids):
    """COCO-Stuff stuffthingmap ids (0..181, 255 unlabelled) -> train ids 0..170, 255."""
    return COCO_STUFF_LUT[np.asarray(ids, np.uint8)]


def convert_coco_stuff_mask(src, dst, force=False):
    return convert_id_mask(src, dst, coco_stuff_labels, 'a stuffthingmap', force)


def prepare_coco_stuff(src, out, splits=None, force=False, log=print):
    """COCO 2017 images + COCO-Stuff ``stuffthingmaps`` -> ``OUT/coco_stuff164k``
    (``<id>_labelTrainIds.png``). The stuffthingmaps may sit in ``RAW/annotations/<split>``
    (mmseg's layout) or ``RAW/stuffthingmaps/<split>``."""
    layout = LAYOUTS['coco-stuff']
    src = Path(src)
    require_dir(src, layout)
    mask_dirs = {}
    for split, folder in COCO_DIRS.items():
        candidates = [src / 'annotations' / folder, src / 'stuffthingmaps' / folder]
        mask_dirs[split] = first_dir(candidates) or candidates[0]
    for split in pick_splits(layout, splits, mask_dirs, log):
        folder = COCO_DIRS[split]
        img_dir = _coco_images(src, folder, f'coco-stuff {split}')
        ids = sorted(_coco_ids(img_dir, '.jpg'))
        if not ids:
            raise FileNotFoundError(f'coco-stuff {split}: no <id>.jpg images in {img_dir}')
        require(layout, split, [mask_dirs[split] / f'{i}.png' for i in ids],
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
    require_dir(src, layout)
    jsons = {s: src / 'annotations' / f'instances_{f}.json' for s, f in COCO_DIRS.items()}
    for split in pick_splits(layout, splits, jsons, log):
        folder = COCO_DIRS[split]
        img_dir = _coco_images(src, folder, f'coco-object {split}')
        log(f'coco-object {split}: reading {jsons[split]}')
        with redirect_stdout(io.StringIO()):        # pycocotools prints its progress
            coco = COCO(str(jsons[split]))
        image_ids = sorted(coco.imgs)
        images = [img_dir / coco.imgs[i]['file_name'] for i in image_ids]
        require(layout, split, images, f'images listed in {jsons[split].name}')
        progress = Progress(f'coco-object {split}', len(image_ids), log)
        for image_id, img in zip(image_ids, images):
            dst = layout.masks(out, split) / f'{img.stem}{layout.mask_suffix}'
            wrote = link_or_copy(img, layout.images(out, split) / img.name, force)
            if not up_to_date(dst, [jsons[split]], force):
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
