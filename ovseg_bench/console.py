"""What a run prints: one line per stage, a progress bar per running training or evaluation,
and the warnings that matter, once; every run's full mmengine log stays in its work dir.

Bars are live (tqdm) on a terminal; otherwise (CI logs, pipes) each one becomes a plain line
every :data:`PLAIN_INTERVAL_S` seconds. The bench's training workers (other processes) send
their bars and lines to the parent through :func:`channel`, which draws them beside its own,
each line prefixed by the run's name. ``verbose`` (``ovseg-bench -v``) streams the mmengine
logs (environment, config, every logged iteration) as well.
"""
import contextlib
import io
import itertools
import logging
import multiprocessing
import os
import sys
import threading
import time
import warnings
from pathlib import Path

from mmengine.dist import get_world_size, is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import Runner
from tqdm import tqdm

# Seconds between the plain lines of a bar when the console is not a terminal.
PLAIN_INTERVAL_S = 30.0
# Seconds between the updates a worker sends of one bar (the parent redraws at most this often).
WORKER_UPDATE_S = 0.5
# Libraries whose own log records and warnings go to the log file only (unless verbose):
# the runner framework's bookkeeping, not news about the run.
FRAMEWORK = ('mmengine', 'mmseg', 'mmcv')
_FRAMEWORK_DIRS = tuple(str(Path(__import__(m).__file__).parent) + os.sep for m in FRAMEWORK)
VERBOSE_ENV = 'OVSEG_VERBOSE'    # inherited by worker processes

_channel = None          # this process's link to the parent's console (a worker), or None
_prefix = ''             # a worker's run name, put before each of its lines
_ids = itertools.count()


def verbose():
    return os.environ.get(VERBOSE_ENV) == '1'


def live():
    """Whether bars are redrawn in place (stdout and stderr a terminal) or printed as periodic
    lines (a log file, a pipe such as ``| tee``)."""
    return sys.stdout.isatty() and sys.stderr.isatty() and os.environ.get('TERM') != 'dumb'


# ----------------------------------------------------------------------------- lines
def line(text):
    """Print one line, above any live bars (from a worker: through the parent's console)."""
    if _channel is not None:
        _channel.put(('line', _prefix + text))
    else:
        tqdm.write(text, file=sys.stdout)
        sys.stdout.flush()


class _LineStream(io.TextIOBase):
    """A text stream that hands every complete line to :func:`line`."""

    def __init__(self):
        self.pending = ''

    def write(self, text):
        self.pending += text
        *lines, self.pending = self.pending.split('\n')
        for text_line in lines:
            line(text_line)
        return len(text)

    def flush(self):
        pass


_said = set()         # the warnings and errors already shown (a parent's: its workers' too)


def first_time(message):
    """Whether ``message`` (``LEVEL: text``) is new here; it counts as shown from now on."""
    new = message not in _said
    _said.add(message)
    return new


class _Shown(logging.Filter):
    """Which log records reach the console: all when verbose; else errors, and this project's
    (or a plugin's) warnings, each message once."""

    def filter(self, record):
        if verbose():
            return True
        if record.levelno < logging.WARNING:
            return False
        if record.levelno < logging.ERROR and record.pathname.startswith(_FRAMEWORK_DIRS):
            return False
        return first_time(f'{record.levelname}: {record.getMessage()}')


_SHOWN = _Shown()
_PLAIN = logging.Formatter('%(levelname)s: %(message)s')


def _route(handler):
    """Send ``handler`` (a console handler) through :func:`line`, filtered by :class:`_Shown`;
    quiet, it says only ``LEVEL: message``."""
    handler.setStream(_LineStream())
    handler.addFilter(_SHOWN)
    if not verbose():
        handler.setFormatter(_PLAIN)


def configure(verbose_=False):
    """Set this process's console up (the CLI calls it first): Python logging and library
    warnings through :class:`_Shown`; ``verbose_``: stream the mmengine logs too."""
    if verbose_:
        os.environ[VERBOSE_ENV] = '1'
    else:
        os.environ.pop(VERBOSE_ENV, None)
    root = logging.getLogger()
    for h in list(root.handlers):      # a library's basicConfig, or an earlier configure
        if type(h) is logging.StreamHandler and (
                h.stream in (sys.stdout, sys.stderr) or _SHOWN in h.filters):
            root.removeHandler(h)
    handler = logging.StreamHandler()
    _route(handler)
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose() else logging.WARNING)
    if not verbose():
        for module in FRAMEWORK:
            warnings.filterwarnings('ignore', module=rf'{module}(\.|$)')


class ConsoleRunner(Runner):
    """mmengine's ``Runner`` whose logger writes the full log to its file (as mmengine does)
    and only what :class:`_Shown` lets through to the console."""

    def build_logger(self, *args, **kwargs):
        logger = super().build_logger(*args, **kwargs)
        for h in logger.handlers:
            if type(h) is logging.StreamHandler and _SHOWN not in h.filters:
                _route(h)
        return logger

    def train(self):
        try:
            return super().train()
        finally:
            self._close_bars()

    def test(self):
        try:
            return super().test()
        finally:
            self._close_bars()

    def _close_bars(self):
        """A run that raised never reaches ``after_train``/``after_test``: its bars close
        here, so no bar of a failed run stays on the console."""
        for hook in self.hooks:
            if isinstance(hook, ProgressHook):
                hook.close_bar()


# ------------------------------------------------------------------------------ bars
class _Bars:
    """The bars this (the parent) process draws: its own and its workers'."""

    def __init__(self):
        self.lock = threading.RLock()
        self.bars = {}

    def apply(self, event):
        kind, key, *args = event
        with self.lock:
            if kind == 'open':
                self._open(key, *args)
            elif kind == 'update' and key in self.bars:
                self._update(key, *args)
            elif kind == 'close':
                bar = self.bars.pop(key, None)
                if isinstance(bar, tqdm):
                    bar.close()
            elif kind == 'close_all':
                for k in [k for k in self.bars if k.startswith(key)]:
                    self.apply(('close', k))

    def _open(self, key, desc, total, unit, initial):
        if live():
            self.bars[key] = tqdm(total=total, desc=desc, unit=unit, initial=initial,
                                  leave=False, dynamic_ncols=True, smoothing=0.1)
        else:
            self.bars[key] = dict(desc=desc, total=total, unit=unit, initial=initial, n=initial,
                                  start=time.perf_counter(), last=time.perf_counter())

    def _update(self, key, n, postfix):
        bar = self.bars[key]
        if isinstance(bar, tqdm):
            if postfix:
                bar.set_postfix_str(postfix, refresh=False)
            bar.update(n - bar.n)
            return
        now = time.perf_counter()
        bar['n'] = n
        if now - bar['last'] >= PLAIN_INTERVAL_S and n < (bar['total'] or n + 1):
            bar['last'] = now
            text = tqdm.format_meter(
                n, bar['total'], now - bar['start'], prefix=bar['desc'], unit=bar['unit'],
                initial=bar['initial'], postfix=postfix,
                bar_format='{desc}: {n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}, '
                           '{rate_fmt}{postfix}]')
            line(text)


_BARS = _Bars()


def _send(event):
    if _channel is not None:
        _channel.put(event)
    else:
        _BARS.apply(event)


class Bar:
    """One progress bar: ``update(n)`` with the absolute count, ``close()`` when done."""

    def __init__(self, desc, total, unit='it', initial=0):
        self.key = f'{os.getpid()}:{next(_ids)}'
        self.last = 0.0
        _send(('open', self.key, _prefix + desc, total, unit, initial))

    def update(self, n, postfix=None):
        now = time.perf_counter()
        if _channel is not None and now - self.last < WORKER_UPDATE_S:
            return                   # a worker sends a few updates a second, not every step
        self.last = now
        _send(('update', self.key, n, postfix))

    def close(self):
        _send(('close', self.key))


# --------------------------------------------------------------------------- workers
_parent_queue = None


def channel():
    """The queue through which worker processes (given it at their start, :func:`attach`)
    print on this process's console; created with the thread that draws what they send."""
    global _parent_queue
    if _parent_queue is None:
        _parent_queue = multiprocessing.get_context('spawn').Queue()
        threading.Thread(target=_listen, args=(_parent_queue,), daemon=True,
                         name='console').start()
    return _parent_queue


def _listen(queue):
    while True:
        event = queue.get()
        if event[0] != 'line':
            _BARS.apply(event)
            continue
        text = event[1]
        message = text.split('] ', 1)[-1]
        if message.startswith(('WARNING: ', 'ERROR: ')) and not first_time(message):
            continue                    # a warning repeated by several runs is shown once
        line(text)


def attach(queue):
    """In a worker process: print through the parent's console (:func:`channel`)."""
    global _channel
    _channel = queue
    configure(verbose())
    sys.stdout = sys.stderr = _LineStream()


@contextlib.contextmanager
def run_named(name):
    """In a worker: the block's lines and bars carry ``[name]``; its bars close at the end
    (a run that fails leaves none behind)."""
    global _prefix
    _prefix = f'[{name}] '
    try:
        yield
    finally:
        _send(('close_all', f'{os.getpid()}:'))
        _prefix = ''


# ----------------------------------------------------------------------------- hook
@HOOKS.register_module()
class ProgressHook(Hook):
    """A bar per training (iterations, with the loss) and per evaluation (images), on the
    main process; ``label`` names it."""
    priority = 'LOW'

    def __init__(self, label):
        self.label = label
        self.bar = None

    def before_train(self, runner):
        if is_main_process():
            self.bar = Bar(f'{self.label} train', runner.max_iters, 'it', runner.iter)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self.bar is not None:
            scalars = runner.message_hub.log_scalars
            loss = scalars['train/loss'].current() if 'train/loss' in scalars else None
            self.bar.update(runner.iter, None if loss is None else f'loss {loss:.4g}')

    def before_test(self, runner):
        self.seen = 0
        if is_main_process():
            self.bar = Bar(self.label, len(runner.test_dataloader.dataset), 'img')

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.seen += (len(outputs or ()) or 1) * get_world_size()
        if self.bar is not None:
            self.bar.update(self.seen)

    def close_bar(self, runner=None):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    after_train = after_test = close_bar
