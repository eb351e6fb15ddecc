"""``ovseg-bench make-synthetic``: the synthetic world written under a folder, rendered by a
process pool, idempotent for the same parameters (``synth_world.json``) and never over data it
did not write."""
import json
import multiprocessing as mp
import os
import shutil
import signal
import time
from pathlib import Path

from .world import (ADE_OTHER, CLASSES, CONTEXT_BACKGROUND, STUFF, SYNONYMS, THINGS, VIEWS,
                    view_classes)
from .writers import (LAYOUT_DIRS, plan_ade, plan_captions, plan_coco_stuff, plan_context,
                      plan_voc)

GENERATOR_VERSION = 3  # bump when rendering changes: roots written before are regenerated


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


# The layouts make_synthetic can write, in the order it writes them.
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
    """Write the synthetic world under ``out`` in the real datasets' layouts (see the package).

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
        taken = [d for d in LAYOUT_DIRS if (out / d).exists()]
        if taken:
            raise FileExistsError(f'{out} already holds {", ".join(taken)} but no '
                                  'synth_world.json: not overwriting what may be real data; '
                                  'choose another --out')
    out.mkdir(parents=True, exist_ok=True)
    marker.touch()
    meta.unlink(missing_ok=True)
    for d in LAYOUT_DIRS:
        shutil.rmtree(out / d, ignore_errors=True)
    seg_splits = [('train', n_seg_train), ('val', n_val)]
    jobs = dict(voc=('VOC2012', plan_voc, seg_splits),
                context=('VOC2010 (Context)', plan_context, seg_splits),
                coco_stuff=('coco_stuff164k', plan_coco_stuff, seg_splits),
                ade=('ADEChallengeData2016', plan_ade, seg_splits),
                captions=('coco captions', plan_captions,
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
