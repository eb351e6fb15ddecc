"""Things: the shape of each thing class, its fill pattern, and placing 1-3 of them in a scene
(later ones occlude earlier ones; each keeps at least 40% of its area visible)."""
import numpy as np

from .textures import mix
from .world import COLOUR_NAMES, COLOURS, THING_COLOUR_PROB, THING_COLOURS, THINGS

_COLOUR_RGB = np.array([COLOURS[c] for c in COLOUR_NAMES], np.float32)


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
    second = mix(colour, np.float32([250, 250, 250]), 0.6) if colour.mean() < 140 else \
        mix(colour, np.float32([20, 20, 20]), 0.55)
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


def place_things(rng, h, w, yy, xx, img, label):
    """Paint 1-3 things in place; returns the instance map (0 = none) and the objects."""
    inst = np.zeros((h, w), np.int64)
    objects, areas = [], []
    short = min(h, w)
    for _ in range(int(rng.integers(1, 4))):
        cls_id = int(rng.integers(len(THINGS)))
        cls = THINGS[cls_id]
        colour_id = COLOUR_NAMES.index(THING_COLOURS[cls]) \
            if rng.random() < THING_COLOUR_PROB else int(rng.integers(len(COLOUR_NAMES)))
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
