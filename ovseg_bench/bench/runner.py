"""The benchmark matrix runner behind ``ovseg-bench bench``.

A matrix config (``configs/bench/*.py``, keys in :data:`MATRIX_KEYS`) names methods x
backbones x training sets x datasets x seeds and the protocol. A trainable cell is trained once
per (config, backbone, training set, seed) -- a finished run is reused while its config and
starting weights are unchanged -- then evaluated on every dataset, each result written as one
row at once (atomically), so an interrupted run keeps every finished row and a rerun resumes.

Trainings run in ``train_workers`` worker processes (each its share of the CPU threads), while
this process evaluates every cell whose weights are ready: on a 2-core machine two small
trainings side by side get ~1.3x the throughput of one using both cores.

``--shard K/N`` runs a deterministic 1/N of the matrix (:func:`~.matrix.shard_cells`), so that N
processes, e.g. the tasks of a Slurm job array, run it together into one results.csv.
"""
import contextlib
import logging
import time
import traceback
from collections import deque
from concurrent.futures import FIRST_COMPLETED, wait
from pathlib import Path

import torch

from .. import config as C
from .. import console
from ..engine.evaluate import load_head
from . import results
from .matrix import (cell_configs, cell_datasets, check_matrix, check_only, parse_only,
                     parse_shard, selected, shard_cells)
from .record import evaluate_row
from .trainings import Trainings, check_untrained, is_cached, needs_training, trained_time


class Progress:
    """One line per event: which cell, how far, elapsed and time left. The estimate covers
    the evaluations (each timed on its own, as trainings run beside them) and counts the
    training runs not finished yet, whose own progress and ETA are in their bars."""

    def __init__(self, total, trainings=0):
        self.total, self.done, self.trainings = total, 0, trainings
        self.start, self.eval_s = time.perf_counter(), 0.0

    def trained(self):
        self.trainings -= 1

    def evaluated(self, seconds=0.0):
        self.done += 1
        self.eval_s += seconds

    def say(self, text):
        elapsed = time.perf_counter() - self.start
        if self.done:
            left = self.eval_s / self.done * (self.total - self.done)
            eta = f'{left / 60:.1f} min of evaluation left'
        else:
            eta = 'estimating'
        if self.trainings:
            eta += f' + {self.trainings} training run(s)'
        console.line(f'[{self.done}/{self.total} | {elapsed / 60:.1f} min | {eta}] {text}')


def ensure_prerequisites(matrix, trainings):
    """Synthetic data and pretrained backbones the matrix stands on, made once and cached."""
    if matrix.get('synthetic'):
        from ..data.synthetic import make_synthetic
        spec = matrix.synthetic  # an output folder, or make_synthetic's keyword arguments
        make_synthetic(**spec) if isinstance(spec, dict) else make_synthetic(spec)
    todo = [C.read_config_file(p) for p in matrix.get('pretrain', [])]
    todo = [cfg for cfg in todo if not is_cached(cfg, 'backbone.pt')]
    for cfg in todo:
        print(f'pretraining {cfg.filename} (once; cached in {cfg.work_dir})', flush=True)
    futures = [trainings.submit(cfg, len(todo)) for cfg in todo]
    if futures:
        trainings.warm()
    for future in futures:
        future.result()


def plan_cells(matrix, csv_path, only, force, shard=None):
    """[(cfg, datasets to evaluate)] for every selected cell (of ``shard``, if given) not yet
    in the results."""
    # A finished row counts only if it came from the same cell config (a changed config or
    # protocol reruns the cell and replaces the row).
    # A row without its per-class rows (written first) is a cell cut short: redone.
    with_classes = {results.row_key(r)
                    for r in results.read_rows(Path(csv_path).with_name('per_class.csv'))}
    done = {} if force else {results.row_key(r): r.get('config_hash')
                             for r in results.read_rows(csv_path)
                             if results.row_key(r) in with_classes}
    plan, keys = [], []
    cells = cell_configs(matrix)
    mine = {id(c) for c in shard_cells(cells, shard)}
    for cfg in cells:
        cfg_hash = results.config_hash(cfg.to_dict())
        cell_keys = {d: results.cell_key(cfg, d) for d in cell_datasets(matrix, cfg)}
        keys += cell_keys.values()      # --only is checked against the whole matrix
        if id(cfg) not in mine:
            continue
        todo = [d for d, key in cell_keys.items()
                if selected(key, only) and done.get(results.row_key(key)) != cfg_hash]
        if todo:
            plan.append((cfg, todo))
    check_only(only, keys)
    return plan


@contextlib.contextmanager
def torch_threads(n=None):
    """torch's CPU threads set to ``n`` inside the block (None: unchanged), then restored."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_matrix(matrix_path, only='', force=False, out_dir=None, dry_run=False, shard=None):
    """Run every selected cell not already in the results; returns the list of failures.

    ``dry_run``: print the plan (cells, datasets, whether each needs training) and stop.
    ``shard``: ``'K/N'``, run only that 1/N of the cells (:func:`~.matrix.shard_cells`); the shards
    of a matrix may run at once, on several machines sharing ``out_dir``: they append to
    one results.csv under its lock, and the first to start makes the prerequisites."""
    shard = parse_shard(shard)
    matrix = C.read_config_file(matrix_path)
    check_matrix(matrix)
    out_dir = Path(out_dir or matrix.out_dir)
    csv_path = out_dir / 'results.csv'
    only = parse_only(only)
    if not dry_run:
        plan_cells(matrix, csv_path, only, force, shard)  # a --only matching no cell fails now
        results.check_writable(csv_path)
    if dry_run:
        plan = plan_cells(matrix, csv_path, only, force, shard)
        if shard:
            print(f'shard {shard[0]}/{shard[1]}:')
        for cfg, todo in plan:
            if not needs_training(cfg):
                state = 'evaluated as built'
            else:
                cached = is_cached(cfg, 'head.pt', say=False)
                state = f'{"trained" if cached else "to train"} in {cfg.work_dir}'
            print(f'{cfg.cell_name}: {", ".join(todo)} ({state})')
        print(f'{sum(len(t) for _, t in plan)} evaluation(s) planned; results: {csv_path}')
        return []
    failures = []
    with Trainings(matrix.get('train_workers', 1)) as trainings:
        # One process makes them; others (shards) wait, then find them cached.
        with results.file_lock(out_dir / '.prerequisites.lock', waiting='waiting for another '
                               'run of this matrix to make the data and pretrained weights'):
            ensure_prerequisites(matrix, trainings)
        plan = plan_cells(matrix, csv_path, only, force, shard)
        if not plan:
            print(f'nothing to do: every selected cell is in {csv_path} (use --force to rerun)')
        # Cells with their weights ready are evaluated here while the others train.
        to_train, ready, training = [], deque(), {}
        for cfg, todo in plan:
            if needs_training(cfg) and not is_cached(cfg, 'head.pt'):
                to_train.append((cfg, todo))
            else:
                ready.append((cfg, todo, trained_time(cfg)))
        progress = Progress(sum(len(t) for _, t in plan), len(to_train))
        for cfg, todo in to_train:
            progress.say(f'{cfg.method.type}: training ({cfg.work_dir})')
            training[trainings.submit(cfg, len(to_train))] = (cfg, todo)
        while ready or training:
            finished = [f for f in training if f.done()]
            if not ready and not finished:
                finished = wait(training, return_when=FIRST_COMPLETED).done
            for future in finished:
                cfg, todo = training.pop(future)
                progress.trained()
                if future.exception() is None:
                    progress.say(f'{cfg.method.type}: trained in {future.result():.0f} s')
                    ready.append((cfg, todo, future.result()))
                else:  # one failing cell is reported, the rest go on
                    failures += [(cfg.method.type, d, future.exception()) for d in todo]
                    for _ in todo:
                        progress.evaluated()
                    progress.say(f'{cfg.method.type}: FAILED to train: {future.exception()!r}')
            if ready:
                # Beside running trainings, one thread: more would contend for the cores.
                with torch_threads(1 if training else None):
                    failures += evaluate_cell(matrix, out_dir, *ready.popleft(), progress)
    for method, dataset, e in failures:
        print(f'failed: {method} x {dataset}: {e}')
    print(f'results: {csv_path} ({len(results.read_rows(csv_path))} rows)')
    return failures


def evaluate_cell(matrix, out_dir, cfg, todo, train_s, progress):
    """Evaluate one cell on its datasets, a result row each; returns the failures."""
    method, csv_path = cfg.method.type, out_dir / 'results.csv'
    checkpoint = Path(cfg.work_dir) / 'head.pt' if needs_training(cfg) else None
    try:
        head = load_head(cfg, checkpoint)
        if checkpoint is None:
            check_untrained(cfg, head)
    except Exception as e:
        for _ in todo:
            progress.evaluated()
        progress.say(f'{method}: FAILED to build: {e!r}')
        logging.getLogger(__name__).debug(traceback.format_exc())
        return [(method, d, e) for d in todo]
    failures = []
    for dataset in todo:
        start = time.perf_counter()
        try:
            row = evaluate_row(cfg, dataset, out_dir / 'eval' / cfg.cell_name / dataset,
                               head=head, results_csv=csv_path,
                               extra=dict(train_time_s=train_s),
                               save_first=matrix.get('save_predictions', 0),
                               data_root=matrix.get('data_root'))
            progress.evaluated(time.perf_counter() - start)
            progress.say(f'{method} x {dataset}: mIoU {row["mIoU"]:.2f}')
        except Exception as e:
            failures.append((method, dataset, e))
            progress.evaluated(time.perf_counter() - start)
            progress.say(f'{method} x {dataset}: FAILED: {e!r}')
            if not isinstance(e, (KeyError, OSError, ValueError)):   # not bad input: a bug
                traceback.print_exc()
    return failures
