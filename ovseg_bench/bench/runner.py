"""The benchmark matrix runner behind ``ovseg-bench bench``.

A matrix config (``configs/bench/*.py``) names methods x backbones x datasets x seeds and the
protocol. Each cell is trained once per (method, backbone, seed) when the method is trainable
(a finished training run is reused while its config and starting weights are unchanged),
evaluated on every dataset, and written as one result row at once (atomically), so an interrupted run keeps every finished row and a rerun resumes.
"""
import copy
import fnmatch
import glob
import hashlib
import logging
import time
import traceback
from pathlib import Path

from mmengine.config import Config

from ..registry import METHODS, load_plugins, names
from . import results


def method_configs(pattern):
    """{method type: config path} for every config matching ``pattern`` (first one wins)."""
    found = {}
    for path in sorted(glob.glob(pattern)):
        method = Config.fromfile(path).get('method', {}).get('type')
        if method:
            found.setdefault(method, path)
    return found


def plugin_config(paths, method):
    """A config for a plugin that brought none: ``paths`` merged in order, its method type."""
    cfg = Config()
    for path in paths:
        cfg.merge_from_dict(Config.fromfile(path).to_dict())
    cfg.method = dict(type=method)
    cfg.work_dir = f'work_dirs/{method.lower()}_tiny_synth'
    return cfg


def cell_configs(matrix):
    """One evaluation config per (method, backbone, seed), as the matrix asks."""
    load_plugins()
    wanted = names(METHODS) if matrix.methods == 'all' else list(matrix.methods)
    known = method_configs(matrix.method_configs)
    out = []
    for method in wanted:
        if method in matrix.get('exclude', []):
            continue
        base = Config.fromfile(known[method]) if method in known else plugin_config(
            matrix.plugin_base, method)
        for backbone in matrix.get('backbones') or [None]:
            trainable = METHODS.get(method).trainable
            for seed in matrix.seeds if trainable else matrix.seeds[:1]:
                cfg = copy.deepcopy(base)
                if backbone is not None:
                    cfg.backbone = dict(backbone)
                if 'protocol' in matrix:
                    cfg.protocol = {**cfg.get('protocol', {}), **matrix.protocol}
                cfg.seed = seed
                train = cfg.setdefault('train', {})
                if trainable and train.get('seed', 0) != seed:
                    # Another seed is another training run (the config's own seed keeps its
                    # work_dir, so e.g. the pretraining run is reused as the CLIP cell).
                    train['seed'] = seed
                    cfg.work_dir = f'{cfg.get("work_dir", f"work_dirs/{method.lower()}")}_s{seed}'
                out.append(cfg)
    return out


def parse_only(text):
    """``method=PACL,dataset=synth_voc`` -> {'method': ['PACL'], 'dataset': ['synth_voc']}."""
    only = {}
    for part in filter(None, (text or '').split(',')):
        key, _, value = part.partition('=')
        if key not in results.KEY_FIELDS:
            raise KeyError(f'--only key {key!r} is not one of {", ".join(results.KEY_FIELDS)}')
        only.setdefault(key, []).append(value)
    return only


def selected(key, only):
    return all(any(fnmatch.fnmatch(str(key[k]), p) for p in pats) for k, pats in only.items())


class Progress:
    """One line per event: which cell, how far, elapsed and time left. The estimate covers
    the evaluations (timed apart from training) and names the training runs still ahead,
    whose own progress and ETA are in the trainer's log lines."""

    def __init__(self, total, trainings=0):
        self.total, self.done, self.trainings = total, 0, trainings
        self.start, self.train_s = time.perf_counter(), 0.0

    def trained(self, seconds):
        self.trainings -= 1
        self.train_s += seconds

    def say(self, text):
        elapsed = time.perf_counter() - self.start
        if self.done:
            left = (elapsed - self.train_s) / self.done * (self.total - self.done)
            eta = f'{left / 60:.1f} min of evaluation left'
        else:
            eta = 'estimating'
        if self.trainings:
            eta += f' + {self.trainings} training run(s)'
        print(f'[{self.done}/{self.total} | {elapsed / 60:.1f} min | {eta}] {text}', flush=True)


def ensure_prerequisites(matrix):
    """Synthetic data and pretrained backbones the matrix stands on, made once and cached."""
    if matrix.get('synthetic'):
        from ..data.synthetic import make_synthetic
        spec = matrix.synthetic  # an output folder, or make_synthetic's keyword arguments
        make_synthetic(**spec) if isinstance(spec, dict) else make_synthetic(spec)
    for cfg_path in matrix.get('pretrain', []):
        cfg = Config.fromfile(cfg_path)
        if not is_cached(cfg, 'backbone.pt'):
            print(f'pretraining {cfg_path} (once; cached in {cfg.work_dir})', flush=True)
            train_and_stamp(cfg)


# What a training run depends on; protocol, datasets and post-training checks are not part of it.
TRAINING_KEYS = ('backbone', 'method', 'train_data', 'train')


def fingerprint(cfg):
    """A hash of the training part of ``cfg`` and of the bytes of the weights it starts from,
    so that a cached run is reused only for the same config on the same pretrained backbone."""
    digest = hashlib.sha1(results.config_hash(
        {k: cfg[k] for k in TRAINING_KEYS if k in cfg}).encode())
    pretrained = cfg.get('backbone', {}).get('pretrained')
    if pretrained and Path(pretrained).is_file():
        with open(pretrained, 'rb') as f:
            digest.update(hashlib.file_digest(f, 'sha1').digest())
    return digest.hexdigest()[:12]


def is_cached(cfg, weights):
    """Whether ``cfg.work_dir`` holds ``weights`` from a run with ``cfg``'s fingerprint."""
    work_dir = Path(cfg.work_dir)
    if not (work_dir / weights).is_file():
        return False
    stamp = work_dir / 'fingerprint.txt'
    if stamp.is_file() and stamp.read_text().strip() == fingerprint(cfg):
        return True
    print(f'{work_dir / weights} comes from another config or backbone: retraining', flush=True)
    return False


def train_and_stamp(cfg):
    """Train ``cfg``; record its fingerprint and wall time in its work_dir; returns seconds."""
    from ..engine.trainer import train
    start = time.perf_counter()
    train(cfg)
    seconds = round(time.perf_counter() - start, 1)
    (Path(cfg.work_dir) / 'train_time_s.txt').write_text(str(seconds))
    (Path(cfg.work_dir) / 'fingerprint.txt').write_text(fingerprint(cfg))
    return seconds


def ensure_trained(cfg):
    """Train ``cfg`` unless its work_dir holds its final head; returns (path, seconds)."""
    head_path = Path(cfg.work_dir) / 'head.pt'
    if is_cached(cfg, 'head.pt'):
        timing = Path(cfg.work_dir) / 'train_time_s.txt'
        return head_path, float(timing.read_text()) if timing.is_file() else ''
    return head_path, train_and_stamp(cfg)


def run_matrix(matrix_path, only='', force=False, out_dir=None):
    """Run every selected cell not already in the results; returns the list of failures."""
    from ..engine.evaluate import evaluate, load_head
    matrix = Config.fromfile(matrix_path)
    out_dir = Path(out_dir or matrix.out_dir)
    csv_path = out_dir / 'results.csv'
    only = parse_only(only)
    ensure_prerequisites(matrix)
    # A finished row counts only if it came from the same cell config (a changed config or
    # protocol reruns the cell and replaces the row).
    done = {} if force else {results.row_key(r): r.get('config_hash')
                             for r in results.read_rows(csv_path)}
    plan = []
    for cfg in cell_configs(matrix):
        todo = []
        cfg_hash = results.config_hash(cfg.to_dict())
        for dataset in matrix.datasets:
            key = results.cell_key(cfg, dataset)
            if selected(key, only) and done.get(results.row_key(key)) != cfg_hash:
                todo.append(dataset)
        if todo:
            plan.append((cfg, todo))
    progress = Progress(sum(len(t) for _, t in plan),
                        sum(METHODS.get(cfg.method.type).trainable for cfg, _ in plan))
    if not plan:
        print(f'nothing to do: every selected cell is in {csv_path} (use --force to rerun)')
    failures = []
    for cfg, todo in plan:
        method = cfg.method.type
        try:
            checkpoint, train_s = None, ''
            if METHODS.get(method).trainable:
                progress.say(f'{method}: training ({cfg.work_dir})')
                start = time.perf_counter()
                try:
                    checkpoint, train_s = ensure_trained(cfg)
                finally:
                    progress.trained(time.perf_counter() - start)
            head = load_head(cfg, checkpoint)
        except Exception as e:  # one failing cell is reported, the rest go on
            failures += [(method, d, e) for d in todo]
            progress.done += len(todo)
            progress.say(f'{method}: FAILED to build/train: {e!r}')
            logging.getLogger(__name__).debug(traceback.format_exc())
            continue
        for dataset in todo:
            progress.say(f'{method} x {dataset}: evaluating')
            try:
                key = results.cell_key(cfg, dataset)
                cell_dir = out_dir / 'eval' / f'{method}-{key["backbone"]}-s{key["seed"]}'
                row = evaluate(cfg, dataset, cell_dir / dataset, head=head,
                               results_csv=csv_path, extra=dict(train_time_s=train_s),
                               save_first=matrix.get('save_predictions', 0),
                               data_root=matrix.get('data_root'))
                progress.done += 1
                progress.say(f'{method} x {dataset}: mIoU {row["mIoU"]:.2f}')
            except Exception as e:
                failures.append((method, dataset, e))
                progress.done += 1
                progress.say(f'{method} x {dataset}: FAILED: {e!r}')
                traceback.print_exc()
    for method, dataset, e in failures:
        print(f'failed: {method} x {dataset}: {e}')
    print(f'results: {csv_path} ({len(results.read_rows(csv_path))} rows)')
    return failures
