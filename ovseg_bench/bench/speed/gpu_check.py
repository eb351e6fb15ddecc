"""What the one-command GPU check measures (:mod:`.gpu_report` writes the report):

1. **MFU** of a ViT's dense forward (``forward_dense``, weights and activations in bf16, a
   batch of S x S images): FLOPs counted by ``torch.utils.flop_counter`` and from the ViT's
   dimensions (the two must agree), achieved TFLOP/s over the device's dense bf16 peak (the
   table :data:`.flops.PEAK_BF16_TFLOPS` by device name, or ``peak_tflops``; 'n/a' without
   one), eagerly and, with ``compile_model``, through ``torch.compile``.
2. **Evaluation throughput** of SCLIP under its protocol preset (with its ``voc21`` values
   and class names) on a synthetic set in the PASCAL VOC layout read through the ``voc21``
   dataset config (``make_synthetic``; VOC val's 1449 images of 500 x 375 by default),
   through the evaluator (``engine.evaluate``: DataLoader workers decoding and resizing,
   sliding windows, metric), data loading included: batched windows (bf16 and fp32) beside
   the batch-1 fp32 per-window loop, each after an untimed pass over a few images; plus one
   pass of the DataLoader alone, and the segmentor's dense logits alone on random images of
   the resized size per row (images/s, FLOPs, MFU: what the model allows). Batched and
   per-window fp32 must give the same mIoU.
3. **DDP evaluation** of the batched fp32 row on every visible GPU (``torchrun -m
   ovseg_bench.cli test CONFIG --launcher pytorch``), which must give the single-process
   row; skipped with one GPU.

Every weight is random (open_clip's architecture with ``pretrained=None``): the figures are
speeds, and the mIoUs only compare the paths with each other, never a method's accuracy.
"""
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from ...config import CONFIG_ROOT, load_config
from ...data.catalog import load_dataset_cfg
from ...data.synthetic import make_synthetic
from ...engine.evaluate import evaluate
from ...protocol import resolve_protocol
from ...segmentor import OVSegmentor
from ...text import select_vocabulary
from .. import results
from .flops import frozen_parameters, vit_dense_forward_flops
from .inputs import REPO, backbone_model, build_backbone, synthetic_images
from .measure import measure
from .run import loader_pass

DATASET = 'voc21'          # PASCAL VOC's config and SCLIP's values for it, on synthetic images
SCLIP_CONFIG = CONFIG_ROOT / 'sclip' / 'sclip_vit_b16.py'
WARMUP_IMAGES = 8         # the untimed pass before each evaluation row


# ----------------------------------------------------------------------------- 1. MFU
def mfu_rows(backbone, device, batch, size, warmup, reps, peak, compile_model):
    """One row per path (eager, compiled) of ``forward_dense`` in bf16."""
    bb = build_backbone(backbone, device).eval().to(torch.bfloat16)
    images = synthetic_images(batch, size, device).to(torch.bfloat16)
    analytic = vit_dense_forward_flops(bb, size, batch)

    def eager():
        with torch.no_grad():
            return bb.forward_dense(images)
    paths = [('eager', eager)]
    if compile_model:
        compiled = torch.compile(bb.forward_dense, dynamic=False)

        def run_compiled():
            with torch.no_grad():
                return compiled(images)
        paths.append(('torch.compile', run_compiled))
    rows = []
    for path, call in paths:
        # The counter cannot see inside compiled kernels: a compiled call is counted eagerly.
        m = measure(call, device, max(warmup, 1), reps, count=eager)
        tflops = analytic / m.seconds / 1e12
        rows.append(dict(path=path, seconds=m.seconds, images_per_s=batch / m.seconds,
                         counted=m.flops, analytic=analytic, tflops=tflops,
                         mfu=tflops / peak if peak else None))
    return rows


# ------------------------------------------------------------------ 2. evaluation
def write_configs(out, backbone, eval_batch, workers):
    """The evaluation rows' configs (SCLIP's ViT-B/16 config, its protocol preset, random
    weights of ``backbone``), one file each: ``{row name: path}``."""
    if not SCLIP_CONFIG.is_file():
        raise FileNotFoundError(f'{SCLIP_CONFIG} not found: the GPU check runs from a checkout')
    rows = dict(batched_bf16=dict(precision='bf16', batch_size=eval_batch),
                batched_fp32=dict(precision='fp32', batch_size=eval_batch),
                per_window_fp32=dict(precision='fp32', batch_size=1, batched_windows=False))
    paths = {}
    for name, protocol in rows.items():
        protocol = dict(protocol, num_workers=workers, text_cache=str(out / 'text_cache'),
                        window_batch=max(64, 8 * protocol['batch_size']))
        path = out / 'configs' / f'gpu_check_{name}.py'
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            f'# Written by `ovseg-bench speed --gpu-report`: SCLIP on random weights.\n'
            f'_base_ = [{str(SCLIP_CONFIG)!r}]\n'
            f'backbone = dict(model={backbone_model(backbone)!r}, pretrained=None)\n'
            f'protocol = dict({", ".join(f"{k}={v!r}" for k, v in protocol.items())})\n')
        paths[name] = path
    return paths


def synthetic_sets(out, n_images, image_size, data_root=None):
    """``(root, warm-up root)``: the VOC-layout synthetic set and a small one for the
    untimed passes (``make_synthetic`` is idempotent: a rerun finds them)."""
    root = Path(data_root or out / f'synth_voc_{n_images}_{image_size[0]}x{image_size[1]}')
    warm = out / f'synth_voc_warmup_{image_size[0]}x{image_size[1]}'
    for path, n in ((root, n_images), (warm, min(WARMUP_IMAGES, n_images))):
        make_synthetic(path, n_val=n, n_seg_train=1, n_caption_train=0, n_caption_val=0,
                       size=image_size, layouts=('voc',), progress=False)
    return root, warm


def _figures(result):
    """mIoU, images/s, seconds and peak MB of what the evaluator returns: its result row (a
    dict) or its ``Evaluation`` record (metrics apart from the cost)."""
    if isinstance(result, dict):
        return {k: result[k] for k in ('mIoU', 'images_per_s', 'eval_time_s', 'peak_mem_mb')}
    return dict(mIoU=result.metrics['mIoU'], images_per_s=result.images_per_s,
                eval_time_s=result.eval_time_s, peak_mem_mb=result.peak_mem_mb)


def resized(image_size, protocol):
    """(width, height) of a ``image_size`` image after the protocol's keep-ratio resize."""
    w, h = image_size
    scale = min(protocol['short_side'] / min(w, h), protocol['max_long_side'] / max(w, h))
    return int(w * scale + 0.5), int(h * scale + 0.5)


def model_rows(head, configs, image_size, device, warmup, reps, peak):
    """Per evaluation row, the segmentor's dense logits alone (windows, forwards, synonym
    merge; no data loading, resizing back or metric) on a batch of random images of the
    resized size: images/s, FLOPs per image and MFU."""
    ds = load_dataset_cfg(DATASET)
    rows = {}
    for name, path in configs.items():
        protocol = resolve_protocol(load_config(path).protocol, DATASET)
        _, vocabulary = select_vocabulary(ds['vocabulary'], DATASET, protocol['vocabularies'])
        seg = OVSegmentor(head, vocabulary, ds['has_background'], protocol).to(device)
        w, h = resized(image_size, protocol)
        images = torch.randn(protocol['batch_size'], 3, h, w,
                             generator=torch.Generator().manual_seed(0)).to(device)

        def call():
            with torch.no_grad():
                return seg.dense_logits(images)

        def count():
            with frozen_parameters(head):
                return call()
        m = measure(call, device, warmup, reps, count=count)
        n = protocol['batch_size']
        tflops = m.flops / m.seconds / 1e12
        rows[name] = dict(images_per_s=n / m.seconds, gflop=m.flops / n / 1e9, tflops=tflops,
                          mfu=tflops / peak if peak else None, size=f'{w}x{h}')
    return rows


def eval_rows(head, configs, root, warm, out):
    """The single-process evaluation rows (``head`` shared by every row) and one
    DataLoader pass alone, with the batched rows' settings."""
    rows = {}
    for name, path in configs.items():
        cfg = load_config(path)
        protocol = resolve_protocol(cfg.protocol, DATASET)
        evaluate(cfg, DATASET, out / 'eval' / f'{name}_warmup', data_root=warm, head=head)
        figures = _figures(evaluate(cfg, DATASET, out / 'eval' / name, data_root=root,
                                    head=head))
        rows[name] = dict(figures, **{k: protocol[k] for k in ('precision', 'batch_size',
                                                               'num_workers')})
    protocol = resolve_protocol(load_config(configs['batched_fp32']).protocol, DATASET)
    ds = load_dataset_cfg(DATASET, root)
    count, seconds, _ = loader_pass(ds, protocol)
    rows['loader'] = dict(images_per_s=count / seconds, eval_time_s=seconds,
                          num_workers=protocol['num_workers'])
    return rows


# ------------------------------------------------------------------------- 3. DDP
def ddp_command(config, procs, root, work_dir):
    """The distributed evaluation of ``config`` on ``procs`` processes, as a user runs it."""
    return [sys.executable, '-m', 'torch.distributed.run', '--standalone',
            f'--nproc_per_node={procs}', '-m', 'ovseg_bench.cli', 'test', str(config),
            '--launcher', 'pytorch', '--dataset', DATASET, '--data-root', str(root),
            '--work-dir', str(work_dir), '--out', str(work_dir / 'results.csv')]


def ddp_row(config, procs, root, work_dir):
    """``(row or None, message)`` of the distributed evaluation."""
    cmd = ddp_command(config, procs, root, work_dir)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get('PYTHONPATH')) if p))
    csv = work_dir / 'results.csv'
    csv.unlink(missing_ok=True)           # a row of an earlier check is not this one's
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0 or not csv.is_file():
        last = (done.stderr.strip().splitlines() or ['no output'])[-1]
        return None, f'failed (exit {done.returncode}): {last}'
    return results.read_rows(csv)[-1], f'{procs} processes, {wall:.0f} s with start-up'
