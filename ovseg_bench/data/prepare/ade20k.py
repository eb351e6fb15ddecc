"""``prepare ade20k``: ADE20K SceneParsing (ADEChallengeData2016, ade150), already in its final
layout: checked and linked."""
from pathlib import Path

from ..layouts import LAYOUTS, SPLITS
from .files import Progress, find_root, link_or_copy, pick_splits, require


def prepare_ade20k(src, out, splits=None, force=False, log=print):
    """ADEChallengeData2016 is already in the final layout: check that every image has its
    annotation and the other way round, then link both (and the class list files)."""
    layout = LAYOUTS['ade20k']
    raw = find_root(src, ['ADEChallengeData2016', '.'], ['images', 'annotations'], layout)
    available = {s: raw / 'images' / layout.split_dirs[s] for s in SPLITS}
    for split in pick_splits(layout, splits, available, log):
        img_dir, mask_dir = (raw / d / layout.split_dirs[split]
                             for d in ('images', 'annotations'))
        if not mask_dir.is_dir():
            raise FileNotFoundError(f'ade20k {split}: missing {mask_dir}; extract '
                                    f'{layout.download} again.')
        stems = sorted(p.stem for p in img_dir.glob('*.jpg'))
        mask_stems = {p.stem for p in mask_dir.glob('*.png')}
        require(layout, split, [mask_dir / f'{s}.png' for s in stems], 'annotations')
        require(layout, split, [img_dir / f'{s}.jpg' for s in sorted(mask_stems - set(stems))],
                 'images (of annotations)')
        progress = Progress(f'ade20k {split}', len(stems), log)
        for stem in stems:
            wrote = link_or_copy(img_dir / f'{stem}.jpg',
                                 layout.images(out, split) / f'{stem}.jpg', force)
            wrote |= link_or_copy(mask_dir / f'{stem}.png',
                                  layout.masks(out, split) / f'{stem}.png', force)
            progress.step(wrote)
        progress.finish(layout.official[split], Path(out) / layout.subdir)
    for extra in ('objectInfo150.txt', 'sceneCategories.txt'):
        if (raw / extra).is_file():
            link_or_copy(raw / extra, Path(out) / layout.subdir / extra, force)
