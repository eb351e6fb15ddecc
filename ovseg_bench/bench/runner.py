"""The benchmark matrix runner behind ``ovseg-bench bench``.

A matrix config (``configs/bench/*.py``, keys in :data:`MATRIX_KEYS`) names methods x
backbones x training sets x datasets x seeds and the protocol. A trainable cell is trained once
per (config, backbone, training set, seed) -- a finished run is reused while its config and
starting weights are unchanged -- then evaluated on every dataset, each result written as one
row at once (atomically), so an interrupted run keeps every finished row and a rerun resumes.

Trainings run in ``train_workers`` worker processes (each its share of the CPU threads), while
this process evaluates every cell whose weights are ready: on a 2-core machine two small
trainings side by side get ~1.3x the throughput of one using both cores.

``--shard K/N`` runs a deterministic 1/N of the matrix (:func:`shard_cells`), so that N
processes, e.g. the tasks of a Slurm job array, run it together into one results.csv.
"""
import contextlib
import copy
import fnmatch
import glob
import hashlib
import itertools
import logging
import multiprocessing
import os
import time
import traceback
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import torch
from mmengine.config import Config

from .. import config as C
from .. import console
from ..fileio import write_text_atomic
from ..protocol import Protocol
from ..engine.evaluate import load_head
from ..registry import (METHODS, PLUGIN_FILES, check_name, freeze_imports, load_plugin_file,
                        load_plugins, method_info, names)
from . import results
from .record import evaluate_row

# Every key a matrix config may hold, with what it is for.
MATRIX_KEYS = {
    'methods': "registered method names, or 'all' (plugins included)",
    'exclude': 'method names left out of `all`',
    'method_configs': "glob(s) of method configs; every match is a cell (per method type); "
                      "absent: each method's default config (its MethodInfo.config)",
    'plugin_base': 'configs merged for a plugin method that has no config of its own',
    'backbones': "backbone dicts (None: each config's own)",
    'train_sets': "train_data dicts for trainable methods (None: each config's own)",
    'train': 'training keys set in every trainable cell (e.g. a shorter schedule)',
    'datasets': "evaluation datasets (None: each config's own `datasets`)",
    'seeds': 'seeds; each seed of a trainable method is its own training run',
    'protocol': 'protocol keys set in every cell',
    'data_root': "the datasets' root folder, if not the dataset configs' own",
    'synthetic': 'a synthetic world written first if absent (folder or make_synthetic kwargs)',
    'pretrain': 'configs trained first (once; cached) that the cells start from',
    'train_workers': 'trainings run side by side, each in its own process',
    'save_predictions': 'predictions saved per cell for the qualitative grids',
    'out_dir': 'where results.csv, per_class.csv, eval/ and the leaderboard go',
}


def check_matrix(matrix):
    """Keys, and every method and dataset the matrix names, checked before anything runs."""
    from ..data.catalog import load_dataset_cfg
    C.check_keys({k: v for k, v in matrix.items() if not k.startswith('_')}, MATRIX_KEYS, '')
    for key in ('methods', 'datasets', 'seeds'):
        if key not in matrix:
            raise KeyError(f'matrix {matrix.filename or ""} has no {key!r} ({MATRIX_KEYS[key]})')
    load_plugins()
    named = [] if matrix.methods == 'all' else list(matrix.methods)
    for method in named + list(matrix.get('exclude', [])):
        check_name(METHODS, method, f'method (in matrix {matrix.filename or ""})')
    for dataset in matrix.datasets or ():
        load_dataset_cfg(dataset)
    Protocol.from_dict(matrix.get('protocol'))


def method_configs(patterns):
    """{method type: [config paths]} for every config matching ``patterns`` (a glob or list)."""
    found = {}
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        for path in sorted(glob.glob(pattern)):
            method = C.read_config_file(path).get('method', {}).get('type')
            if method and path not in found.get(method, []):
                found.setdefault(method, []).append(path)
    return found


def plugin_config(paths, method, matrix_name):
    """A config for a plugin that brought none: ``paths`` merged in order, its method type."""
    cfg = Config()
    for path in paths:
        cfg.merge_from_dict(C.read_config_file(path).to_dict())
    cfg.method = dict(type=method)
    cfg.work_dir = f'work_dirs/{method.lower()}_{matrix_name}'
    return cfg


def _variant(cfg, key, value):
    """Set ``cfg[key] = value`` and return a work_dir tag when that changes the config."""
    if value is None or cfg.get(key) == value:
        return ''
    cfg[key] = copy.deepcopy(value)
    kind = value.get('model') or value.get('name') or value.get('type') or key
    return f'_{Path(str(kind)).stem}-{results.config_hash(value)[:6]}'


def cell_configs(matrix):
    """One config per (method config, backbone, training set, seed), as the matrix asks.

    A cell that departs from its config (another backbone, training set, schedule or seed)
    gets its own work_dir, so that no two training runs share one."""
    load_plugins()
    wanted = names(METHODS) if matrix.methods == 'all' else list(matrix.methods)
    known = (method_configs(matrix.method_configs) if matrix.get('method_configs') else
             {m: [method_info(m).config] for m in wanted if method_info(m).config})
    out = []
    for method in wanted:
        if method in matrix.get('exclude', []):
            continue
        bases = ([C.read_config_file(p) for p in known[method]] if method in known
                 else [plugin_config(matrix.plugin_base, method,
                                     Path(matrix.filename or 'bench').stem)])
        trainable = METHODS.get(method).trainable
        train_sets = (matrix.get('train_sets') or [None]) if trainable else [None]
        for base, backbone, train_set in itertools.product(
                bases, matrix.get('backbones') or [None], train_sets):
            trains = trainable and bool(train_set or base.get('train_data'))
            for seed in matrix.seeds if trains else matrix.seeds[:1]:
                cfg = copy.deepcopy(base)
                tag = _variant(cfg, 'backbone', backbone)
                if trains:
                    tag += _variant(cfg, 'train_data', train_set)
                    if matrix.get('train'):
                        train = {**cfg.get('train', {}), **matrix.train}
                        tag += _variant(cfg, 'train', train)
                    # Another seed is another training run (the config's own seed keeps its
                    # work_dir, so e.g. the pretraining run is reused as the CLIP cell).
                    if C.config_seed(cfg) != seed:
                        cfg.setdefault('train', {})['seed'] = seed
                        tag += f'_s{seed}'
                if tag:
                    cfg.work_dir = f'{cfg.get("work_dir", f"work_dirs/{method.lower()}")}{tag}'
                model = cfg.backbone.get('model') or Path(cfg.backbone.get('path', '')).name
                stem = f'-{Path(base.filename).stem}' if len(bases) > 1 else ''
                cfg.cell_name = f'{method}-{model}-s{seed}{stem}{tag}'
                if 'protocol' in matrix:
                    cfg.protocol = {**cfg.get('protocol', {}), **matrix.protocol}
                cfg.seed = seed
                out.append(cfg)
    return out


def cell_datasets(matrix, cfg):
    """The matrix's datasets, or (``datasets = None``) the cell config's own."""
    datasets = matrix.datasets if matrix.datasets is not None else cfg.get('datasets')
    if not datasets:
        raise KeyError(f'{cfg.method.type}: the matrix has datasets=None and its config '
                       f'{cfg.filename or ""} names no `datasets`')
    return list(datasets)


def parse_only(text):
    """``method=PACL,dataset=synth_voc`` -> {'method': ['PACL'], 'dataset': ['synth_voc']}."""
    only = {}
    for part in filter(None, (text or '').split(',')):
        key, _, value = part.partition('=')
        if key not in results.KEY_FIELDS:
            raise KeyError(f'--only key {key!r} is not one of {", ".join(results.KEY_FIELDS)}.'
                           f'{C.did_you_mean(key, results.KEY_FIELDS)}')
        only.setdefault(key, []).append(value)
    return only


def check_only(only, keys):
    """``KeyError`` naming the valid values when a ``--only`` pattern matches no cell of the
    matrix (``keys``: the key dicts of all its cells), instead of "nothing to do"."""
    for key, patterns in only.items():
        values = sorted({str(k[key]) for k in keys})
        for pattern in patterns:
            if not any(fnmatch.fnmatch(v, pattern) for v in values):
                raise KeyError(f'--only {key}={pattern} matches no cell of the matrix.'
                               f'{C.did_you_mean(pattern, values)} Valid {key} values: '
                               f'{", ".join(values)}')


def selected(key, only):
    return all(any(fnmatch.fnmatch(str(key[k]), p) for p in pats) for k, pats in only.items())


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


# What a training run depends on; protocol, datasets and post-training checks are not part of
# it, nor are the train keys that cannot change the weights.
TRAINING_KEYS = ('backbone', 'method', 'train_data', 'train')
NOT_TRAINING = ('cpu_threads', 'log_interval')


def model_config_file(backbone):
    """The JSON file that defines ``backbone['model']`` when it is the project's or a path,
    else None (a library model, fixed by the installed version)."""
    model = str(backbone.get('model', ''))
    path = Path(model) if model.endswith('.json') else C.MODEL_CONFIG_DIR / f'{model}.json'
    return path if model and path.is_file() else None


def fingerprint(cfg):
    """A hash of the training part of ``cfg``, of the model config file it names and of the
    bytes of the weights it starts from, so that a cached run is reused only for the same
    config on the same architecture and pretrained backbone."""
    part = {k: copy.deepcopy(cfg[k]) for k in TRAINING_KEYS if k in cfg}
    for key in NOT_TRAINING:
        part.get('train', {}).pop(key, None)
    digest = hashlib.sha1(results.config_hash(part).encode())
    backbone = cfg.get('backbone', {})
    for path in (model_config_file(backbone), backbone.get('pretrained')):
        if path and Path(path).is_file():
            with open(path, 'rb') as f:
                digest.update(hashlib.file_digest(f, 'sha1').digest())
    return digest.hexdigest()[:12]


def is_cached(cfg, weights, say=True):
    """Whether ``cfg.work_dir`` holds ``weights`` from a run with ``cfg``'s fingerprint."""
    work_dir = Path(cfg.work_dir)
    if not (work_dir / weights).is_file():
        return False
    stamp = work_dir / 'fingerprint.txt'
    if stamp.is_file() and stamp.read_text().strip() == fingerprint(cfg):
        return True
    if say:
        why = ('comes from another config or backbone' if stamp.is_file() else
               'has no fingerprint.txt (not trained by a bench, or by one older than '
               'fingerprints written at the start)')
        print(f'{work_dir / weights} {why}: retraining', flush=True)
    return False


# A training run's outputs: removed before a fresh run of another fingerprint in the same
# work_dir, so that neither its weights nor its checkpoints pass for the new run's.
RUN_OUTPUTS = ('head.pt', 'backbone.pt', 'last_checkpoint', 'iter_*.pth', 'train_time_s.txt')


def start_or_resume(cfg):
    """Stamp ``cfg.work_dir`` with ``cfg``'s fingerprint before training; returns whether an
    interrupted run of the same fingerprint is there to resume (else a fresh run starts, with
    any other run's outputs removed first)."""
    from ..engine.trainer import resumable_checkpoint
    work_dir = Path(cfg.work_dir)
    stamp_file, stamp = work_dir / 'fingerprint.txt', fingerprint(cfg)
    same = stamp_file.is_file() and stamp_file.read_text().strip() == stamp
    resume_from = resumable_checkpoint(work_dir) if same else None
    if resume_from:
        print(f'resuming the interrupted training in {work_dir} from {resume_from}', flush=True)
        return True
    work_dir.mkdir(parents=True, exist_ok=True)
    for pattern in RUN_OUTPUTS:
        for path in work_dir.glob(pattern):
            path.unlink()
    write_text_atomic(stamp_file, stamp)
    return False


def train_and_stamp(cfg, threads=None):
    """Train ``cfg`` (with ``threads`` CPU threads if given), resuming an interrupted run of
    the same fingerprint (:func:`start_or_resume`); record its wall time in its work_dir;
    returns seconds (of this process's part, for a resumed run)."""
    from ..engine.trainer import train
    resume = start_or_resume(cfg)
    if threads:
        cfg = copy.deepcopy(cfg)
        cfg.setdefault('train', {})['cpu_threads'] = threads
    start = time.perf_counter()
    train(cfg, resume=resume)
    seconds = round(time.perf_counter() - start, 1)
    write_text_atomic(Path(cfg.work_dir) / 'train_time_s.txt', str(seconds))
    return seconds


def needs_training(cfg):
    """A trainable method is trained when its config names training data; without any (CLIP
    on given weights) it is evaluated as built, which :func:`check_untrained` guards."""
    return METHODS.get(cfg.method.type).trainable and bool(cfg.get('train_data'))


def check_untrained(cfg, head):
    """Refuse to evaluate a trainable head with parameters of its own that nothing trained."""
    own = [n for n, _ in head.named_parameters() if not n.startswith('backbone.')]
    if METHODS.get(cfg.method.type).trainable and own:
        raise ValueError(f'{cfg.method.type} has parameters of its own ({own[0]}, ...) but its '
                         f'config {cfg.filename or ""} names no train_data to train them on')


def trained_time(cfg):
    """Seconds the cell's cached training run took ('' when it has none)."""
    timing = Path(cfg.work_dir) / 'train_time_s.txt' if needs_training(cfg) else None
    return float(timing.read_text()) if timing and timing.is_file() else ''


def _worker_init(plugin_files, console_channel):
    """A training worker: same plugins as the parent, its console, and gone when the parent
    dies."""
    console.attach(console_channel)
    try:  # Linux: a killed runner takes its trainings with it (no orphans writing work_dirs)
        import ctypes
        import signal
        ctypes.CDLL('libc.so.6').prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    load_plugins()
    for path in plugin_files:
        load_plugin_file(path)
    freeze_imports()


def _train_job(cfg, threads, name):
    with console.run_named(name):
        return train_and_stamp(cfg, threads)


class Trainings:
    """Training runs in ``workers`` processes (started on first use), ``threads`` each."""

    def __init__(self, workers=1):
        self.workers = max(1, int(workers))
        self.cpus = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') \
            else os.cpu_count() or 1
        self.pool = None

    def _pool(self):
        if self.pool is None:
            self.pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context('spawn'),
                initializer=_worker_init, initargs=(list(PLUGIN_FILES), console.channel()))
        return self.pool

    def submit(self, cfg, side_by_side=1):
        """Start training ``cfg``; ``side_by_side``: how many run at once (shares the CPUs)."""
        threads = max(1, self.cpus // max(1, min(self.workers, side_by_side)))
        return self._pool().submit(_train_job, cfg, threads, Path(cfg.work_dir).name)

    def warm(self):
        """Start the workers not started yet: each imports the libraries (~10 s of a core),
        better spent beside a pretraining than when the method trainings are waiting.
        Returns the futures of the no-op jobs that start them (each gives its worker's pid)."""
        # A pool with no idle worker starts another one for each job, up to ``workers``.
        return [self._pool().submit(os.getpid) for _ in range(self.workers)]

    def close(self):
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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


def parse_shard(text):
    """``'K/N'`` -> ``(K, N)`` with 1 <= K <= N; None for None."""
    if text is None:
        return None
    k, _, n = str(text).partition('/')
    if not (k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise ValueError(f'--shard must be K/N with 1 <= K <= N, e.g. 2/4 for the second of '
                         f'four shards; got {text!r}')
    return int(k), int(n)


def shard_cells(cells, shard):
    """The cell configs of ``shard`` ``(K, N)``: a deterministic 1/N of them.

    A training run is shared by every cell config that trains in its work_dir (each of its
    datasets is a cell), so the unit dealt out is the run: all its cells go to one shard,
    and no run is trained by two shards. Runs are dealt round-robin in matrix order, those
    that train first, so that every shard gets its share of the trainings."""
    if shard is None:
        return cells
    k, n = shard
    units = {}
    for cfg in sorted(cells, key=lambda c: not needs_training(c)):    # stable
        units.setdefault(cfg.work_dir if needs_training(cfg) else cfg.cell_name, []).append(cfg)
    mine = {id(c) for i, unit in enumerate(units.values()) if i % n == k - 1 for c in unit}
    return [c for c in cells if id(c) in mine]


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
    ``shard``: ``'K/N'``, run only that 1/N of the cells (:func:`shard_cells`); the shards
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
