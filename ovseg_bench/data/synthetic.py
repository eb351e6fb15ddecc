"""The synthetic world: procedural scenes of shapes ("things") on textured regions ("stuff").

Every scene is drawn from a numpy ``Generator`` only, so a seed fixes every pixel and caption.
A scene has 1-3 stuff regions (bands or blobs, each one texture) and 1-3 things painted over
them in order (later things occlude earlier ones; each keeps at least 40% of its area visible).
Things usually wear their class's colour (``THING_COLOURS``) and captions name what is in the
scene, so a tiny CLIP trained on the captions can learn both stuff and things.

World class ids (the label maps of :func:`render_scene` and ``coco/labels``) index
``CLASSES = THINGS + STUFF``; they equal the COCO-Stuff train ids of the ``coco_stuff164k``
layout. :func:`make_synthetic` writes four segmentation datasets in the real on-disk layouts
(each from its own seed stream) plus COCO-format captions:

``VOCdevkit/VOC2012``      background(0) + things; every stuff pixel is background; 255 void
                           border around each object; palette PNGs with VOC's colour map
``VOCdevkit/VOC2010``      Pascal Context as mmseg's converter leaves it: 0 background, then
                           things and every stuff class but ``CONTEXT_BACKGROUND`` (which is 0)
``coco_stuff164k``         ``*_labelTrainIds.png``: world ids, 255 on thin lines where stuff
                           regions meet (unlabelled)
``ADEChallengeData2016``   0 "other" (``ADE_OTHER`` pixels), 1..N the remaining classes
``coco``                   ``{train,val}2017`` images, ``annotations/captions_*2017.json`` (COCO
                           captions format; each image entry also lists its ``classes``) and
                           ``labels/{train,val}2017/*.png`` (world ids)
"""
import json
import multiprocessing as mp
import os
import re
import shutil
import signal
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from .layouts import LAYOUTS as DATASET_LAYOUTS, VOC_PALETTE

GENERATOR_VERSION = 3  # bump when rendering changes: roots written before are regenerated


@dataclass(frozen=True)
class World:
    """Class lists and words of the synthetic world."""
    things: tuple
    stuff: tuple
    synonyms: dict      # class -> synonyms (the class name itself is the canonical name)
    patterns: dict      # thing -> adjectives describing its fill pattern
    stuff_adjectives: dict

    @property
    def classes(self):
        return self.things + self.stuff

    def names(self, cls):
        """Canonical name first, then the synonyms."""
        return (cls,) + tuple(self.synonyms[cls])


WORLD = World(
    things=('circle', 'square', 'triangle', 'star', 'cross', 'ring', 'diamond', 'heart'),
    stuff=('grass', 'water', 'brick', 'sand', 'wood', 'sky'),
    synonyms={
        'circle': ('disc', 'round shape'), 'square': ('box', 'block'),
        'triangle': ('wedge', 'trigon'), 'star': ('starburst', 'pentagram'),
        'cross': ('plus sign', 'plus'), 'ring': ('donut', 'hoop'),
        'diamond': ('rhombus', 'lozenge'), 'heart': ('love heart', 'valentine'),
        'grass': ('lawn', 'turf'), 'water': ('sea', 'lake'),
        'brick': ('brick wall', 'bricks'), 'sand': ('beach', 'dune'),
        'wood': ('timber', 'wooden planks'), 'sky': ('clouds', 'heavens'),
    },
    patterns={
        'circle': ('dotted', 'spotted'), 'square': ('striped', 'stripy'),
        'triangle': ('plain', 'solid'), 'star': ('checkered', 'chequered'),
        'cross': ('gridded', 'plaid'), 'ring': ('banded', 'segmented'),
        'diamond': ('zigzag', 'chevron'), 'heart': ('shiny', 'glossy'),
    },
    stuff_adjectives={
        'grass': ('lush', 'short'), 'water': ('calm', 'rippling'), 'brick': ('old', 'red'),
        'sand': ('dry', 'golden'), 'wood': ('polished', 'old'), 'sky': ('cloudy', 'open'),
    },
)
THINGS, STUFF, CLASSES = WORLD.things, WORLD.stuff, WORLD.classes
SYNONYMS = WORLD.synonyms
CONTEXT_BACKGROUND = 'wood'   # Pascal Context view: this stuff class is unlabelled (0)
ADE_OTHER = 'sand'            # ADE20K view: this stuff class is "other" (0)

COLOURS = {
    'red': (215, 35, 35), 'orange': (240, 135, 25), 'yellow': (240, 215, 40),
    'green': (45, 165, 60), 'blue': (35, 75, 215), 'purple': (125, 45, 170),
    'pink': (240, 125, 180), 'white': (238, 238, 238), 'black': (28, 28, 28),
    'gray': (125, 125, 125), 'brown': (125, 78, 38), 'cyan': (35, 195, 205),
}
_COLOUR_NAMES = tuple(COLOURS)
# Each thing class has a usual colour (as real classes do: grass is green, sky is blue), chosen
# away from the stuff textures' colours; a thing takes it with probability THING_COLOUR_PROB,
# else any colour, so colour is a strong cue to the class but not a sufficient one.
THING_COLOURS = {'circle': 'red', 'square': 'black', 'triangle': 'yellow', 'star': 'purple',
                 'cross': 'orange', 'ring': 'cyan', 'diamond': 'pink', 'heart': 'white'}
THING_COLOUR_PROB = 0.75
_COLOUR_RGB = np.array([COLOURS[c] for c in _COLOUR_NAMES], np.float32)

# Each view: classes as the dataset class sees them, and world id -> on-disk value.
_N = len(CLASSES)


def _view_table():
    t = {}
    lut = np.zeros(_N, np.uint8)
    lut[:len(THINGS)] = np.arange(1, len(THINGS) + 1)
    t['voc'] = (('background',) + THINGS, lut)
    ctx = [c for c in STUFF if c != CONTEXT_BACKGROUND]
    order = ('background',) + THINGS + tuple(ctx)
    t['context'] = (order, np.array([order.index(c) if c in order else 0 for c in CLASSES],
                                    np.uint8))
    t['context59'] = (order[1:], t['context'][1])
    t['coco_stuff'] = (CLASSES, np.arange(_N, dtype=np.uint8))
    ade = THINGS + tuple(c for c in STUFF if c != ADE_OTHER)
    t['ade'] = (ade, np.array([ade.index(c) + 1 if c in ade else 0 for c in CLASSES], np.uint8))
    return t


_VIEWS = _view_table()
VIEWS = tuple(_VIEWS)


def view_classes(view):
    """Class names of a dataset view in label order, as its mmseg dataset class reports them
    (``context59`` and ``ade`` after ``reduce_zero_label``)."""
    return _VIEWS[view][0]


def view_lut(view):
    """uint8 lookup table: world class id -> value written in that view's mask files."""
    return _VIEWS[view][1].copy()


# ---------------------------------------------------------------- vocabularies
_VOCAB_VIEWS = {'synth_voc': 'voc', 'synth_context': 'context', 'synth_coco': 'coco_stuff',
                'synth_ade': 'ade'}


def vocabulary_lines(name):
    """Lines of the vocabulary file ``name`` (``synth_voc``, ``synth_context``, ``synth_coco``,
    ``synth_ade``): canonical name then synonyms. The background of the VOC view is every
    stuff class, that of the Context view is ``CONTEXT_BACKGROUND``, so it has prompts."""
    view = _VOCAB_VIEWS[name]
    lines = []
    for cls in view_classes(view):
        if cls == 'background':
            hidden = STUFF if view == 'voc' else (CONTEXT_BACKGROUND,)
            names = ('background',) + tuple(n for c in hidden for n in WORLD.names(c))
        else:
            names = WORLD.names(cls)
        lines.append(', '.join(names))
    return lines


def write_vocabularies(out_dir=None):
    """Write the synthetic vocabularies (by default into ``ovseg_bench/vocabularies``)."""
    out_dir = Path(out_dir or Path(__file__).resolve().parents[1] / 'vocabularies')
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in _VOCAB_VIEWS:
        (out_dir / f'{name}.txt').write_text('\n'.join(vocabulary_lines(name)) + '\n')
    return out_dir


# ---------------------------------------------------------------- noise and textures
def _value_noise(rng, h, w, cell_y, cell_x=None):
    """Smooth noise in [0, 1]: a random grid with cells of ``cell_y x cell_x`` px, interpolated."""
    cell_x = cell_y if cell_x is None else cell_x
    grid = rng.random((int(h / cell_y) + 3, int(w / cell_x) + 3), dtype=np.float32)
    ys = np.arange(h, dtype=np.float32) / cell_y + rng.random()
    xs = np.arange(w, dtype=np.float32) / cell_x + rng.random()
    y0, x0 = ys.astype(np.int64), xs.astype(np.int64)
    fy, fx = ys - y0, xs - x0
    fy, fx = (fy * fy * (3 - 2 * fy))[:, None], (fx * fx * (3 - 2 * fx))[None, :]
    a, b = grid[np.ix_(y0, x0)], grid[np.ix_(y0, x0 + 1)]
    c, d = grid[np.ix_(y0 + 1, x0)], grid[np.ix_(y0 + 1, x0 + 1)]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def _fbm(rng, h, w, cell, octaves=3):
    out, amp, total = np.zeros((h, w), np.float32), 1.0, 0.0
    for _ in range(octaves):
        out += amp * _value_noise(rng, h, w, max(cell, 1.0))
        total += amp
        amp, cell = amp * 0.5, cell / 2
    return out / total


def _tint(rng, low, high):
    return np.asarray(low, np.float32) + rng.random(3, dtype=np.float32) * (
        np.asarray(high, np.float32) - np.asarray(low, np.float32))


def _mix(a, b, t):
    """Blend colour images/colours ``a`` -> ``b`` by ``t`` (H,W or scalar)."""
    t = np.asarray(t, np.float32)
    return a * (1 - t[..., None]) + b * t[..., None] if t.ndim else a * (1 - t) + b * t


def _tex_grass(rng, h, w, yy, xx):
    tint = _tint(rng, (40, 105, 30), (115, 165, 55))
    blades = _value_noise(rng, h, w, 6.0, 1.0)
    shade = 0.6 + 0.25 * _fbm(rng, h, w, 16) + 0.35 * blades
    return tint * shade[..., None]


def _tex_water(rng, h, w, yy, xx):
    tint = _tint(rng, (20, 60, 130), (60, 135, 190))
    period = rng.uniform(5, 9)
    warp = 2.5 * np.sin(2 * np.pi * xx / rng.uniform(20, 40) + rng.uniform(0, 6.3))
    waves = np.sin(2 * np.pi * (yy + warp + 3 * _value_noise(rng, h, w, 12)) / period)
    img = tint * (0.8 + 0.15 * waves)[..., None]
    return _mix(img, np.float32([235, 245, 255]), np.clip(waves - 0.85, 0, 1) * 3)


def _tex_brick(rng, h, w, yy, xx):
    tint = _tint(rng, (135, 45, 30), (190, 90, 60))
    bh = int(rng.integers(7, 11))
    bw = int(bh * rng.uniform(1.8, 2.6))
    row = yy.astype(np.int64) // bh
    xs = xx.astype(np.int64) + (row % 2) * (bw // 2)
    col = xs // bw
    shade = rng.random((h // bh + 2, w // bw + 3), dtype=np.float32)[row, col]
    img = tint * (0.8 + 0.3 * shade)[..., None]
    mortar = (yy.astype(np.int64) % bh == 0) | (xs % bw == 0)
    img[mortar] = _tint(rng, (175, 170, 160), (215, 210, 200))
    return img


def _tex_sand(rng, h, w, yy, xx):
    tint = _tint(rng, (195, 165, 105), (235, 210, 150))
    angle = rng.uniform(0, np.pi)
    ripples = np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / rng.uniform(6, 11)
                     + 2 * _value_noise(rng, h, w, 10))
    speckle = rng.random((h, w), dtype=np.float32)
    return tint * (0.85 + 0.05 * ripples + 0.2 * (speckle - 0.5))[..., None]


def _tex_wood(rng, h, w, yy, xx):
    tint = _tint(rng, (105, 60, 28), (170, 115, 60))
    ph = int(rng.integers(11, 19))
    plank = yy.astype(np.int64) // ph
    offs = rng.random(h // ph + 2, dtype=np.float32)[plank]
    grain = np.sin(2 * np.pi * (yy / rng.uniform(2.5, 4.0) + 3 * _value_noise(rng, h, w, 6, 40)
                                + 5 * offs))
    img = tint * (0.85 + 0.1 * grain + 0.15 * (offs - 0.5))[..., None]
    img[yy.astype(np.int64) % ph == 0] *= 0.55
    return img


def _tex_sky(rng, h, w, yy, xx):
    tint = _tint(rng, (80, 140, 215), (165, 200, 240))
    img = _mix(tint * 0.85, tint + 0.5 * (255 - tint), yy / h)
    clouds = np.clip((_fbm(rng, h, w, 24) - 0.5) * 3.5, 0, 1)
    return _mix(img, np.float32([248, 248, 250]), clouds)


_TEXTURES = {'grass': _tex_grass, 'water': _tex_water, 'brick': _tex_brick,
             'sand': _tex_sand, 'wood': _tex_wood, 'sky': _tex_sky}


def _stuff_layout(rng, h, w, k, yy, xx, min_frac=0.12):
    """Region index map (0..k-1) of bands with wavy borders or warped blobs; every region keeps
    at least ``min_frac`` of the image. Returns ``(regions, is_bands)``."""
    if k == 1:
        return np.zeros((h, w), np.int64), True
    for _ in range(20):
        if rng.random() < 0.5:
            cuts = np.sort(rng.uniform(0.15, 0.85, k - 1)) * h
            region = np.zeros((h, w), np.int64)
            for cut in cuts:
                wave = (rng.uniform(2, 6) * np.sin(2 * np.pi * xx / rng.uniform(30, 90)
                                                   + rng.uniform(0, 6.3))
                        + 4 * (_value_noise(rng, h, w, 12) - 0.5))
                region += yy >= cut + wave
            bands = True
        else:
            pts = rng.random((k, 2)) * (w, h)
            wy = 14 * (_value_noise(rng, h, w, 20) - 0.5)
            wx = 14 * (_value_noise(rng, h, w, 20) - 0.5)
            d = ((xx + wx)[None] - pts[:, 0, None, None]) ** 2 + \
                ((yy + wy)[None] - pts[:, 1, None, None]) ** 2
            region = d.argmin(0)
            bands = False
        if np.bincount(region.ravel(), minlength=k).min() >= min_frac * h * w:
            return region, bands
    edges = np.linspace(0, h, k + 1)[1:-1]
    return (yy[:, :1] >= edges[None, :]).sum(1, keepdims=True).repeat(w, 1).astype(
        np.int64), True


# ---------------------------------------------------------------- things
def _star_mask(u, v, inner=0.45):
    rho, theta = np.hypot(u, v), np.arctan2(v, u) + np.pi / 2
    t = np.mod(theta, 2 * np.pi / 5)
    phi = np.minimum(t, 2 * np.pi / 5 - t)          # 0 at a point, pi/5 at an inner corner
    px, py = rho * np.cos(phi), rho * np.sin(phi)
    bx, by = inner * np.cos(np.pi / 5) - 1, inner * np.sin(np.pi / 5)
    return bx * py - by * (px - 1) >= 0             # on the centre side of the edge


def _shape_mask(cls, u, v):
    """Implicit shapes in object coordinates (radius about 1, v pointing down)."""
    au, av = np.abs(u), np.abs(v)
    if cls == 'circle':
        return u * u + v * v <= 1
    if cls == 'square':
        return np.maximum(au, av) <= 0.8
    if cls == 'triangle':
        return (v <= 0.5) & (np.sqrt(3) * u - v <= 1) & (-np.sqrt(3) * u - v <= 1)
    if cls == 'star':
        return _star_mask(u, v)
    if cls == 'cross':
        return ((au <= 0.3) & (av <= 0.95)) | ((av <= 0.3) & (au <= 0.95))
    if cls == 'ring':
        r2 = u * u + v * v
        return (r2 <= 1) & (r2 >= 0.33)
    if cls == 'diamond':
        return au / 0.68 + av <= 1
    if cls == 'heart':
        x, y = 1.15 * u, -1.15 * v + 0.25
        return (x * x + y * y - 1) ** 3 - x * x * y ** 3 <= 0
    raise KeyError(cls)


def _fill(cls, u, v, colour, rng):
    """Per-pixel colours (N,3) of a thing's fill pattern at object coordinates ``u, v`` (N,)."""
    second = _mix(colour, np.float32([250, 250, 250]), 0.6) if colour.mean() < 140 else \
        _mix(colour, np.float32([20, 20, 20]), 0.55)
    f = rng.uniform(2.2, 3.2)
    if cls == 'circle':      # dots
        on = (np.mod(u * f, 1) - 0.5) ** 2 + (np.mod(v * f, 1) - 0.5) ** 2 < 0.08
    elif cls == 'square':    # stripes
        on = np.floor(u * f * 1.3) % 2 == 0
    elif cls == 'triangle':  # solid, faint vertical shading
        return colour * (0.92 - 0.08 * v)[:, None]
    elif cls == 'star':      # checker
        on = (np.floor(u * f * 1.5) + np.floor(v * f * 1.5)) % 2 == 0
    elif cls == 'cross':     # grid lines
        on = (np.mod(u * f * 2, 1) < 0.3) | (np.mod(v * f * 2, 1) < 0.3)
    elif cls == 'ring':      # angular bands
        on = np.floor((np.arctan2(v, u) / (2 * np.pi) + 0.5) * 2 * rng.integers(4, 7)) % 2 == 0
    elif cls == 'diamond':   # zigzag
        on = np.floor((v + np.abs(np.mod(u * f, 1) - 0.5)) * f) % 2 == 0
    elif cls == 'heart':     # glossy highlight
        t = np.clip(1 - np.hypot(u + 0.35, v + 0.2) / 0.9, 0, 1)[:, None]
        return colour * (1 - t) + second * t
    else:
        raise KeyError(cls)
    return np.where(on[:, None], second, colour)


def _place_things(rng, h, w, yy, xx, img, label):
    """Paint 1-3 things in place; returns the instance map (0 = none) and the objects."""
    inst = np.zeros((h, w), np.int64)
    objects, areas = [], []
    short = min(h, w)
    for _ in range(int(rng.integers(1, 4))):
        cls_id = int(rng.integers(len(THINGS)))
        cls = THINGS[cls_id]
        colour_id = _COLOUR_NAMES.index(THING_COLOURS[cls]) \
            if rng.random() < THING_COLOUR_PROB else int(rng.integers(len(_COLOUR_NAMES)))
        for _try in range(10):
            # Radius 16-31 px at 96 px: 2-4 patches across in the tiny CLIP's 64 px windows.
            r = rng.uniform(0.17, 0.32) * short
            cx, cy = rng.uniform(0.35 * r, w - 0.35 * r), rng.uniform(0.35 * r, h - 0.35 * r)
            a = rng.uniform(0, 2 * np.pi) if cls not in ('heart', 'triangle') else \
                rng.uniform(-0.6, 0.6)
            ca, sa = np.cos(a), np.sin(a)
            dx, dy = (xx - cx) / r, (yy - cy) / r
            u, v = ca * dx + sa * dy, -sa * dx + ca * dy
            mask = _shape_mask(cls, u, v)
            area = int(mask.sum())
            if area < 40:
                continue
            keeps = [((inst == i + 1) & ~mask).sum() >= 0.4 * areas[i]
                     for i in range(len(objects))]
            if all(keeps):
                break
        else:
            continue
        img[mask] = _fill(cls, u[mask], v[mask], _COLOUR_RGB[colour_id], rng)
        inst[mask] = len(objects) + 1
        label[mask] = cls_id
        objects.append((cls_id, colour_id))
        areas.append(area)
    return inst, objects


# ---------------------------------------------------------------- captions
_NUMBERS = {2: 'two', 3: 'three', 4: 'four'}
_COUNTABLE_STUFF = {'lawn', 'sea', 'lake', 'brick wall', 'beach', 'dune', 'sky', 'heavens'}
_TEMPLATES = (
    '{T} on {S}.', '{T} in front of {S}.', 'a picture of {T} with {S} in the background.',
    '{S} behind {T}.', 'a photo of {T} and {S}.', 'an image showing {T} over {S}.',
    '{T}, with {S} all around.', 'a drawing of {T} set against {S}.',
    'here we see {T} above {S}.', '{T} lying on {S}.', 'a scene with {S} and {T}.',
    '{T} floating over {S}.',
)


def _plural(noun):
    head, _, last = noun.rpartition(' ')
    last = last + 'es' if re.search(r'(s|x|z|ch|sh)$', last) else last + 's'
    return f'{head} {last}'.strip()


def _join(parts):
    return parts[0] if len(parts) == 1 else ', '.join(parts[:-1]) + ' and ' + parts[-1]


def _thing_phrase(rng, cls, colours):
    noun = str(rng.choice(WORLD.names(cls)))
    adjs = []
    # Colour words only sometimes: a caption matched by colour alone teaches no shape.
    if len(set(colours)) == 1 and rng.random() < 0.35:
        adjs.append(colours[0])
    if rng.random() < 0.4:
        adjs.append(str(rng.choice(WORLD.patterns[cls])))
    if len(colours) == 1:
        words = ' '.join(adjs + [noun])
        return ('an ' if words[0] in 'aeiou' else 'a ') + words
    return ' '.join([_NUMBERS[len(colours)]] + adjs + [_plural(noun)])


def _stuff_phrase(rng, cls):
    noun = str(rng.choice(WORLD.names(cls)))
    phrase = f'{rng.choice(WORLD.stuff_adjectives[cls])} {noun}' if rng.random() < 0.3 else noun
    return f'the {phrase}' if noun in _COUNTABLE_STUFF or rng.random() < 0.4 else phrase


_THING_TEMPLATES = (
    '{T}.', 'a photo of {T}.', 'a picture showing {T}.', 'a close-up of {T}.',
    'an image of {T}.', 'there is {T}.',
)
THING_ONLY_CAPTIONS = 2   # of the 5 captions: these name the things only


def _captions(rng, things, stuff, n=5):
    """``n`` captions, each naming every thing group (class -> colour names); the first
    ``n - THING_ONLY_CAPTIONS`` name every stuff class too, the others no stuff. Captions
    without the (easy, large) stuff regions can only be matched by the shapes, which pushes a
    contrastive model to learn them."""
    out = []
    full = rng.choice(len(_TEMPLATES), n - THING_ONLY_CAPTIONS, replace=False)
    short = rng.choice(len(_THING_TEMPLATES), THING_ONLY_CAPTIONS, replace=False)
    for tmpl in [_TEMPLATES[i] for i in full] + [_THING_TEMPLATES[i] for i in short]:
        groups = list(things.items())
        rng.shuffle(groups)
        stuff_order = list(stuff)
        rng.shuffle(stuff_order)
        text = tmpl.format(
            T=_join([_thing_phrase(rng, c, cols) for c, cols in groups]),
            S=_join([_stuff_phrase(rng, c) for c in stuff_order]))
        out.append(text[0].upper() + text[1:])
    return out


# ---------------------------------------------------------------- scenes
def _render(rng, size=(128, 96)):
    """Scene as a dict: ``rgb`` HxWx3 uint8, ``label`` HxW world ids, ``instances`` HxW (0 =
    stuff, i = i-th thing), ``stuff_regions`` HxW (region index), ``captions``, ``classes``."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    k = int(rng.integers(1, 4))
    stuff_ids = [int(i) for i in rng.choice(len(STUFF), k, replace=False)]
    regions, bands = _stuff_layout(rng, h, w, k, yy, xx)
    if bands and STUFF.index('sky') in stuff_ids:   # the sky goes on top
        stuff_ids.remove(STUFF.index('sky'))
        stuff_ids.insert(0, STUFF.index('sky'))
    img = np.zeros((h, w, 3), np.float32)
    label = np.zeros((h, w), np.int64)
    for i, sid in enumerate(stuff_ids):
        sel = regions == i
        img[sel] = _TEXTURES[STUFF[sid]](rng, h, w, yy, xx)[sel]
        label[sel] = len(THINGS) + sid
    inst, objects = _place_things(rng, h, w, yy, xx, img, label)
    img += rng.normal(0, 3, img.shape).astype(np.float32)
    rgb = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    present = np.unique(label)
    things = {}
    for cls_id, colour_id in objects:
        things.setdefault(THINGS[cls_id], []).append(_COLOUR_NAMES[colour_id])
    stuff = [CLASSES[c] for c in present if c >= len(THINGS)]
    return dict(rgb=rgb, label=label.astype(np.uint8), instances=inst, stuff_regions=regions,
                captions=_captions(rng, things, stuff),
                classes=[CLASSES[c] for c in present])


def render_scene(rng, size=(128, 96)):
    """One scene from ``rng`` (a numpy ``Generator``) at ``size`` = (width, height).

    Returns ``(rgb HxWx3 uint8, label HxW uint8 world ids, captions: list of 5 str)``; the
    classes present are exactly ``np.unique(label)``; every caption names each thing
    present, the first ``5 - THING_ONLY_CAPTIONS`` each stuff class too.
    """
    s = _render(rng, size)
    return s['rgb'], s['label'], s['captions']


def _boundary(ids, width=1):
    """Pixels within ``width`` px of a pixel with a different value of ``ids``."""
    out = np.zeros(ids.shape, bool)
    for dy in range(-width, width + 1):
        for dx in range(-width, width + 1):
            if dy or dx:
                shifted = np.pad(ids, width, mode='edge')[width + dy:width + dy + ids.shape[0],
                                                          width + dx:width + dx + ids.shape[1]]
                out |= shifted != ids
    return out


# ---------------------------------------------------------------- writing the layouts
_STREAMS = {'voc': 1, 'context': 2, 'coco_stuff': 3, 'ade': 4, 'captions': 5}
_LAYOUT_DIRS = tuple(DATASET_LAYOUTS[name].subdir for name in ('voc', 'context', 'coco-stuff',
                                                                 'ade20k')) + ('coco',)


def _scene(seed, stream, split_id, i, size):
    # Each image has its own seed stream, so images can be rendered in any order or process.
    return _render(np.random.default_rng([seed, _STREAMS[stream], split_id, i]), size)


def _save_jpg(rgb, path):
    Image.fromarray(rgb).save(path, quality=90)


def _save_png(values, path, palette=None):
    im = Image.fromarray(np.ascontiguousarray(values, np.uint8), 'P' if palette else 'L')
    if palette:
        im.putpalette(palette)
    im.save(path)


def _write_list(path, names):
    path.write_text(''.join(f'{x}\n' for x in names))


# A layout's planner makes its folders and returns one step per split: ``(n, image, finish)``,
# where ``image(i)`` renders and saves image ``i`` of the split (in a worker process) and
# returns what ``finish(results)`` (in the parent, with the results in order) needs.
def _voc_image(base, seed, split_id, offset, size, i):
    s = _scene(seed, 'voc', split_id, i, size)
    name = f'2012_{offset + i:06d}'
    seg = view_lut('voc')[s['label']]
    seg[_boundary(s['instances'])] = 255   # void border around every object
    _save_jpg(s['rgb'], base / 'JPEGImages' / f'{name}.jpg')
    _save_png(seg, base / 'SegmentationClass' / f'{name}.png', VOC_PALETTE)
    return name


def _plan_voc(root, seed, splits, size):
    base = root / 'VOCdevkit' / 'VOC2012'
    for sub in ('JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation'):
        (base / sub).mkdir(parents=True, exist_ok=True)
    steps, offset = [], 0
    for split_id, (split, n) in enumerate(splits):
        steps.append((n, partial(_voc_image, base, seed, split_id, offset, size),
                      partial(_write_list, base / 'ImageSets/Segmentation' / f'{split}.txt')))
        offset += n
    return steps


def _context_image(base, seed, split_id, offset, size, i):
    s = _scene(seed, 'context', split_id, i, size)
    name = f'2010_{offset + i:06d}'
    _save_jpg(s['rgb'], base / 'JPEGImages' / f'{name}.jpg')
    _save_png(view_lut('context')[s['label']],
              base / 'SegmentationClassContext' / f'{name}.png')
    return name


def _plan_context(root, seed, splits, size):
    base = root / 'VOCdevkit' / 'VOC2010'
    for sub in ('JPEGImages', 'SegmentationClassContext', 'ImageSets/SegmentationContext'):
        (base / sub).mkdir(parents=True, exist_ok=True)
    steps, offset = [], 0
    for split_id, (split, n) in enumerate(splits):
        steps.append((n, partial(_context_image, base, seed, split_id, offset, size),
                      partial(_write_list,
                              base / 'ImageSets/SegmentationContext' / f'{split}.txt')))
        offset += n
    return steps


def _coco_stuff_image(img_dir, ann_dir, seed, split_id, size, i):
    s = _scene(seed, 'coco_stuff', split_id, i, size)
    name = f'{(split_id + 1) * 100000 + i:012d}'
    seg, r = s['label'].copy(), s['stuff_regions']
    seam = np.zeros(r.shape, bool)   # unlabelled (255): 1-px seams between stuff regions
    seam[:, 1:] |= r[:, 1:] != r[:, :-1]
    seam[1:] |= r[1:] != r[:-1]
    seg[seam & (s['instances'] == 0)] = 255
    _save_jpg(s['rgb'], img_dir / f'{name}.jpg')
    _save_png(seg, ann_dir / f'{name}_labelTrainIds.png')


def _plan_coco_stuff(root, seed, splits, size):
    base, steps = root / 'coco_stuff164k', []
    for split_id, (split, n) in enumerate(splits):
        img_dir, ann_dir = base / 'images' / f'{split}2017', base / 'annotations' / f'{split}2017'
        img_dir.mkdir(parents=True, exist_ok=True)
        ann_dir.mkdir(parents=True, exist_ok=True)
        steps.append((n, partial(_coco_stuff_image, img_dir, ann_dir, seed, split_id, size),
                      None))
    return steps


def _ade_image(img_dir, ann_dir, tag, seed, split_id, size, i):
    s = _scene(seed, 'ade', split_id, i, size)
    name = f'ADE_{tag}_{i + 1:08d}'
    _save_jpg(s['rgb'], img_dir / f'{name}.jpg')
    _save_png(view_lut('ade')[s['label']], ann_dir / f'{name}.png')


def _plan_ade(root, seed, splits, size):
    base, steps = root / 'ADEChallengeData2016', []
    for split_id, (split, n) in enumerate(splits):
        folder, tag = ('training', 'train') if split == 'train' else ('validation', 'val')
        img_dir, ann_dir = base / 'images' / folder, base / 'annotations' / folder
        img_dir.mkdir(parents=True, exist_ok=True)
        ann_dir.mkdir(parents=True, exist_ok=True)
        steps.append((n, partial(_ade_image, img_dir, ann_dir, tag, seed, split_id, size),
                      None))
    return steps


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


def _plan_captions(root, seed, splits, size):
    base, steps = root / 'coco', []
    (base / 'annotations').mkdir(parents=True, exist_ok=True)
    for split_id, (split, n) in enumerate(splits):
        img_dir, lab_dir = base / f'{split}2017', base / 'labels' / f'{split}2017'
        img_dir.mkdir(parents=True, exist_ok=True)
        lab_dir.mkdir(parents=True, exist_ok=True)
        steps.append((n, partial(_caption_image, img_dir, lab_dir, seed, split_id, size),
                      partial(_write_caption_json,
                              base / 'annotations' / f'captions_{split}2017.json', split_id)))
    return steps


def usable_cpus():
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _ignore_sigint():
    # Ctrl-C then stops the parent alone, which terminates the pool: one traceback, not three.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _pool(workers):
    """A process pool of ``workers``, or None (render in this process) for one worker.

    'fork' where the OS has it: the children inherit the imported modules, whereas 'spawn'
    re-imports ``ovseg_bench.data`` (mmseg and torch, ~9 s) in every worker. The children
    run numpy and PIL only, never torch, so a parent's torch threads cannot deadlock them."""
    if workers <= 1:
        return None
    method = 'fork' if 'fork' in mp.get_all_start_methods() else 'spawn'
    return mp.get_context(method).Pool(workers, initializer=_ignore_sigint)


# The layouts make_synthetic can write: name -> (folder under ``out``, writer, splits kind).
LAYOUTS = ('voc', 'context', 'coco_stuff', 'ade', 'captions')


def world_description(seed, n_val, n_seg_train, n_caption_train, n_caption_val, size,
                      layouts=LAYOUTS):
    """The content of ``synth_world.json`` (parameters, class lists, views, words)."""
    # ``layouts`` is recorded only when it is a subset, so full worlds keep their description.
    subset = {} if tuple(layouts) == LAYOUTS else dict(layouts=list(layouts))
    return dict(**subset,
        generator_version=GENERATOR_VERSION, seed=seed, size=list(size), n_val=n_val,
        n_seg_train=n_seg_train, n_caption_train=n_caption_train,
        n_caption_val=n_caption_val, things=list(THINGS), stuff=list(STUFF),
        synonyms={c: list(SYNONYMS[c]) for c in CLASSES},
        context_background=CONTEXT_BACKGROUND, ade_other=ADE_OTHER,
        views={v: list(view_classes(v)) for v in VIEWS})


def make_synthetic(out, seed=0, n_val=100, n_seg_train=300, n_caption_train=3000,
                   n_caption_val=300, size=(128, 96), progress=True, layouts=LAYOUTS,
                   workers=None):
    """Write the synthetic world under ``out`` in the real datasets' layouts (module docstring).

    ``size`` is (width, height) of every image; ``layouts`` a subset of :data:`LAYOUTS` (e.g.
    ``('voc',)`` with ``size=(500, 375)`` and ``n_val=1449`` for a VOC-sized validation set).

    Idempotent: returns at once when ``out/synth_world.json`` records the same parameters.
    Otherwise the layout folders are rewritten; a folder that exists under an ``out`` that
    was not written by this function (no ``synth_world.json`` nor an unfinished-run marker)
    is never touched (``FileExistsError``). Returns the ``Path`` of ``out``.

    ``workers`` processes render the images (default: :func:`usable_cpus`; 1 renders in this
    process). Every image has its own seed, so the files do not depend on ``workers``.
    """
    out = Path(out)
    workers = usable_cpus() if workers is None else workers
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f'workers must be a positive int or None; got {workers!r}')
    unknown = sorted(set(layouts) - set(LAYOUTS))
    if unknown or not layouts:
        raise ValueError(f'unknown synthetic layout(s) {unknown or layouts}; valid: '
                         f'{", ".join(LAYOUTS)}')
    layouts = tuple(name for name in LAYOUTS if name in layouts)
    desc = world_description(seed, n_val, n_seg_train, n_caption_train, n_caption_val,
                             tuple(size), layouts)
    meta, marker = out / 'synth_world.json', out / '.synth_world_incomplete'
    if meta.is_file():
        try:
            if json.loads(meta.read_text()) == desc:
                if progress:
                    print(f'synthetic world already at {out} (same parameters)', flush=True)
                return out
        except ValueError:
            pass
    elif not marker.exists():
        taken = [d for d in _LAYOUT_DIRS if (out / d).exists()]
        if taken:
            raise FileExistsError(f'{out} already holds {", ".join(taken)} but no '
                                  'synth_world.json: not overwriting what may be real data; '
                                  'choose another --out')
    out.mkdir(parents=True, exist_ok=True)
    marker.touch()
    meta.unlink(missing_ok=True)
    for d in _LAYOUT_DIRS:
        shutil.rmtree(out / d, ignore_errors=True)
    seg_splits = [('train', n_seg_train), ('val', n_val)]
    jobs = dict(voc=('VOC2012', _plan_voc, seg_splits),
                context=('VOC2010 (Context)', _plan_context, seg_splits),
                coco_stuff=('coco_stuff164k', _plan_coco_stuff, seg_splits),
                ade=('ADEChallengeData2016', _plan_ade, seg_splits),
                captions=('coco captions', _plan_captions,
                          [('train', n_caption_train), ('val', n_caption_val)]))
    jobs = [jobs[name] for name in layouts]
    n_images = sum(n for _, _, splits in jobs for _, n in splits)
    workers = max(1, min(workers, n_images))
    start = time.perf_counter()
    pool = _pool(workers)
    try:
        # Every split is queued up front (``imap`` is lazy only on the consuming side), so the
        # workers run on into the next split while the parent collects and writes this one.
        queued = []
        for name, plan, splits in jobs:
            steps = []
            for n, image, finish in plan(out, seed, splits, tuple(size)):
                # Chunks amortise the per-task IPC; small enough to keep both workers busy.
                results = (map(image, range(n)) if pool is None else
                           pool.imap(image, range(n), max(1, min(16, n // (8 * workers)))))
                steps.append((results, finish))
            queued.append((name, splits, steps))
        for name, splits, steps in queued:
            t0 = time.perf_counter()
            for results, finish in steps:
                results = list(results)   # re-raises a worker's exception here
                if finish is not None:
                    finish(results)
            if progress:
                print(f'synthetic: {name:<22} {sum(n for _, n in splits):5d} images '
                      f'({time.perf_counter() - t0:.1f}s)', flush=True)
        if pool is not None:
            pool.close()
            pool.join()
    finally:
        if pool is not None:
            pool.terminate()
    meta.write_text(json.dumps(desc, indent=1) + '\n')
    marker.unlink()
    if progress:
        print(f'synthetic world written to {out} in {time.perf_counter() - start:.1f}s '
              f'({workers} process{"es" if workers > 1 else ""})', flush=True)
    return out
