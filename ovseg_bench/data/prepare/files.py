"""The file side of every converter: links and atomic writes that a rerun skips when up to
date, progress lines, and finding the raw files (failing with the official download to get)."""
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from ..layouts import SPLITS

PROGRESS_EVERY = 500        # a progress line every this many images


def lookup(ids, size, default):
    """A uint8 table: ``ids[i]`` -> ``i`` (``i + 1`` when ``default`` is 0, the background),
    every other value -> ``default``."""
    lut = np.full(size, default, np.uint8)
    lut[list(ids)] = np.arange(len(ids)) + (1 if default == 0 else 0)
    return lut



def _stat_mtime(path):
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


def up_to_date(dst, sources, force=False):
    """``dst`` exists and is at least as new as every source (and no ``force``)."""
    if force:
        return False
    done = _stat_mtime(dst)
    return done is not None and all(done >= src.stat().st_mtime for src in sources)


def partial_path(dst):
    dst.parent.mkdir(parents=True, exist_ok=True)
    return dst.with_name(f'.{dst.name}.part')


def link_or_copy(src, dst, force=False):
    """Hardlink ``src`` to ``dst`` (no space, no re-encoding), copying across filesystems or
    where a link is refused. Returns False when ``dst`` was already up to date."""
    src, dst = Path(src), Path(dst)
    if not force and (up_to_date(dst, [src]) or
                      (dst.exists() and os.path.samefile(src, dst))):
        return False
    tmp = partial_path(dst)
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:                 # another filesystem, or a file this user may not link
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    return True


def save_mask(labels, dst, palette=None):
    """Write a uint8 label map as a single-channel PNG (palette PNG with ``palette``)."""
    dst = Path(dst)
    img = Image.fromarray(np.ascontiguousarray(labels, dtype=np.uint8), 'L')
    if palette is not None:
        img = img.convert('P')      # 'L' -> 'P' keeps the indices
        img.putpalette(palette)
    tmp = partial_path(dst)
    img.save(tmp, format='PNG')
    os.replace(tmp, dst)


def convert_id_mask(src, dst, to_labels, what, force=False):
    """An 8-bit id mask (``L`` or ``P`` PNG, ``what`` it is called in the error) mapped by
    ``to_labels`` and written as a label PNG; False when ``dst`` was already up to date."""
    src, dst = Path(src), Path(dst)
    if up_to_date(dst, [src], force):
        return False
    with Image.open(src) as img:
        if img.mode not in ('L', 'P'):
            raise ValueError(f'{src}: a {img.mode} image, not {what} (8-bit ids)')
        labels = to_labels(np.asarray(img))
    save_mask(labels, dst)
    return True


class Progress:
    """Counts the images of one split, printing a line every ``every`` and a summary."""

    def __init__(self, label, total, log, every=PROGRESS_EVERY):
        self.label, self.total, self.log, self.every = label, total, log, every
        self.done = self.written = 0

    def step(self, wrote):
        self.done += 1
        self.written += bool(wrote)
        if self.done % self.every == 0 and self.done < self.total:
            self.log(f'  {self.label}: {self.done}/{self.total}')

    def finish(self, official, where):
        note = (f'; the official split has {official}: a partial copy'
                if official and self.done != official else '')
        self.log(f'  {self.label}: {self.done} images ({self.written} written, '
                 f'{self.done - self.written} already up to date) -> {where}{note}')


def first_dir(candidates):
    return next((c for c in candidates if c.is_dir()), None)


def first_file(candidates):
    return next((c for c in candidates if c.is_file()), None)


def find_root(src, candidates, required, layout):
    """The first of ``src``/candidate holding every ``required`` path, else a clear error."""
    src = Path(src)
    require_dir(src, layout)
    for candidate in candidates:
        root = src / candidate
        if all((root / r).exists() for r in required):
            return root
    best = src / candidates[0]
    missing = [str(best / r) for r in required if not (best / r).exists()]
    raise FileNotFoundError(
        f'{layout.name}: {src} is not the extracted official download: missing '
        f'{", ".join(missing)}. Expected {best}/{{{",".join(required)}}}; download '
        f'{layout.download} and extract it into {src}.')


def require(layout, split, paths, what):
    missing = [p for p in paths if not p.is_file()]
    if missing:
        shown = '\n  '.join(map(str, missing[:5]))
        more = f'\n  ... and {len(missing) - 5} more' if len(missing) > 5 else ''
        raise FileNotFoundError(
            f'{layout.name} {split}: {len(missing)} {what} missing:\n  {shown}{more}\n'
            f'The raw folder is incomplete; extract {layout.download} again.')


def pick_splits(layout, requested, sources, log):
    """The splits to prepare: ``requested`` (each must be in the raw files) or every split
    that is (the others are skipped with a note: a val-only copy is fine for evaluation).

    ``sources``: split -> the raw path that holds it, or (found, what is missing)."""
    found = {s: (src.exists(), str(src)) if isinstance(src, Path) else src
             for s, src in sources.items()}
    for split in requested or ():
        if not found[split][0]:
            raise FileNotFoundError(
                f'{layout.name}: no {split} split in the raw files: missing {found[split][1]} '
                f'(part of {layout.download}).')
    if requested:
        return list(requested)
    chosen = [s for s in SPLITS if found[s][0]]
    if not chosen:
        raise FileNotFoundError(
            f'{layout.name}: no split found in the raw files: missing '
            f'{" and ".join(found[s][1] for s in SPLITS)} (part of {layout.download}).')
    for split in SPLITS:
        if split not in chosen:
            log(f'{layout.name}: skipping {split}, not in the raw files ({found[split][1]})')
    return chosen


def require_dir(src, layout):
    if not Path(src).is_dir():
        raise FileNotFoundError(f'{layout.name}: raw folder {src} does not exist. '
                                f'Download {layout.download} and extract it there.')


def read_list(path):
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]


def write_list(names, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)
    tmp.write_text(''.join(f'{n}\n' for n in names))
    os.replace(tmp, path)
