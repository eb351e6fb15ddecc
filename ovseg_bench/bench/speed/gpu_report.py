"""``ovseg-bench speed --gpu-report`` (``tools/gpu_check.sh``): the one-command GPU check's
three sections (:mod:`.gpu_check`) written to one Markdown report, ``gpu_report.md``, with
the targets and the comparisons judged. Exit status 1 when a measurement failed or a
comparison disagreed; a missed target is reported, not an error."""
import os
import sys
import time
import traceback
from pathlib import Path

import torch

from ...config import load_config
from ...data.synthetic import usable_cpus
from ...engine.evaluate import load_head
from .. import results
from .flops import peak_bf16_tflops
from .gpu_check import (DATASET, WARMUP_IMAGES, ddp_command, ddp_row, eval_rows, mfu_rows,
                        model_rows, synthetic_sets, write_configs)
from .inputs import REPO, backbone_model

TARGETS = dict(mfu=0.40, images_per_s=500.0, speedup=10.0)   # on one H200-class GPU
MIOU_TOLERANCE = 0.05     # mIoU points two paths may differ by (float order, argmax ties)
ROW_LABELS = dict(batched_bf16='batched windows', batched_fp32='batched windows',
                  per_window_fp32='per-window loop')
TIME_LIMIT_S = 8 * 60


def _device_name(device):
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'cpu ({torch.get_num_threads()} threads)'


def _pct(x):
    return 'n/a' if x is None else f'{100 * x:.1f}%'


def _verdict(value, target, cuda):
    if not cuda or value is None:
        return 'target for one H200-class GPU; not judged here'
    return 'met' if value >= target else 'MISSED'


class Report:
    """The report's Markdown lines and the names of what failed or disagreed."""

    def __init__(self):
        self.lines, self.failures = [], []

    def add(self, *lines):
        self.lines.extend(lines)

    def attempt(self, title, fn):
        """``fn()``, or None with the error in the report: one failed section must not hide
        the others (OVSEG_DEBUG=1 prints the traceback)."""
        try:
            return fn()
        except Exception as err:
            self.failures.append(title)
            message = f'{type(err).__name__}: {err}'.replace('\n', ' ')[:400]
            self.add(f'**{title}: failed**: {message}', '')
            print(f'gpu-report: {title} failed: {message}', file=sys.stderr, flush=True)
            if os.environ.get('OVSEG_DEBUG'):
                traceback.print_exc()
            return None


def mfu_section(report, name, backbone, device, batch, size, warmup, reps, peak, given,
                compile_model):
    model = backbone_model(backbone)
    print(f'gpu-report: MFU of {model} forward_dense, bf16, batch {batch}', flush=True)
    source = ('`--peak-tflops`' if given else f'table entry for "{name}"' if peak
              else f'no table entry for "{name}"; pass --peak-tflops')
    report.add(f'## 1. MFU: {model} dense forward, bf16, batch {batch}, {size} px', '',
               f'Peak: {f"{peak:g} TFLOP/s dense bf16" if peak else "n/a"} ({source}). '
               f'{warmup} warm-up and {reps} timed calls, median.', '',
               '| path | ms / batch | images/s | GFLOP/image counted | GFLOP/image from dims '
               '| TFLOP/s | MFU |', '|---|---|---|---|---|---|---|')
    rows = report.attempt('MFU', lambda: mfu_rows(backbone, device, batch, size, warmup, reps,
                                                  peak, compile_model)) or []
    for r in rows:
        report.add(f"| {r['path']} | {1e3 * r['seconds']:.4g} | {r['images_per_s']:.4g} | "
                   f"{r['counted'] / batch / 1e9:.3f} | {r['analytic'] / batch / 1e9:.3f} | "
                   f"{r['tflops']:.3g} | {_pct(r['mfu'])} |")
        if abs(r['counted'] - r['analytic']) > 1e-3 * r['analytic']:
            report.failures.append('FLOP count')
            report.add(f"| **the counter and the dims disagree ({r['counted']} vs "
                       f"{r['analytic']})** |||||||")
    best = max((r['mfu'] for r in rows if r['mfu'] is not None), default=None)
    report.add('', f'Best MFU {_pct(best)} (target >= {_pct(TARGETS["mfu"])}: '
               f'{_verdict(best, TARGETS["mfu"], device.type == "cuda")}).', '')


def eval_section(report, out, backbone, device, n_images, image_size, eval_batch, workers,
                 data_root, warmup, reps, peak):
    """The evaluation rows; returns ``(rows, configs, data root)`` (None where it failed)."""
    cuda = device.type == 'cuda'
    print(f'gpu-report: evaluation of {n_images} synthetic {image_size[0]}x{image_size[1]} '
          f'images', flush=True)
    report.add(f'## 2. Evaluation: SCLIP preset, {n_images} synthetic images of '
               f'{image_size[0]} x {image_size[1]} (VOC layout), data loading included', '')
    configs = report.attempt('configs', lambda: write_configs(out, backbone, eval_batch,
                                                              workers))
    sets = report.attempt('synthetic set', lambda: synthetic_sets(out, n_images, image_size,
                                                                  data_root))
    head = report.attempt('model', lambda: load_head(load_config(configs['batched_fp32']))) \
        if configs and sets else None
    rows = report.attempt('evaluation', lambda: eval_rows(head, configs, *sets, out)) \
        if head is not None else None
    if not rows:
        return None, configs, None
    report.add(f'The `{DATASET}` dataset config and SCLIP\'s values and class names for it, '
               f'over synthetic images whose masks use 9 of its 21 labels; each row after an '
               f'untimed pass over {min(WARMUP_IMAGES, n_images)} images. Peak MB: CUDA '
               f'memory allocated. Configs: `{configs["batched_fp32"].parent}`.', '',
               '| path | precision | images/batch | workers | images/s | seconds | peak MB | '
               'mIoU (random weights) |', '|---|---|---|---|---|---|---|---|')
    for key, label in ROW_LABELS.items():
        r = rows[key]
        peak_mb = f"{r['peak_mem_mb']:.0f}" if cuda else '-'
        report.add(f"| {label} | {r['precision']} | {r['batch_size']} | {r['num_workers']} | "
                   f"{r['images_per_s']:.3g} | {r['eval_time_s']:.1f} | {peak_mb} | "
                   f"{r['mIoU']:.2f} |")
    loader = rows['loader']
    report.add(f"| DataLoader alone | - | {eval_batch} | {loader['num_workers']} | "
               f"{loader['images_per_s']:.3g} | {loader['eval_time_s']:.1f} | - | - |")
    fast, slow = rows['batched_bf16'], rows['per_window_fp32']
    speedup = fast['images_per_s'] / slow['images_per_s']
    diff = abs(rows['batched_fp32']['mIoU'] - slow['mIoU'])
    if diff > MIOU_TOLERANCE:
        report.failures.append('batched vs per-window mIoU')
    report.add('', f"Batched bf16: {fast['images_per_s']:.3g} images/s (target >= "
               f"{TARGETS['images_per_s']:g}: "
               f"{_verdict(fast['images_per_s'], TARGETS['images_per_s'], cuda)}); "
               f"{speedup:.1f}x the batch-1 fp32 per-window loop (target >= "
               f"{TARGETS['speedup']:g}x: {_verdict(speedup, TARGETS['speedup'], cuda)}).", '',
               f'Batched vs per-window fp32 mIoU: |difference| {diff:.2f} '
               f'({"agree" if diff <= MIOU_TOLERANCE else "DISAGREE"}; tolerance '
               f'{MIOU_TOLERANCE}).', '')
    model = report.attempt('model alone', lambda: model_rows(head, configs, image_size, device,
                                                             warmup, reps, peak))
    if model:
        size = next(iter(model.values()))['size']
        report.add(f'The dense logits alone (windows, forwards, synonym merge; no data '
                   f'loading, resizing back or metric) on random {size} images, the resized '
                   f'size: what the model allows.', '',
                   '| path | precision | images/batch | images/s | GFLOP/image | TFLOP/s | MFU |',
                   '|---|---|---|---|---|---|---|')
        for key, label in ROW_LABELS.items():
            r, e = model[key], rows[key]
            report.add(f"| {label} | {e['precision']} | {e['batch_size']} | "
                       f"{r['images_per_s']:.3g} | {r['gflop']:.1f} | {r['tflops']:.3g} | "
                       f"{_pct(r['mfu'])} |")
        report.add('')
    return rows, configs, sets[0]


def ddp_section(report, procs, gpus, cuda, rows, configs, root, out):
    report.add('## 3. DDP evaluation', '')
    if procs < 2:
        reason = 'one GPU' if gpus == 1 else 'no GPU' if not cuda else f'{procs} processes'
        report.add(f'DDP: skipped ({reason}).', '')
        return
    if not rows:
        report.add('DDP: skipped (no single-process row to compare with).', '')
        return
    print(f'gpu-report: DDP evaluation on {procs} processes', flush=True)
    work_dir = out / 'eval' / f'ddp_{procs}'
    cmd = ' '.join(ddp_command(configs['batched_fp32'], procs, root, work_dir)[1:])
    report.add(f'`python {cmd}`', '')
    got = report.attempt('DDP', lambda: ddp_row(configs['batched_fp32'], procs, root, work_dir))
    if got is None:
        return
    row, message = got
    if row is None:
        report.failures.append('DDP')
        report.add(f'DDP: {message}.', '')
        return
    single = rows['batched_fp32']
    diff = abs(float(row['mIoU']) - float(single['mIoU']))
    if diff > MIOU_TOLERANCE:
        report.failures.append('DDP vs single-process mIoU')
    report.add(f"DDP ({message}): mIoU {float(row['mIoU']):.2f} vs {single['mIoU']:.2f} in one "
               f"process ({'match' if diff <= MIOU_TOLERANCE else 'MISMATCH'}), "
               f"{float(row['images_per_s']):.3g} images/s vs {single['images_per_s']:.3g}.", '')


def run_gpu_report(out='work_dirs/gpu_check', device=None, backbone='vit-b16', batch=64,
                   size=224, warmup=5, reps=20, peak_tflops=None, compile_model=False,
                   n_images=1449, image_size=(500, 375), eval_batch=None, workers=None,
                   ddp_procs=None, data_root=None):
    """Run the three sections, write ``out/gpu_report.md``; returns the exit status."""
    wall0 = time.perf_counter()
    device = torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    cuda = device.type == 'cuda'
    if cuda and not torch.cuda.is_available():
        raise ValueError('--device cuda, but CUDA is not available here')
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = _device_name(device)
    peak = peak_tflops or (peak_bf16_tflops(name) if cuda else None)
    gpus = torch.cuda.device_count() if cuda else 0
    report = Report()
    report.add(f'# GPU check: {name}', '',
               f'`ovseg-bench speed --gpu-report` on {name}, torch {torch.__version__} (CUDA '
               f'{torch.version.cuda or "-"}), commit {results.git_commit(REPO)}, '
               f'{results.now()}; {usable_cpus()} CPU cores, {gpus} visible GPU(s).', '',
               f'**All weights are random** (open_clip `{backbone_model(backbone)}` with '
               f'`pretrained=None`): these are speeds; the mIoUs only compare paths with each '
               f'other.', '')
    mfu_section(report, name, backbone, device, batch, size, warmup, reps, peak,
                bool(peak_tflops), compile_model)
    rows, configs, root = eval_section(
        report, out, backbone, device, n_images, image_size, eval_batch or (16 if cuda else 2),
        min(8, usable_cpus()) if workers is None else workers, data_root, warmup, reps, peak)
    ddp_section(report, gpus if ddp_procs is None else ddp_procs, gpus, cuda, rows, configs,
                root, out)
    wall = time.perf_counter() - wall0
    failed = report.failures
    report.add('## Summary', '', f'Wall time {wall / 60:.1f} min (limit {TIME_LIMIT_S // 60} '
               f'min: {"met" if wall <= TIME_LIMIT_S else "MISSED"}). '
               + (f'**Failed: {", ".join(failed)}.**' if failed else
                  'Every measurement ran and every comparison agreed.'), '')
    path = out / 'gpu_report.md'
    path.write_text('\n'.join(report.lines))
    print('\n'.join(report.lines), flush=True)
    print(f'gpu-report: {path}', flush=True)
    return 1 if failed else 0
