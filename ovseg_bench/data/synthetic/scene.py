"""One scene: stuff regions, things painted over them, sensor noise, and its captions; every
pixel and word drawn from one numpy ``Generator``."""
import numpy as np

from .captions import scene_captions
from .shapes import place_things
from .textures import TEXTURES, stuff_layout
from .world import CLASSES, COLOUR_NAMES, STUFF, THINGS


def render(rng, size=(128, 96)):
    """Scene as a dict: ``rgb`` HxWx3 uint8, ``label`` HxW world ids, ``instances`` HxW (0 =
    stuff, i = i-th thing), ``stuff_regions`` HxW (region index), ``captions``, ``classes``."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    k = int(rng.integers(1, 4))
    stuff_ids = [int(i) for i in rng.choice(len(STUFF), k, replace=False)]
    regions, bands = stuff_layout(rng, h, w, k, yy, xx)
    if bands and STUFF.index('sky') in stuff_ids:   # the sky goes on top
        stuff_ids.remove(STUFF.index('sky'))
        stuff_ids.insert(0, STUFF.index('sky'))
    img = np.zeros((h, w, 3), np.float32)
    label = np.zeros((h, w), np.int64)
    for i, sid in enumerate(stuff_ids):
        sel = regions == i
        img[sel] = TEXTURES[STUFF[sid]](rng, h, w, yy, xx)[sel]
        label[sel] = len(THINGS) + sid
    inst, objects = place_things(rng, h, w, yy, xx, img, label)
    img += rng.normal(0, 3, img.shape).astype(np.float32)
    rgb = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    present = np.unique(label)
    things = {}
    for cls_id, colour_id in objects:
        things.setdefault(THINGS[cls_id], []).append(COLOUR_NAMES[colour_id])
    stuff = [CLASSES[c] for c in present if c >= len(THINGS)]
    return dict(rgb=rgb, label=label.astype(np.uint8), instances=inst, stuff_regions=regions,
                captions=scene_captions(rng, things, stuff),
                classes=[CLASSES[c] for c in present])


def render_scene(rng, size=(128, 96)):
    """One scene from ``rng`` (a numpy ``Generator``) at ``size`` = (width, height).

    Returns ``(rgb HxWx3 uint8, label HxW uint8 world ids, captions: list of 5 str)``; the
    classes present are exactly ``np.unique(label)``; every caption names each thing
    present, the first ``5 - THING_ONLY_CAPTIONS`` each stuff class too.
    """
    s = render(rng, size)
    return s['rgb'], s['label'], s['captions']


def boundary(ids, width=1):
    """Pixels within ``width`` px of a pixel with a different value of ``ids``."""
    out = np.zeros(ids.shape, bool)
    for dy in range(-width, width + 1):
        for dx in range(-width, width + 1):
            if dy or dx:
                shifted = np.pad(ids, width, mode='edge')[width + dy:width + dy + ids.shape[0],
                                                          width + dx:width + dx + ids.shape[1]]
                out |= shifted != ids
    return out
