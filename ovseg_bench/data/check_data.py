"""``ovseg-bench check-data``: is a prepared data root complete and readable by the configs?

For each dataset found under the root (or named), and each split, it checks:

* the folders and, for VOC and Pascal Context, the split file;
* that every image has its mask and every mask its image;
* the image count against the official split (a warning: a partial copy is fine for a smoke
  test; an error with ``strict``);
* every mask (or ``sample`` of them): a single-channel PNG, values within the dataset's
  labels (0..N-1 and 255), the same size as its image, which is decoded whole (a truncated
  or damaged image is reported).

The val split is the one the benchmark evaluates, so a missing val split is an error; a
missing train split is only noted (it is needed to train, not to evaluate).
"""
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .layouts import LAYOUTS, SPLITS, resolve_name

SHOWN_PER_KIND = 5          # problems of one kind listed per split before "... and N more"
PROGRESS_EVERY = 2000       # masks read between progress lines


@dataclass
class SplitCheck:
    """The findings for one split of one dataset."""
    dataset: str
    split: str
    images: int = 0
    masks_read: int = 0
    prepared: bool = True
    errors: dict = field(default_factory=dict)      # kind -> [message, ...]
    warnings: list = field(default_factory=list)

    def error(self, kind, message):
        self.errors.setdefault(kind, []).append(message)

    @property
    def num_errors(self):
        return sum(map(len, self.errors.values()))

    def failed(self, strict=False):
        return bool(self.errors) or (strict and bool(self.warnings))


def find_datasets(root):
    """The layouts with files under ``root``: their folder, and for the two COCO views
    sharing ``coco_stuff164k``, at least one mask of their own suffix."""
    found = []
    for layout in LAYOUTS.values():
        if not (Path(root) / layout.subdir).is_dir():
            continue
        shared = sum(other.subdir == layout.subdir for other in LAYOUTS.values()) > 1
        if not shared or any(next(layout.masks(root, s).glob(f'*{layout.mask_suffix}'), None)
                             for s in SPLITS if layout.masks(root, s).is_dir()):
            found.append(layout.name)
    return found


def _names_in(folder, suffix):
    return {p.name[:-len(suffix)] for p in Path(folder).iterdir()
            if p.name.endswith(suffix) and not p.name.startswith('.')}


def _sampled(items, sample):
    """``sample`` items spread evenly over ``items`` (all of them when ``sample`` is None)."""
    if not sample or sample >= len(items):
        return list(items)
    return [items[i] for i in np.unique(np.linspace(0, len(items) - 1, sample).round()
                                        .astype(int))]


def check_split(layout, root, split, sample=None, progress=None):
    """Check one split of a prepared dataset (:class:`SplitCheck`)."""
    result = SplitCheck(layout.name, split)
    fix = f're-run {layout.prepare_command(root)}'
    img_dir, mask_dir = layout.images(root, split), layout.masks(root, split)
    list_file = layout.list_file(root, split)
    missing_dirs = [d for d in (img_dir, mask_dir) if not d.is_dir()]
    if list_file is not None:
        absent = None if list_file.is_file() else list_file
    else:       # the split is its folders: absent when neither exists
        absent = f'{img_dir} and {mask_dir}' if len(missing_dirs) == 2 else None
    if absent:
        if split == 'val':
            result.error('split', f'missing {absent}: the eval split of '
                                  f'{", ".join(layout.configs)} is not prepared; {fix}')
        else:
            result.prepared = False
            result.warnings.append(f'not prepared (no {absent}); needed only for training')
        return result
    for folder in missing_dirs:
        result.error('folder', f'missing folder {folder}; {fix}')
    if missing_dirs:
        return result

    if list_file is not None:
        names = [n.strip() for n in list_file.read_text().splitlines() if n.strip()]
        if not names:
            result.error('split', f'{list_file} lists no image; {fix}')
        pairs = [(n, img_dir / f'{n}{layout.img_suffix}', mask_dir / f'{n}{layout.mask_suffix}')
                 for n in names]
        for name, img, mask in pairs:
            if not img.is_file():
                result.error('missing image', f'missing image {img} (listed in {list_file}); '
                                              f'{fix}')
            if not mask.is_file():
                result.error('missing mask', f'missing mask {mask} (listed in {list_file}); '
                                             f'{fix}')
        result.images = len(names)
    else:
        images = _names_in(img_dir, layout.img_suffix)
        masks = _names_in(mask_dir, layout.mask_suffix)
        for name in sorted(images - masks):
            result.error('missing mask', f'missing mask {mask_dir / (name + layout.mask_suffix)} '
                                         f'of image {img_dir / (name + layout.img_suffix)}; '
                                         f'{fix}')
        for name in sorted(masks - images):
            result.error('missing image', f'mask {mask_dir / (name + layout.mask_suffix)} has no '
                                          f'image {img_dir / (name + layout.img_suffix)}; {fix}')
        names = sorted(images)
        if not names:
            result.error('folder', f'no *{layout.img_suffix} image in {img_dir}; {fix}')
        pairs = [(n, img_dir / f'{n}{layout.img_suffix}', mask_dir / f'{n}{layout.mask_suffix}')
                 for n in names]
        result.images = len(names)

    official = layout.official[split]
    if result.images and result.images != official:
        result.warnings.append(
            f'{result.images} images; the official {split} split has {official} (a partial '
            f'copy: fine for smoke tests, not for reported numbers)')

    valid = np.zeros(max(256, layout.void + 1), bool)
    valid[:layout.num_labels] = valid[layout.void] = True
    readable = [(img, mask) for _, img, mask in pairs if img.is_file() and mask.is_file()]
    to_read = _sampled(readable, sample)
    for i, (img, mask) in enumerate(to_read, 1):
        _check_mask(result, layout, img, mask, valid, fix)
        result.masks_read += 1
        if progress and i % PROGRESS_EVERY == 0 and i < len(to_read):
            progress(f'  {layout.name} {split}: {i}/{len(to_read)} masks read')
    return result


def _check_mask(result, layout, img, mask, valid, fix):
    try:
        with Image.open(mask) as m:
            mode, size = m.mode, m.size
            wide = layout.void > 255 and mode.startswith('I;16')  # the 16-bit layouts
            labels = np.asarray(m) if mode in ('L', 'P') or wide else None
    except (OSError, SyntaxError, ValueError) as err:
        result.error('unreadable mask', f'cannot read mask {mask} ({err}); {fix}')
        return
    if labels is None:
        result.error('mask mode', f'mask {mask} is a {mode} image, not a single-channel index '
                                  f'PNG (colour-coded or 16-bit?); {fix}')
        return
    bad = np.unique(labels[~valid[labels]])
    if bad.size:
        result.error('label values', f'mask {mask} has values {bad.tolist()[:10]} outside '
                                     f'0..{layout.num_labels - 1} and {layout.void} '
                                     f'({layout.name} labels): not a converted mask; {fix}')
    try:
        with Image.open(img) as im:
            img_size = im.size
            im.load()          # decodes every byte: a truncated JPEG fails here, not in `test`
    except (OSError, SyntaxError, ValueError) as err:
        result.error('unreadable image', f'cannot read image {img} ({err}); {fix}')
        return
    if img_size != size:
        result.error('size', f'mask {mask} is {size[0]}x{size[1]} but its image {img} is '
                             f'{img_size[0]}x{img_size[1]}: not this image\'s mask; {fix}')


def check_data(root, datasets=None, sample=None, progress=None):
    """Check every split of ``datasets`` (layout or dataset config names; default: those found
    under ``root``). Returns the :class:`SplitCheck` list, in layout and split order."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f'data root {root} does not exist')
    names = [resolve_name(n) for n in datasets] if datasets else find_datasets(root)
    if not names:
        looked = ', '.join(sorted({layout.subdir for layout in LAYOUTS.values()}))
        raise FileNotFoundError(f'no prepared dataset under {root} (looked for {looked}); '
                                f'prepare one with: ovseg-bench prepare NAME --src RAW '
                                f'--out {root}')
    results = []
    for name in dict.fromkeys(names):
        for split in ('val', 'train'):
            results.append(check_split(LAYOUTS[name], root, split, sample, progress))
    return results


def format_report(results, strict=False):
    """One line per dataset/split (OK / not prepared / N problems), then its problems, each
    naming the file and the fix; the last line sums up."""
    lines = []
    for r in results:
        where = f'{r.dataset} {r.split}'
        if not r.prepared:
            lines.append(f'{where}: {r.warnings[0]}' + (' (an error with --strict)' * strict))
            continue
        counts = f'{r.images} images, {r.masks_read} masks read'
        if r.failed(strict):
            n = r.num_errors + (len(r.warnings) if strict else 0)
            lines.append(f'{where}: {n} problem{"s" * (n != 1)} ({counts})')
        else:
            note = f', {len(r.warnings)} warning{"s" * (len(r.warnings) != 1)}' \
                if r.warnings else ''
            lines.append(f'{where}: OK ({counts}{note})')
        for messages in r.errors.values():
            lines += [f'  error: {m}' for m in messages[:SHOWN_PER_KIND]]
            if len(messages) > SHOWN_PER_KIND:
                lines.append(f'  ... and {len(messages) - SHOWN_PER_KIND} more like this')
        label = 'error' if strict else 'warning'
        lines += [f'  {label}: {w}' for w in r.warnings]
    failed = [r for r in results if r.failed(strict)]
    if failed:
        lines.append(f'check-data: problems in {len(failed)} of {len(results)} splits'
                     + (' (--strict: warnings count)' if strict else ''))
    else:
        lines.append('check-data: OK')
    return '\n'.join(lines)


def main_check_data(root, datasets=None, strict=False, sample=None):
    """The ``ovseg-bench check-data`` command: print the report; 1 when anything is wrong."""
    def progress(msg):
        print(msg, file=sys.stderr, flush=True)
    results = check_data(root, datasets, sample=sample, progress=progress)
    print(format_report(results, strict), flush=True)
    return 1 if any(r.failed(strict) for r in results) else 0
