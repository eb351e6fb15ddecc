"""One ``ovseg-bench speed`` invocation: every method x backbone x input size measured
(:class:`SpeedRun`), its rows appended to ``speed.csv`` (a row with the same key replaces the
earlier one), then ``speed.md`` and ``speed.png`` drawn from every row of the file.

Modes: ``whole`` (dense inference of S x S images, one forward per image batch); ``slide``
(sliding windows of S/2 every S/4 by default, 3 x 3 windows, on the batched path and, with
``compare``, on the naive per-window loop); ``train`` (the trainer's own optimiser step on a
synthetic batch, :mod:`.train_step`; empty for training-free methods). Once per backbone, with
``compare``: the last-block ``csa`` attention through ``F.scaled_dot_product_attention`` vs
the explicit matmul-softmax (``attention``) and the class text embeddings of one vocabulary
computed vs read from the disk and memory caches (``text``). With a dataset on disk, the
evaluation DataLoader without and with workers (``data``). MFU: achieved TFLOP/s over the
device's dense bf16 peak (:data:`.flops.PEAK_BF16_TFLOPS`), on CUDA only, whatever the
precision.
"""
import gc
import math
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from ... import text as T
from ...backbones._vit import variant_attention
from ...data.catalog import load_dataset_cfg
from ...engine.evaluate import eval_dataloader_cfg, pin_memory_enabled
from ...inference import dense_inference, precision_context, window_boxes
from ...registry import METHODS, build, check_name, load_plugins, names
from ...protocol import Protocol, resolve_protocol
from .. import results
from ..runner import torch_threads
from .flops import frozen_parameters, peak_bf16_tflops
from .inputs import (REPO, build_backbone, build_head, method_settings, random_class_embeds,
                     slide_geometry, synthetic_images, synthetic_train_batch)
from .measure import Measurement, OtherLoad, measure, synchronize
from .report import FIELDS, KEY_FIELDS, MODES, markdown_table, plot
from .train_step import TrainerStep

DEFAULT_BATCH = dict(cpu=1, cuda=16)          # images per inference call
DEFAULT_TRAIN_BATCH = dict(cpu=2, cuda=16)    # samples per training step (>= 2: negatives)


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
        window_batch = Protocol.window_batch
        head, _, _ = build_head(method, backbone, self.device)
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
        del head, compiled_predict
        gc.collect()

    def training(self, method, backbone, size):
        """The trainer's step (:class:`TrainerStep`) on a synthetic batch, per precision."""
        if not METHODS.get(method).trainable:
            for precision in self.precisions:
                self.record(method, backbone, size, 'train', self.train_batch, 'default',
                            precision, note='training-free')
            return
        pipeline = method_settings(method, backbone).pipeline
        for precision in self.precisions:
            if precision == 'bf16' and self.device.type != 'cuda':
                self.record(method, backbone, size, 'train', self.train_batch, 'default',
                            precision, note='the trainer trains in bf16 on CUDA only')
                continue

            def run(precision=precision):
                step = TrainerStep(method, backbone, self.device, precision)
                try:
                    batch = synthetic_train_batch(step.head, size, self.train_batch, pipeline)
                except KeyError as err:
                    return str(err.args[0])
                return measure(lambda: step(batch), self.device, self.warmup, self.reps)
            outcome = self.attempt(f'{method} train', run)
            gc.collect()
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
        the disk cache (a new process), then from the memory cache (same process), by the
        CLIP head (the backbone's own text tower)."""
        head = build(METHODS, dict(type='CLIP'),
                     backbone=build_backbone(backbone, self.device)).eval()
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
                    T.class_embeddings(head, vocab, templates, cache_dir=cache)
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
        ds = load_dataset_cfg(dataset, data_root)
        root = Path(data_root or ds['root']) / ds.get('subdir', '')
        if not root.is_dir():
            print(f'speed: no {dataset} at {root}: data loading not measured', flush=True)
            return
        for i, n in enumerate(workers):
            protocol = resolve_protocol(dict(short_side=size, num_workers=n), dataset)
            if i == 0:              # file system cache warm for every setting
                loader_pass(ds, protocol)
            count, seconds, load = loader_pass(ds, protocol)
            path = f'workers={n}' + (',pinned' if pin_memory_enabled(protocol) else '')
            self.record('-', '-', size, 'data', protocol['batch_size'], path, precision='',
                        measured=Measurement(None, seconds, None, load),
                        per_call=count, note=f'{dataset}: one pass, {count} images, '
                                             f'short side {size}, worker start included')


def loader_pass(ds, protocol):
    """``(images, seconds, other processes' cores)`` of one pass of the evaluator's
    DataLoader over dataset config ``ds``'s evaluation split under ``protocol`` (decode,
    resize and packing in the workers; their start included)."""
    with DefaultScope.overwrite_default_scope('mmseg'):
        loader = Runner.build_dataloader(eval_dataloader_cfg(ds, protocol))
        with OtherLoad() as load:
            start = time.perf_counter()
            count = sum(len(b['inputs']) for b in loader)
            seconds = time.perf_counter() - start
    return count, seconds, load.cores


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
                    if {'whole', 'slide'} & set(modes):
                        outcome = run.attempt(f'{method} on {backbone}', lambda: run.inference(
                            method, backbone, size, modes))
                        if isinstance(outcome, str):
                            run.record(method, backbone, size, 'build', '', '', note=outcome)
                    if 'train' in modes:
                        outcome = run.attempt(f'{method} train on {backbone}',
                                              lambda: run.training(method, backbone, size))
                        if isinstance(outcome, str):
                            run.record(method, backbone, size, 'train', '', '', note=outcome)
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


