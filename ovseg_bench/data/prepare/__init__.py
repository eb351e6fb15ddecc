"""``ovseg-bench prepare``: the official downloads -> the layouts the dataset configs read
(:mod:`ovseg_bench.data.layouts`).

One converter per dataset family, named as on the command line (:data:`PREPARERS`), each in a
module of its own on the shared file helpers (:mod:`.files`):

``voc``          PASCAL VOC 2012 segmentation (the voc21 and voc20 configs; :mod:`.voc`)
``context``      Pascal Context, 59 classes + background (context60 and context59; :mod:`.context`)
``coco-stuff``   COCO-Stuff 164k, 171 train ids (coco_stuff171; :mod:`.coco`)
``coco-object``  COCO-Object, background + 80 things, from the instance annotations
                 (coco_object; :mod:`.coco`)
``ade20k``       ADE20K SceneParsing, ADEChallengeData2016 (ade150; :mod:`.ade20k`)
``cityscapes``   Cityscapes, 19 train ids (cityscapes; :mod:`.cityscapes`)
``context459``   Pascal Context with all 459 classes, 16-bit (context459; :mod:`.large_vocab`)
``ade847``       ADE20K-Full, 847 classes, 16-bit (ade847; :mod:`.large_vocab`)

The dataset config names (``voc21``, ``context59``, ...) are accepted too
(:func:`resolve_name`), so the ``Prepare it with:`` hints of the dataset classes run as
printed.

Images are hardlinked (copied when the output is on another filesystem), never re-encoded.
Every output goes through a temporary file, so an interrupted run leaves no truncated file,
and a rerun skips outputs already newer than their source (``force`` redoes them). Raw files
are checked before anything is written: a missing folder or file fails naming it and the
official download it comes from.
"""
from pathlib import Path

from ..layouts import LAYOUTS, SPLITS, resolve_name
from .ade20k import prepare_ade20k
from .cityscapes import prepare_cityscapes
from .coco import prepare_coco_object, prepare_coco_stuff
from .context import prepare_context
from .large_vocab import prepare_ade847, prepare_context459
from .voc import prepare_voc

PREPARERS = {'voc': prepare_voc, 'context': prepare_context, 'coco-stuff': prepare_coco_stuff,
             'coco-object': prepare_coco_object, 'ade20k': prepare_ade20k,
             'cityscapes': prepare_cityscapes, 'context459': prepare_context459,
             'ade847': prepare_ade847}


def prepare(name, src, out, splits=None, force=False, log=print):
    """Prepare dataset ``name`` (a layout or dataset config name) from the official files in
    ``src`` into ``out``; ``splits``: a subset of ('train', 'val'), default every split the
    raw files have. Returns the layout written."""
    layout = LAYOUTS[resolve_name(name)]
    for split in splits or ():
        if split not in SPLITS:
            raise ValueError(f'unknown split {split!r}; valid: {", ".join(SPLITS)}')
    sub = Path(layout.subdir).parts
    if Path(out).parts[-len(sub):] == sub:
        # a common slip: --out names the dataset folder instead of the data root
        raise ValueError(f'--out is the data root that will hold {layout.subdir}, not that '
                         f'folder itself: use --out {Path(out, *[".."] * len(sub)).resolve()}')
    PREPARERS[layout.name](src, out, splits=splits, force=force, log=log)
    return layout


def _log(msg):
    print(msg, flush=True)


def main_prepare(name, src, out, splits=None, force=False, log=_log):
    """The ``ovseg-bench prepare`` command: prepare, then say what reads it and how to check."""
    layout = prepare(name, src, out, splits=splits, force=force, log=log)
    log(f'prepared {Path(out) / layout.subdir} for the dataset configs '
        f'{", ".join(layout.configs)}; check it with: ovseg-bench check-data {out} '
        f'--dataset {layout.name}')
    return 0


__all__ = ['LAYOUTS', 'PREPARERS', 'SPLITS', 'main_prepare', 'prepare', 'resolve_name']
