"""Stuff: smooth value noise, one procedural texture per stuff class (:data:`TEXTURES`) and the
layout of a scene's stuff regions (bands with wavy borders, or warped blobs)."""
import numpy as np


def value_noise(rng, h, w, cell_y, cell_x=None):
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
        out += amp * value_noise(rng, h, w, max(cell, 1.0))
        total += amp
        amp, cell = amp * 0.5, cell / 2
    return out / total


def _tint(rng, low, high):
    return np.asarray(low, np.float32) + rng.random(3, dtype=np.float32) * (
        np.asarray(high, np.float32) - np.asarray(low, np.float32))


def mix(a, b, t):
    """Blend colour images/colours ``a`` -> ``b`` by ``t`` (H,W or scalar)."""
    t = np.asarray(t, np.float32)
    return a * (1 - t[..., None]) + b * t[..., None] if t.ndim else a * (1 - t) + b * t


def _tex_grass(rng, h, w, yy, xx):
    tint = _tint(rng, (40, 105, 30), (115, 165, 55))
    blades = value_noise(rng, h, w, 6.0, 1.0)
    shade = 0.6 + 0.25 * _fbm(rng, h, w, 16) + 0.35 * blades
    return tint * shade[..., None]


def _tex_water(rng, h, w, yy, xx):
    tint = _tint(rng, (20, 60, 130), (60, 135, 190))
    period = rng.uniform(5, 9)
    warp = 2.5 * np.sin(2 * np.pi * xx / rng.uniform(20, 40) + rng.uniform(0, 6.3))
    waves = np.sin(2 * np.pi * (yy + warp + 3 * value_noise(rng, h, w, 12)) / period)
    img = tint * (0.8 + 0.15 * waves)[..., None]
    return mix(img, np.float32([235, 245, 255]), np.clip(waves - 0.85, 0, 1) * 3)


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
                     + 2 * value_noise(rng, h, w, 10))
    speckle = rng.random((h, w), dtype=np.float32)
    return tint * (0.85 + 0.05 * ripples + 0.2 * (speckle - 0.5))[..., None]


def _tex_wood(rng, h, w, yy, xx):
    tint = _tint(rng, (105, 60, 28), (170, 115, 60))
    ph = int(rng.integers(11, 19))
    plank = yy.astype(np.int64) // ph
    offs = rng.random(h // ph + 2, dtype=np.float32)[plank]
    grain = np.sin(2 * np.pi * (yy / rng.uniform(2.5, 4.0) + 3 * value_noise(rng, h, w, 6, 40)
                                + 5 * offs))
    img = tint * (0.85 + 0.1 * grain + 0.15 * (offs - 0.5))[..., None]
    img[yy.astype(np.int64) % ph == 0] *= 0.55
    return img


def _tex_sky(rng, h, w, yy, xx):
    tint = _tint(rng, (80, 140, 215), (165, 200, 240))
    img = mix(tint * 0.85, tint + 0.5 * (255 - tint), yy / h)
    clouds = np.clip((_fbm(rng, h, w, 24) - 0.5) * 3.5, 0, 1)
    return mix(img, np.float32([248, 248, 250]), clouds)


TEXTURES = {'grass': _tex_grass, 'water': _tex_water, 'brick': _tex_brick,
             'sand': _tex_sand, 'wood': _tex_wood, 'sky': _tex_sky}


def stuff_layout(rng, h, w, k, yy, xx, min_frac=0.12):
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
                        + 4 * (value_noise(rng, h, w, 12) - 0.5))
                region += yy >= cut + wave
            bands = True
        else:
            pts = rng.random((k, 2)) * (w, h)
            wy = 14 * (value_noise(rng, h, w, 20) - 0.5)
            wx = 14 * (value_noise(rng, h, w, 20) - 0.5)
            d = ((xx + wx)[None] - pts[:, 0, None, None]) ** 2 + \
                ((yy + wy)[None] - pts[:, 1, None, None]) ** 2
            region = d.argmin(0)
            bands = False
        if np.bincount(region.ravel(), minlength=k).min() >= min_frac * h * w:
            return region, bands
    edges = np.linspace(0, h, k + 1)[1:-1]
    return (yy[:, :1] >= edges[None, :]).sum(1, keepdims=True).repeat(w, 1).astype(
        np.int64), True
