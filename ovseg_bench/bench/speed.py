"""``ovseg-bench speed``: throughput, FLOPs and memory of every method on every backbone.

For each registered method x backbone x input size it measures, on synthetic inputs and random
weights (speed does not depend on the weights; nothing is downloaded):

* ``whole``: dense inference of S x S images, one forward per image batch;
* ``slide``: sliding-window inference of S x S images (default windows of S/2 every S/4, so
  3 x 3 windows), on the batched path (every window of the batch in one forward) and, with
  ``compare``, on the naive per-window loop (``path=per_window``);
* ``train``: one optimiser step (AdamW, the method config's settings) on a synthetic batch
  through the method's own ``forward_train`` loss; empty for training-free methods;

and once per backbone (with ``compare``): the last-block ``csa`` attention through
``F.scaled_dot_product_attention`` vs the explicit matmul-softmax (``mode=attention``), and
the class text embeddings of one vocabulary computed vs read from the disk and memory caches
(``mode=text``). With a dataset on disk, the evaluation DataLoader without and with workers
(``mode=data``).

Each measurement runs ``warmup`` untimed calls, one untimed call under
``torch.utils.flop_counter.FlopCounterMode`` (FLOPs: 2 x multiply-adds of matmuls,
convolutions and attention; element-wise work is not counted), then ``reps`` timed calls
(CUDA synchronised after each); the median call time is reported. Peak memory: on CUDA
``torch.cuda.max_memory_allocated`` over the timed calls (weights, optimiser state and
activations: everything allocated); on CPU the rise of the process's resident set over the
timed calls (Linux: peak ``VmHWM`` after resetting it through ``/proc/self/clear_refs`` and
returning freed heap pages with ``malloc_trim``, minus the resident set before), i.e.
activations and temporaries without the weights; empty where the kernel does not allow the
reset. MFU: achieved TFLOP/s over the device's dense bf16 peak (:data:`PEAK_BF16_TFLOPS`), on
CUDA only, whatever the precision. ``other_load``: CPU cores other processes kept busy during
the timed calls (:class:`OtherLoad`), to tell a slow path from a busy machine.

Rows are appended to ``speed.csv`` (a row with the same key replaces the earlier one);
``speed.md`` (a Markdown table) and ``speed.png`` are made from every row of the file.
"""
import collections
import contextlib
import ctypes
import functools
import gc
import inspect
import logging
import math
import os
import re
import resource
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F

from . import results

REPO = Path(__file__).resolve().parents[2]
BACKBONE_MODELS = {'tiny': 'ovseg-tiny', 'vit-b16': 'ViT-B-16', 'vit-l14': 'ViT-L-14'}
MODES = ('whole', 'slide', 'train')
# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s from NVIDIA's datasheets, matched as
# whole words in the device name, most specific first.
PEAK_BF16_TFLOPS = (('H200', 989.0), ('H100 NVL', 835.0), ('H100 PCIe', 756.0),
                    ('H100', 989.0), ('A100', 312.0), ('L40S', 362.0), ('L4', 121.0))
FIELDS = ['method', 'backbone', 'size', 'mode', 'batch', 'path', 'precision', 'compiled',
          'device', 'torch', 'git_commit', 'timestamp', 'images_per_s', 'seconds',
          'flops_per_image', 'tflops', 'mfu', 'peak_mem_mb', 'other_load', 'note']
KEY_FIELDS = ['method', 'backbone', 'size', 'mode', 'batch', 'path', 'precision', 'compiled',
              'device']
DEFAULT_BATCH = dict(cpu=1, cuda=16)          # images per inference call
DEFAULT_TRAIN_BATCH = dict(cpu=2, cuda=16)    # samples per training step (>= 2: negatives)
CAPTIONS = ('a red circle on grass', 'a blue square on water', 'a star on brick',
            'a heart on sand', 'a ring on wood', 'a cross in the sky')


# ------------------------------------------------------------------------------- FLOPs
def _native_mha_flops(query, key, value, embed_dim, num_head, *args, out_shape=None,
                      **kwargs):
    """torch's fused ``nn.MultiheadAttention`` inference kernel (batch first): q/k/v
    in-projections, scores, weighted values and the out-projection."""
    b, tq, e = query
    tk = key[1]
    projections = 2 * b * tq * e * e + 2 * 2 * b * tk * e * e + 2 * b * tq * e * e
    return projections + 2 * 2 * b * tq * tk * e


def _cpu_sdpa_flops(query, key, value, *args, out_shape=None, **kwargs):
    from torch.utils.flop_counter import sdpa_flop_count
    return sdpa_flop_count(query, key, value)


def _cpu_sdpa_backward_flops(grad_out, query, key, value, *args, out_shape=None, **kwargs):
    from torch.utils.flop_counter import sdpa_backward_flop_count
    return sdpa_backward_flop_count(grad_out, query, key, value)


# FlopCounterMode knows the CUDA attention kernels but not these two, which ViTs hit on CPU
# (flash attention for CPU) and in eval mode (the fused MultiheadAttention fast path):
# without them a ViT's attention would count as zero.
EXTRA_FLOP_FORMULAS = {
    torch.ops.aten._native_multi_head_attention: _native_mha_flops,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward:
        _cpu_sdpa_backward_flops,
}


def count_flops(fn):
    """FLOPs of one call of ``fn`` (forward and, if it runs one, backward)."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False, custom_mapping=EXTRA_FLOP_FORMULAS) as counter:
        fn()
    return counter.get_total_flops()


@contextlib.contextmanager
def frozen_parameters(module):
    """``requires_grad`` off for every parameter of ``module`` inside the block. For counting
    an inference call: the module tracker of FlopCounterMode fails on a view of a parameter
    taken under no_grad (it requires grad but has no grad_fn; e.g. SegCLIP's expanded
    centers), and inference does not read the flags."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def peak_bf16_tflops(device_name):
    """The dense bf16 peak of a CUDA device by name, or None when not in the table."""
    for key, peak in PEAK_BF16_TFLOPS:
        if re.search(r'(?<![\w-])' + re.escape(key) + r'(?!\w)', device_name):
            return peak
    return None


# ------------------------------------------------------------------------ time, memory
def synchronize(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _resident_kb(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise OSError(f'{field} not in /proc/self/status')


def _release_freed_heap():
    """Give freed heap pages back to the OS (glibc), so that reusing them during the next
    measurement shows in its resident set again."""
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak memory of the code in the ``with`` block, in MB (``peak_mb``; None if unknown)."""

    def __init__(self, device):
        self.device = device
        self.peak_mb = None

    def __enter__(self):
        gc.collect()
        if self.device.type == 'cuda':
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        _release_freed_heap()
        try:
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')            # resets the peak resident set (VmHWM) to the current
            self._base_kb = _resident_kb('VmRSS')
        except OSError:
            self._base_kb = None
        return self

    def __exit__(self, *exc):
        if self.device.type == 'cuda':
            synchronize(self.device)
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        elif self._base_kb is not None:
            self.peak_mb = max(0, _resident_kb('VmHWM') - self._base_kb) / 1024
        return False


class OtherLoad:
    """CPU cores that other processes kept busy during the ``with`` block (``cores``; None
    where ``/proc/stat`` is missing): machine-wide busy time minus the CPU time of this
    process and of its finished children (DataLoader workers), over the wall time. A figure
    measured while it was high says more about the neighbours than about this code."""

    @staticmethod
    def _own_seconds():
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime

    @staticmethod
    def _busy_seconds():
        with open('/proc/stat') as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)    # idle + iowait
        return (sum(fields[:8]) - idle) / os.sysconf('SC_CLK_TCK')

    def __enter__(self):
        self.cores = None
        try:
            self._start = (self._busy_seconds(), self._own_seconds(), time.perf_counter())
        except (OSError, ValueError):
            self._start = None
        return self

    def __exit__(self, *exc):
        if self._start is not None:
            busy0, own0, wall0 = self._start
            wall = time.perf_counter() - wall0
            others = self._busy_seconds() - busy0 - (self._own_seconds() - own0)
            self.cores = max(0.0, others / wall) if wall > 0 else None
        return False


Measurement = collections.namedtuple('Measurement', 'flops seconds peak_mb other_load')


def measure(fn, device, warmup, reps, count=None):
    """A :class:`Measurement`: ``warmup`` untimed calls, one call of ``count`` (default
    ``fn``) under the FLOP counter, then ``reps`` timed calls (median seconds per call, peak
    memory and the other processes' load over them).

    The median, not the mean: on a shared machine another process taking a core for a
    moment stalls every parallel region of torch's two threads, and one such call would
    otherwise decide the figure.
    """
    for _ in range(warmup):
        fn()
    flops = count_flops(count or fn)
    synchronize(device)
    times = []
    with PeakMemory(device) as memory, OtherLoad() as load:
        for _ in range(reps):
            start = time.perf_counter()
            fn()
            synchronize(device)
            times.append(time.perf_counter() - start)
    return Measurement(flops, statistics.median(times), memory.peak_mb, load.cores)


# -------------------------------------------------------------------- methods and inputs
def backbone_model(name):
    """An open_clip model name from a ``--backbones`` entry (alias or open_clip name)."""
    return BACKBONE_MODELS.get(name, name)


@contextlib.contextmanager
def _quiet(name, level=logging.ERROR):
    """Hide a logger's messages below ``level`` (the random-weights warning is expected)."""
    log = logging.getLogger(name)
    before = log.level
    log.setLevel(level)
    try:
        yield
    finally:
        log.setLevel(before)


def build_backbone(name, device):
    from ..registry import BACKBONES, build
    with _quiet('ovseg_bench.backbones.open_clip'):
        return build(BACKBONES, dict(type='OpenCLIPBackbone', model=backbone_model(name),
                                     pretrained=None)).to(device)


@functools.lru_cache(maxsize=1)
def _method_config_paths():
    """({method: tiny-synthetic config}, {method: ViT-B/16 config}), parsed once."""
    from .runner import method_configs
    return (method_configs(str(REPO / 'configs' / '*' / '*_tiny_synth.py')),
            method_configs(str(REPO / 'configs' / '*' / '*vit*b16*.py')))


def method_settings(method, backbone):
    """``(method dict, train dict, train pipeline)`` from the method's own config: its
    ``*_tiny_synth.py`` for the tiny backbone, its ViT-B/16 config (if it has one) for the
    others; a method without a config gets its defaults."""
    from mmengine.config import Config
    tiny, vit = _method_config_paths()
    found = tiny if backbone_model(backbone) == 'ovseg-tiny' else {**tiny, **vit}
    if method not in found:
        return dict(type=method), {}, []
    cfg = Config.fromfile(found[method][0]).to_dict()   # the first, as sorted by path
    return (dict(cfg['method']), dict(cfg.get('train') or {}),
            list((cfg.get('train_data') or {}).get('pipeline') or []))


def build_head(method, backbone, device, seed=0):
    """The method head on a random ``backbone`` with its config's options. A method that
    embeds class names itself (a ``templates`` option) does it with one template and the
    disk cache: it is computed once before timing, and the 80 templates would cost minutes
    per ViT on a CPU."""
    from ..registry import METHODS, build
    from ..text import DEFAULT_CACHE
    method_cfg, train_cfg, pipeline = method_settings(method, backbone)
    params = inspect.signature(METHODS.get(method).__init__).parameters
    if 'templates' in method_cfg:
        method_cfg['templates'] = 'single'
    if 'text_cache' in params and method_cfg.get('text_cache') is None:
        method_cfg['text_cache'] = str(DEFAULT_CACHE)
    torch.manual_seed(seed)
    bb = build_backbone(backbone, 'cpu')
    head = build(METHODS, method_cfg, backbone=bb).to(device)
    return head, train_cfg, pipeline


def synthetic_images(n, size, device, seed=0):
    """N,3,S,S standard-normal images (what normalised pixels look like to the model)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g).to(device)


def random_class_embeds(k, dim, device, seed=1):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(k, dim, generator=g), dim=-1).to(device)


def _multicrop_settings(pipeline):
    """(n_global, n_local, local/global size ratio) of the config's MultiCropViews."""
    for t in pipeline:
        if t.get('type') == 'MultiCropViews':
            return (int(t.get('n_global', 2)), int(t.get('n_local', 4)),
                    t['local_size'] / t['global_size'])
    return 2, 4, 0.5


def synthetic_train_batch(head, size, batch, pipeline=(), seed=0):
    """A training batch as the data pipeline would give it (uint8 RGB images, captions and
    every view in ``head.train_views``) at ``size``, on CPU; ``KeyError`` for a view this
    function does not know how to make."""
    g = torch.Generator().manual_seed(seed)
    patch = head.backbone.patch_size
    grid = size // patch

    def uint8_images(*shape):
        return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)

    out = dict(images=uint8_images(batch, 3, size, size),
               captions=[CAPTIONS[i % len(CAPTIONS)] for i in range(batch)])
    views = tuple(head.train_views)
    if {'global_crops', 'local_crops', 'crop_boxes', 'crop_flips'} & set(views):
        n_global, n_local, ratio = _multicrop_settings(pipeline)
        local = max(patch, int(round(size * ratio / patch)) * patch)
        out['global_crops'] = uint8_images(batch, n_global, 3, size, size)
        out['local_crops'] = uint8_images(batch, n_local, 3, local, local)
        # Two overlapping global boxes (the second flipped) so the clustering pairs exist;
        # local boxes anywhere inside the image.
        s = float(size)
        boxes = [(0, 0, 0.75 * s, 0.75 * s), (0.25 * s, 0.25 * s, s, s)][:n_global]
        corners = torch.rand(n_local, 2, generator=g) * 0.6 * s
        boxes += [(x, y, x + 0.4 * s, y + 0.4 * s) for x, y in corners.tolist()]
        out['crop_boxes'] = torch.tensor(boxes, dtype=torch.float32).expand(batch, -1, -1)
        flips = torch.zeros(batch, n_global + n_local, dtype=torch.bool)
        flips[:, 1:n_global] = True
        out['crop_flips'] = flips
    for view in views:
        if view in out:
            continue
        if view == 'superpixels':
            # cells of 4 x 4 patches: about as many segments as Felzenszwalb gives
            cells = (torch.arange(grid) // 4)
            ids = cells[:, None] * ((grid + 3) // 4) + cells[None, :]
            out[view] = ids.expand(batch, -1, -1).clone()
        elif view == 'gt_seg':
            # blocks of S/8 pixels, each one class of the method's training label space
            # (``classes`` where the head has them) or ignore (255)
            n_labels = len(getattr(head, 'classes', ()) or ()) or 2
            blocks = torch.randint(0, n_labels + 1, (batch, 8, 8), generator=g)
            blocks[blocks == n_labels] = 255
            out[view] = F.interpolate(blocks[:, None].float(), size=(size, size),
                                      mode='nearest')[:, 0].long()
        elif view == 'mask':
            out[view] = torch.rand(batch, grid, grid, generator=g) < 0.5
        elif view == 'image_id':
            out[view] = torch.arange(batch)          # every item its own image
        else:
            raise KeyError(f'no synthetic {view!r} view (known: images, captions, '
                           f'global_crops, local_crops, crop_boxes, crop_flips, superpixels, '
                           f'gt_seg, mask, image_id)')
    return out


def training_step(head, train_cfg, batch, device, precision):
    """One optimiser step as the trainer takes it: the views normalised on the device,
    ``forward_train`` under the precision's autocast, the loss terms summed, backward,
    gradient clipping, AdamW over the trainable parameters (config lr, weight decay,
    backbone lr multiplier)."""
    from ..engine.trainer import TRAIN_DEFAULTS, ViewNormalizer, param_groups
    from ..inference import precision_context
    t = {**TRAIN_DEFAULTS, **train_cfg}
    normalizer = ViewNormalizer(head.backbone.mean, head.backbone.std,
                                ('images',) + tuple(head.train_views)).to(device)
    groups = param_groups(head, t['lr'], t['weight_decay'], t['backbone_lr_mult'])
    if not groups:
        raise ValueError(f'{type(head).__name__} has no trainable parameter')
    optimizer = torch.optim.AdamW(groups, lr=t['lr'], betas=tuple(t['betas']), eps=t['eps'])
    params = [p for group in groups for p in group['params']]
    head.train()

    def step():
        data = normalizer(dict(batch))
        with precision_context(precision, device.type):
            out = head.forward_train(data)
        loss = sum(v.float().mean() for k, v in out.items() if 'loss' in k)
        loss.backward()
        if t['grad_clip']:
            torch.nn.utils.clip_grad_norm_(params, float(t['grad_clip']))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def slide_geometry(size, crop=None, stride=None):
    """Window size and stride of the slide mode: S/2 every S/4 (3 x 3 windows) by default."""
    crop = int(crop or size // 2)
    return crop, int(stride or max(1, crop // 2))


# -------------------------------------------------------------------------- the runner
class SpeedRun:
    """One ``speed`` invocation: the settings, the rows measured so far, the CSV."""

    def __init__(self, out, device, warmup, reps, batch, train_batch, classes, crop, stride,
                 compare, precisions, compile_model):
        self.out = Path(out)
        self.device = torch.device(device)
        self.warmup, self.reps = int(warmup), int(reps)
        self.batch, self.train_batch = int(batch), int(train_batch)
        self.classes, self.crop, self.stride = int(classes), crop, stride
        self.compare = compare
        self.precisions = list(precisions)
        self.compile_model = compile_model
        self.rows, self.errors = [], 0
        if self.device.type == 'cuda':
            self.device_name = torch.cuda.get_device_name(self.device)
            self.peak = peak_bf16_tflops(self.device_name)
        else:
            self.device_name = f'cpu ({torch.get_num_threads()} threads)'
            self.peak = None
        self.commit = results.git_commit(REPO)

    # ---------------------------------------------------------------------- rows
    def record(self, method, backbone, size, mode, batch, path, precision='fp32',
               compiled=False, measured=None, seconds=None, per_call=None, note=''):
        """One CSV row from a :class:`Measurement` (or bare ``seconds``); ``per_call`` images
        (or samples) per timed call gives images/s."""
        flops = peak_mb = other = None
        if measured is not None:
            flops, seconds, peak_mb, other = measured
        ips = per_call / seconds if seconds and per_call else None
        fpi = flops / per_call if flops and per_call else None
        tflops = fpi * ips / 1e12 if fpi and ips else None
        mfu = tflops / self.peak if tflops and self.peak else None
        row = dict(method=method, backbone=backbone, size=size, mode=mode, batch=batch,
                   path=path, precision=precision, compiled=int(bool(compiled)),
                   device=self.device_name, torch=torch.__version__, git_commit=self.commit,
                   timestamp=results.now(),
                   images_per_s=_significant(ips), seconds=_significant(seconds),
                   flops_per_image=int(fpi) if fpi else '',
                   tflops=_significant(tflops), mfu=_significant(mfu),
                   peak_mem_mb=_significant(peak_mb), other_load=_significant(other, 2),
                   note=note)
        self.rows.append(row)
        self.save()
        rate = f'{ips:9.3f}/s' if ips else (f'{seconds:9.4f} s' if seconds else '        -')
        gflops = f'{fpi / 1e9:8.2f} GFLOP' if fpi else ''
        print(f'{backbone:<9} {size:>4} {method:<10} {mode:<9} {path:<12} {precision:<4}'
              f'{" compiled" if compiled else ""} {rate} {gflops}  {note}', flush=True)
        return row

    def save(self):
        """Append this run's rows to speed.csv, replacing rows with the same key."""
        results.append_rows(self.out / 'speed.csv', self.rows, FIELDS, KEY_FIELDS)

    def attempt(self, what, fn):
        """Run a measurement; an error is printed and returned as a note for its row (the
        other cells still run; OVSEG_DEBUG=1 prints the traceback)."""
        try:
            return fn()
        except Exception as err:   # a failed cell must not stop the matrix
            self.errors += 1
            message = f'error: {type(err).__name__}: {err}'.replace('\n', ' ')[:300]
            print(f'speed: {what} failed: {message}', file=sys.stderr, flush=True)
            if os.environ.get('OVSEG_DEBUG'):
                traceback.print_exc()
            return message

    # ---------------------------------------------------------------- measurements
    def inference(self, method, backbone, size, modes):
        from ..inference import dense_inference, precision_context, window_boxes
        from ..protocol import Protocol
        window_batch = Protocol.window_batch
        head, train_cfg, pipeline = build_head(method, backbone, self.device)
        head.eval()
        patch = head.backbone.patch_size
        embeds = random_class_embeds(self.classes, head.backbone.embed_dim, self.device)
        images = synthetic_images(self.batch, size, self.device)
        crop, stride = slide_geometry(size, self.crop, self.stride)
        n_windows = len(window_boxes(size, size, crop, stride)[1])
        settings = [(mode, path, compiled)
                    for mode, path, wanted in (('whole', 'batched', 'whole' in modes),
                                               ('slide', 'batched', 'slide' in modes),
                                               ('slide', 'per_window',
                                                'slide' in modes and self.compare))
                    if wanted
                    for compiled in ((False, True) if self.compile_model and path == 'batched'
                                     else (False,))]
        # Static shapes: whole images and slide windows are two fixed shapes, each compiled
        # once; letting torch mark the batch dynamic after the second shape recompiles into
        # slower generic kernels.
        compiled_predict = (torch.compile(head.predict_dense, dynamic=False)
                            if self.compile_model else None)
        for precision in self.precisions:
            for mode, path, compiled in settings:
                def call(mode=mode, path=path, precision=precision, compiled=compiled):
                    predict = compiled_predict if compiled else head.predict_dense
                    with torch.no_grad(), precision_context(precision, self.device.type):
                        return dense_inference(
                            lambda x: predict(x, embeds), images, mode, crop, stride,
                            multiple=patch, window_batch=window_batch,
                            batched=path == 'batched')

                def eager(mode=mode, path=path, precision=precision):
                    with frozen_parameters(head):
                        return call(mode, path, precision, compiled=False)

                cell = (method, backbone, size, mode, self.batch, path, precision, compiled)
                note = (f'{n_windows} windows of {crop} px, stride {stride}'
                        if mode == 'slide' else '')
                if compiled:
                    start = time.perf_counter()
                    outcome = self.attempt('compile', call)
                    if isinstance(outcome, str):
                        self.record(*cell, note=outcome)
                        continue
                    note = (note + '; ' if note else '') + \
                        f'first call (compilation) {time.perf_counter() - start:.1f} s'
                # The FLOPs of a compiled call are those of the eager one (same operations);
                # the counter cannot see inside compiled kernels.
                outcome = self.attempt(f'{method} {mode}', lambda: measure(
                    call, self.device, self.warmup, self.reps, count=eager))
                if isinstance(outcome, str):
                    self.record(*cell, note=outcome)
                    continue
                self.record(*cell, measured=outcome, per_call=self.batch, note=note)
        if 'train' in modes:
            self.training(head, method, backbone, size, train_cfg, pipeline)
        del head
        gc.collect()

    def training(self, head, method, backbone, size, train_cfg, pipeline):
        if not getattr(head, 'trainable', True):
            for precision in self.precisions:
                self.record(method, backbone, size, 'train', self.train_batch, 'default',
                            precision, note='training-free')
            return
        try:
            batch = synthetic_train_batch(head, size, self.train_batch, pipeline)
        except KeyError as err:
            self.record(method, backbone, size, 'train', self.train_batch, 'default',
                        note=str(err.args[0]))
            return
        for precision in self.precisions:
            def run(precision=precision):
                step = training_step(head, train_cfg, batch, self.device, precision)
                return measure(step, self.device, self.warmup, self.reps)
            outcome = self.attempt(f'{method} train', run)
            if isinstance(outcome, str):
                self.record(method, backbone, size, 'train', self.train_batch, 'default',
                            precision, note=outcome)
                continue
            self.record(method, backbone, size, 'train', self.train_batch, 'default',
                        precision, measured=outcome, per_call=self.train_batch,
                        note='samples/s; forward + backward FLOPs')

    def attention(self, backbone, size):
        """The last-block csa attention at the backbone's dims for S x S images: fused
        ``F.scaled_dot_product_attention`` vs the explicit matmul-softmax."""
        from ..backbones._vit import variant_attention
        bb = build_backbone(backbone, self.device)
        heads, width = bb.num_heads, bb.width
        tokens = 1 + (size // bb.patch_size) ** 2
        g = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(self.batch, tokens, width, generator=g).to(self.device)
                   for _ in range(3))
        reps = max(self.reps, 10)     # one call is short: more of them for a stable median
        for path, fused in (('sdpa', True), ('matmul', False)):
            def call(fused=fused):
                with torch.no_grad():
                    return variant_attention('csa', q, k, v, heads, fused=fused)
            outcome = self.attempt('attention', lambda: measure(call, self.device,
                                                                max(self.warmup, 1), reps))
            note = f'last-block csa attention, {tokens} tokens, {heads} heads'
            if isinstance(outcome, str):
                self.record('-', backbone, size, 'attention', self.batch, path, note=outcome)
                continue
            self.record('-', backbone, size, 'attention', self.batch, path, measured=outcome,
                        per_call=self.batch, note=note)
        del bb

    def text(self, backbone, vocabulary, templates):
        """Class text embeddings of one vocabulary: computed (empty cache), then read from
        the disk cache (a new process), then from the memory cache (same process)."""
        from .. import text as T
        bb = build_backbone(backbone, self.device).eval()
        side = _TextSide(bb)
        vocab = T.load_vocabulary(vocabulary)
        n_names = sum(len(names) for names in vocab)
        n_prompts = n_names * len(T.templates(templates))
        note = f'{vocabulary}: {n_names} names x {templates} = {n_prompts} prompts'
        cache = Path(tempfile.mkdtemp(prefix='ovseg_speed_text_'))
        kept = dict(T._MEMORY)       # this process's own cache, put back after
        T._MEMORY.clear()
        try:
            timings = []
            for path in ('computed', 'disk_cache', 'memory_cache'):
                if path == 'disk_cache':      # as a new process finds it
                    T._MEMORY.clear()
                synchronize(self.device)
                with OtherLoad() as load:
                    start = time.perf_counter()
                    T.class_embeddings(side, vocab, templates, cache_dir=cache)
                    synchronize(self.device)
                    seconds = time.perf_counter() - start
                timings.append((path, Measurement(None, seconds, None, load.cores)))
        finally:
            T._MEMORY.clear()
            T._MEMORY.update(kept)
            shutil.rmtree(cache, ignore_errors=True)
        for path, measured in timings:
            self.record('-', backbone, '', 'text', n_prompts, path, precision='',
                        measured=measured, note=note)

    def data(self, dataset, size, workers, data_root=None):
        """One pass over the evaluation split with the evaluator's DataLoader (decode, resize
        and packing in the workers), per number of workers."""
        from mmengine.registry import DefaultScope
        from mmengine.runner import Runner

        from ..data.catalog import load_dataset_cfg
        from ..engine.evaluate import eval_dataloader_cfg
        from ..protocol import resolve_protocol
        ds = load_dataset_cfg(dataset, data_root)
        root = Path(data_root or ds['root']) / ds.get('subdir', '')
        if not root.is_dir():
            print(f'speed: no {dataset} at {root}: data loading not measured', flush=True)
            return
        first = True
        for n in workers:
            protocol = resolve_protocol(dict(short_side=size, num_workers=n), dataset)
            cfg = eval_dataloader_cfg(ds, protocol)
            with DefaultScope.overwrite_default_scope('mmseg'):
                loader = Runner.build_dataloader(cfg)
                if first:              # file system cache warm for every setting
                    for _ in loader:
                        pass
                    first = False
                with OtherLoad() as load:
                    start = time.perf_counter()
                    count = sum(len(b['inputs']) for b in loader)
                    seconds = time.perf_counter() - start
            path = f'workers={n}' + (',pinned' if cfg['pin_memory'] else '')
            self.record('-', '-', size, 'data', cfg['batch_size'], path, precision='',
                        measured=Measurement(None, seconds, None, load.cores),
                        per_call=count, note=f'{dataset}: one pass, {count} images, '
                                             f'short side {size}, worker start included')


class _TextSide(torch.nn.Module):
    """What :func:`ovseg_bench.text.class_embeddings` reads from a head: the backbone's text
    tower (the CLIP head's; no method needed)."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def text_fingerprint(self):
        return self.backbone.fingerprint()

    def encode_text(self, tokens):
        return self.backbone.encode_text(tokens)


def _load():
    try:
        return ' '.join(f'{x:.2f}' for x in os.getloadavg())
    except OSError:
        return 'unknown'


def _significant(value, digits=4):
    """``value`` to ``digits`` significant digits ('' when unknown): CPU and GPU rates differ
    by orders of magnitude, so fixed decimals would lose the small ones."""
    if value is None or not math.isfinite(float(value)):
        return ''
    return float(f'{float(value):.{digits}g}')


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


def run_speed(methods=None, backbones=('tiny', 'vit-b16'), sizes=(224,), device=None,
              out='work_dirs/speed', modes=MODES, warmup=1, reps=2, batch=None,
              train_batch=None, classes=21, crop=None, stride=None, compare=True,
              precisions=None,
              compile_model=False, text_vocabulary='synth_voc', text_templates='single',
              dataset='synth_voc', data_root=None, data_workers=(0, 2), threads=None):
    """Measure and write ``out/speed.csv``, ``speed.md`` and ``speed.png``; returns the
    number of measurements that failed (their rows carry the error). ``batch`` and
    ``train_batch`` default per device (:data:`DEFAULT_BATCH`); ``threads``: torch's CPU
    threads for this run (default: torch's own choice, one per core)."""
    with torch_threads(threads):
        from ..registry import METHODS, check_name, load_plugins, names
        load_plugins()
        methods = list(methods or names(METHODS))
        for m in methods:
            check_name(METHODS, m)
        unknown = set(modes) - set(MODES)
        if unknown:
            raise ValueError(f'unknown modes {sorted(unknown)}; valid: {", ".join(MODES)}')
        device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
        cuda = device.startswith('cuda')
        if cuda and not torch.cuda.is_available():
            raise ValueError('--device cuda, but CUDA is not available here')
        precisions = list(precisions or (['fp32', 'bf16'] if cuda else ['fp32']))
        bad = set(precisions) - {'fp32', 'bf16'}
        if bad:
            raise ValueError(f'unknown precisions {sorted(bad)}; valid: fp32, bf16')
        # A GPU needs batches to be busy; two CPU cores are busy with one image, and ViT-B/16
        # then takes about 3 minutes for every method (docs/speed.md).
        batch = batch or (DEFAULT_BATCH['cuda'] if cuda else DEFAULT_BATCH['cpu'])
        train_batch = train_batch or (DEFAULT_TRAIN_BATCH['cuda'] if cuda
                                      else DEFAULT_TRAIN_BATCH['cpu'])
        if train_batch < 2 and 'train' in modes:
            raise ValueError('train batch must be >= 2 (contrastive losses need negatives)')
        run = SpeedRun(out, device, warmup, reps, batch, train_batch, classes, crop, stride,
                       compare, precisions, compile_model)
        print(f'speed: {len(methods)} methods x {list(backbones)} x sizes {list(sizes)} on '
              f'{run.device_name}; warmup {warmup}, reps {reps}, batch {batch}, train batch '
              f'{train_batch}; rows -> {run.out / "speed.csv"}; load average {_load()}',
              flush=True)
        for backbone in backbones:
            for size in sizes:
                for method in methods:
                    outcome = run.attempt(f'{method} on {backbone}',
                                          lambda: run.inference(method, backbone, size, modes))
                    if isinstance(outcome, str):
                        run.record(method, backbone, size, 'build', '', '', note=outcome)
                if compare:
                    run.attempt('attention', lambda: run.attention(backbone, size))
            if compare and text_vocabulary:
                run.attempt('text', lambda: run.text(backbone, text_vocabulary, text_templates))
        if dataset:
            for size in sizes:
                run.attempt('data', lambda: run.data(dataset, size, data_workers, data_root))
        rows = results.read_rows(run.out / 'speed.csv')
        plot(rows, run.out / 'speed.png')
        (run.out / 'speed.md').write_text(markdown_table(rows))
        # Other processes on the machine slow every figure down: the load average says so.
        print(f'speed: {run.out / "speed.csv"}, speed.md, speed.png; load average {_load()}'
              + (f'; {run.errors} measurements failed (see their note)' if run.errors else ''))
        return run.errors


# --------------------------------------------------------------------- table and plot
def markdown_table(rows):
    """The rows as a Markdown table (device, torch and commit stated once per combination
    above it; empty cells as '-')."""
    def cell(row, key, scale=1.0, fmt='{:.3g}'):
        value = row.get(key, '')
        return fmt.format(float(value) * scale) if value not in ('', None) else '-'

    out = []
    setups = sorted({(r['device'], r['torch'], r['git_commit']) for r in rows})
    for device, version, commit in setups:
        out.append(f'Device {device}, torch {version}, commit {commit}.\n')
    out.append('| backbone | size | method | mode | path | precision | batch | images/s '
               '| GFLOP/image | TFLOP/s | MFU | peak MB | other load | note |')
    out.append('|' + '---|' * 14)
    for r in rows:
        out.append('| ' + ' | '.join([
            r['backbone'], str(r['size'] or '-'), r['method'], r['mode'],
            r['path'] + (' (compiled)' if str(r.get('compiled')) == '1' else ''),
            r['precision'] or '-', str(r['batch'] or '-'),
            cell(r, 'images_per_s') if r['mode'] != 'text' else cell(r, 'seconds', 1, '{:.3g} s'),
            cell(r, 'flops_per_image', 1e-9), cell(r, 'tflops', 1, '{:.2g}'),
            cell(r, 'mfu', 100, '{:.1f}%'), cell(r, 'peak_mem_mb', 1, '{:.0f}'),
            cell(r, 'other_load', 1, '{:.1f}'), r['note'] or '']) + ' |')
    return '\n'.join(out) + '\n'


# ---------------------------------------------------------------------------- the plot
def _series_label(row):
    label = row['mode'] if row['mode'] != 'slide' else f"slide ({row['path'].replace('_', '-')})"
    if row.get('precision', 'fp32') != 'fp32':
        label += f" {row['precision']}"
    if str(row.get('compiled', '0')) == '1':
        label += ' compiled'
    return label


BUSY_LOAD = 0.5   # other processes' cores above which a figure is starred in the plot


def plot(rows, path):
    """Horizontal bars of images/s (training: samples/s) per method, one panel per
    (backbone, size, device), one colour per mode/path; values printed at the bar ends,
    starred when other processes kept :data:`BUSY_LOAD` cores or more busy meanwhile;
    training-free methods say so in their training slot."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r['mode'] in MODES]
    measured = [r for r in rows if r.get('images_per_s') not in ('', None)]
    if not measured:
        return None
    panels = {}
    for r in rows:
        panels.setdefault((r['backbone'], r['size'], r['device']), []).append(r)
    order = list(BACKBONE_MODELS)
    keys = sorted({(r['backbone'], r['size'], r['device']) for r in measured},
                  key=lambda k: (order.index(k[0]) if k[0] in order else len(order),
                                 k[0], int(k[1] or 0), k[2]))
    series = []
    for r in measured:
        label = _series_label(r)
        if label not in series:
            series.append(label)
    series.sort(key=lambda s: (['whole', 'slide', 'train'].index(s.split()[0]), s))
    colours = dict(zip(series, plt.get_cmap('tab10').colors))
    n_methods = max(len({r['method'] for r in panels[k]}) for k in keys)
    height = max(3.0, 0.22 * n_methods * len(series) + 1.8)
    fig, axes = plt.subplots(1, len(keys), figsize=(6.5 * len(keys), height), squeeze=False)
    starred = False
    for ax, key in zip(axes[0], keys):
        cells = {(r['method'], _series_label(r)): r for r in panels[key]}
        methods = sorted({m for m, _ in cells})
        bar = 0.8 / len(series)
        top = max(float(r['images_per_s']) for r in panels[key] if r['images_per_s'] != '')
        for j, label in enumerate(series):
            ys = [i + (j - (len(series) - 1) / 2) * bar for i in range(len(methods))]
            values = [float(cells[m, label]['images_per_s'])
                      if (m, label) in cells and cells[m, label]['images_per_s'] != '' else 0.0
                      for m in methods]
            ax.barh(ys, values, height=bar, color=colours[label], label=label)
            for y, v, m in zip(ys, values, methods):
                row = cells.get((m, label))
                if row is None:
                    continue
                if row['images_per_s'] == '':
                    text = row['note'] if row['note'] == 'training-free' else 'failed'
                    ax.text(top * 0.01, y, text, va='center', fontsize=7, color='0.4')
                    continue
                busy = row.get('other_load') not in ('', None) and \
                    float(row['other_load']) >= BUSY_LOAD
                starred |= busy
                ax.text(v + top * 0.01, y, f'{v:.3g}' + ('*' if busy else ''), va='center',
                        fontsize=7)
        ax.set_yticks(range(len(methods)))
        ax.set_yticklabels(methods)
        ax.invert_yaxis()
        ax.set_xlim(0, top * 1.2)
        ax.set_xlabel('images/s (train: samples/s)')
        ax.set_title(f'{backbone_model(key[0])} at {key[1]} px, {key[2]}', fontsize=10)
        ax.grid(axis='x', alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc='lower center', ncol=len(series), fontsize=9,
               frameon=False, bbox_to_anchor=(0.5, 0.02 if starred else 0.0))
    if starred:
        fig.text(0.5, 0.005, f'* measured while other processes kept {BUSY_LOAD} CPU cores or '
                 f'more busy', ha='center', va='bottom', fontsize=8, color='0.3')
    fig.suptitle('ovseg-bench speed (random weights, synthetic inputs; higher is faster)',
                 fontsize=11)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
