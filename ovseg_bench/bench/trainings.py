"""The training runs of a matrix: what a run depends on (its fingerprint), whether a finished
run can be reused, training and stamping a run, and the worker processes that train runs side
by side (:class:`Trainings`)."""
import copy
import hashlib
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


from .. import config as C
from .. import console
from ..fileio import write_text_atomic
from ..registry import (METHODS, PLUGIN_FILES, freeze_imports, load_plugin_file, load_plugins,
                        method_info)
from . import results


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
    """A hash of the training part of ``cfg``, of the model config file it names, of the
    bytes of the weights it starts from and of the method's source file, so that a cached run
    is reused only for the same config and method code on the same architecture and
    pretrained backbone."""
    part = {k: copy.deepcopy(cfg[k]) for k in TRAINING_KEYS if k in cfg}
    for key in NOT_TRAINING:
        part.get('train', {}).pop(key, None)
    digest = hashlib.sha1(results.config_hash(part).encode())
    method = cfg.get('method', {}).get('type')
    if method in METHODS:
        digest.update(method_info(method).source_sha.encode())
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
