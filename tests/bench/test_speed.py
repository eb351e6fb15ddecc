"""``ovseg-bench speed``: FLOPs against hand counts, the naive paths against the fast ones, and
the command end to end on the tiny backbone (random weights, seconds)."""
import argparse
import csv

import pytest
import torch
import torch.nn.functional as F

from ovseg_bench.backbones._vit import matmul_attention, variant_attention
from ovseg_bench.bench.speed import inputs, report
from ovseg_bench.bench.speed.flops import (count_flops, frozen_parameters, peak_bf16_tflops,
                                           vit_dense_forward_flops)
from ovseg_bench.bench.speed.train_step import TrainerStep
from ovseg_bench.registry import METHODS, load_plugins, names

load_plugins()


def test_count_flops_of_a_linear_layer():
    lin = torch.nn.Linear(48, 20)
    x = torch.randn(7, 48)
    assert count_flops(lambda: lin(x)) == 2 * 7 * 48 * 20
    # backward: the gradient of the input and of the weight, one matmul each
    x.requires_grad_(True)
    assert count_flops(lambda: lin(x).sum().backward()) == 3 * 2 * 7 * 48 * 20


def test_count_flops_of_the_tiny_vit_matches_its_dims(tiny_backbone):
    """The counter against the count from the ViT's dims (patch convolution, per block
    q/k/v, scores, weighted values, out-projection and MLP, then the projection of every
    token), on both attention paths of torch: the fused MultiheadAttention kernel (eval, no
    grad) and scaled_dot_product_attention (grad enabled), which the stock counter leaves at
    zero on CPU."""
    x = torch.randn(2, 3, 64, 64)
    expected = vit_dense_forward_flops(tiny_backbone, 64, batch=2)
    with torch.no_grad():
        assert count_flops(lambda: tiny_backbone.forward_dense(x)) == expected
    assert count_flops(lambda: tiny_backbone.forward_dense(x)) == expected


@pytest.mark.parametrize('kind', ['vv', 'csa'])
def test_sdpa_and_matmul_attention_agree(kind, tiny_backbone):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 17, 64, generator=g) for _ in range(3))
    fused = variant_attention(kind, q, k, v, num_heads=4, fused=True)
    naive = variant_attention(kind, q, k, v, num_heads=4, fused=False)
    torch.testing.assert_close(fused, naive, atol=1e-5, rtol=1e-5)
    # the reference itself: softmax of scaled scores, rows summing to 1
    a = torch.randn(2, 5, 8, generator=g)
    ref = F.softmax(a @ a.transpose(-1, -2) / 8 ** 0.5, -1) @ a
    torch.testing.assert_close(matmul_attention(a, a, a), ref)
    # and through the backbone's switch
    x = torch.randn(2, 3, 64, 64, generator=g)
    with torch.no_grad():
        tiny_backbone.fused_attention = False
        try:
            naive_patch = tiny_backbone.forward_dense(x, last_block=kind).patch
        finally:
            tiny_backbone.fused_attention = True
        fused_patch = tiny_backbone.forward_dense(x, last_block=kind).patch
    torch.testing.assert_close(fused_patch, naive_patch, atol=1e-5, rtol=1e-5)


def test_peak_bf16_rates_by_device_name():
    assert peak_bf16_tflops('NVIDIA H200') == 989.0
    assert peak_bf16_tflops('NVIDIA H100 80GB HBM3') == 989.0
    assert peak_bf16_tflops('NVIDIA H100 PCIe') == 756.0
    assert peak_bf16_tflops('NVIDIA A100-SXM4-80GB') == 312.0
    assert peak_bf16_tflops('NVIDIA L40S') == 362.0
    assert peak_bf16_tflops('NVIDIA L40') is None       # not the L4
    assert peak_bf16_tflops('Tesla V100-SXM2-16GB') is None


@pytest.mark.parametrize('method', names(METHODS))
def test_every_method_is_counted_and_trained_on_synthetic_inputs(method):
    """Every registered method: its inference FLOPs are counted (with the parameters frozen,
    as the speed run counts them), and the synthetic batch carries every view a trainable
    one asks for, one step of its real loss changing its weights. Methods that train on
    images and captions alone are timed end to end by the command test."""
    device = torch.device('cpu')
    head, _, pipeline = inputs.build_head(method, 'tiny', device)
    head.eval()
    embeds = inputs.random_class_embeds(3, head.backbone.embed_dim, device)
    images = inputs.synthetic_images(1, 32, device)
    flags = [p.requires_grad for p in head.parameters()]
    with torch.no_grad(), frozen_parameters(head):
        assert count_flops(lambda: head.predict_dense(images, embeds)) > 0
    assert [p.requires_grad for p in head.parameters()] == flags      # restored
    if not (head.trainable and head.train_views):
        return
    step = TrainerStep(method, 'tiny', device, 'fp32')
    batch = inputs.synthetic_train_batch(step.head, 32, 2, pipeline)
    assert set(head.train_views) <= set(batch)
    before = {n: p.detach().clone() for n, p in step.head.named_parameters()
              if p.requires_grad}
    step(batch)
    changed = [n for n, p in step.head.named_parameters() if n in before
               and not torch.equal(before[n], p)]
    assert changed, f'{method}: the training step changed no weight'


def test_speed_command_writes_rows_and_plot(tmp_path, tiny_backbone):
    from ovseg_bench.cli import main
    out = tmp_path / 'speed'
    code = main(['speed', '--methods', 'CLIP', '--backbones', 'tiny', '--sizes', '64',
                 '--warmup', '0', '--reps', '1', '--batch', '1', '--classes', '5',
                 '--dataset', 'none', '--out', str(out)])
    assert code == 0
    with open(out / 'speed.csv', newline='') as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == report.FIELDS
        rows = list(reader)
    cells = {(r['method'], r['mode'], r['path']): r for r in rows}
    assert set(cells) == {
        ('CLIP', 'whole', 'batched'), ('CLIP', 'slide', 'batched'),
        ('CLIP', 'slide', 'per_window'), ('CLIP', 'train', 'default'),
        ('-', 'attention', 'sdpa'), ('-', 'attention', 'matmul'),
        ('-', 'text', 'computed'), ('-', 'text', 'disk_cache'), ('-', 'text', 'memory_cache')}
    for key in [('CLIP', 'whole', 'batched'), ('CLIP', 'slide', 'batched'),
                ('CLIP', 'slide', 'per_window'), ('CLIP', 'train', 'default')]:
        row = cells[key]
        assert float(row['images_per_s']) > 0, key
        assert float(row['tflops']) > 0, key
        assert row['device'].startswith('cpu') and row['torch'] == torch.__version__
        assert row['git_commit'] and row['timestamp']
        assert row['mfu'] == ''        # no peak rate on CPU
        assert float(row['peak_mem_mb']) >= 0
    # CLIP's dense logits: the ViT forward, then the patch-class cosine (5 classes)
    patches = (64 // tiny_backbone.patch_size) ** 2
    whole = (vit_dense_forward_flops(tiny_backbone, 64)
             + 2 * patches * tiny_backbone.embed_dim * 5)
    assert int(cells[('CLIP', 'whole', 'batched')]['flops_per_image']) == whole
    # 3 x 3 windows of 32 px: per-window and batched do the same arithmetic
    slide = cells[('CLIP', 'slide', 'batched')]
    assert slide['note'].startswith('9 windows of 32 px')
    assert slide['flops_per_image'] == cells[('CLIP', 'slide', 'per_window')]['flops_per_image']
    assert int(cells[('CLIP', 'train', 'default')]['flops_per_image']) > 2 * whole
    assert float(cells[('-', 'text', 'computed')]['seconds']) > 0
    assert (out / 'speed.png').stat().st_size > 10_000

    # A second run adds its rows and replaces the ones with the same key.
    assert main(['speed', '--methods', 'MaskCLIP', '--backbones', 'tiny', '--sizes', '64',
                 '--modes', 'whole,train', '--warmup', '0', '--reps', '1', '--batch', '1',
                 '--no-compare', '--dataset', 'none', '--out', str(out)]) == 0
    with open(out / 'speed.csv', newline='') as f:
        again = list(csv.DictReader(f))
    assert len(again) == len(rows) + 2
    free = [r for r in again if r['method'] == 'MaskCLIP' and r['mode'] == 'train']
    assert free[0]['images_per_s'] == '' and free[0]['note'] == 'training-free'


def _table(text, header):
    """The rows (lists of cells) of the Markdown table whose header starts with ``header``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith('|'):
            break
        rows.append([c.strip() for c in line.strip('|').split('|')])
    return rows


def _distributed_test_cli():
    """Whether ``ovseg-bench test`` takes ``--launcher`` (distributed evaluation)."""
    from ovseg_bench.cli import build_parser
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return any('--launcher' in a.option_strings for a in sub.choices['test']._actions)


def test_gpu_report_reduced_on_cpu(tmp_path, tiny_backbone):
    """The GPU check's code paths on CPU: the tiny CLIP's bf16 forward with a given peak (MFU
    arithmetic), SCLIP's preset on two synthetic images batched and per window, the DDP
    row on 2 gloo processes where ``test`` is distributed (skipped otherwise), one report."""
    from ovseg_bench.cli import main
    out = tmp_path / 'gpu'
    ddp = _distributed_test_cli()
    assert main(['speed', '--gpu-report', '--device', 'cpu', '--backbones', 'tiny',
                 '--batch', '2', '--sizes', '64', '--warmup', '0', '--reps', '1',
                 '--peak-tflops', '0.5', '--eval-images', '2', '--eval-size', '64x48',
                 '--eval-batch', '2', '--eval-workers', '0', '--out', str(out),
                 *(['--ddp-procs', '2'] if ddp else [])]) == 0
    text = (out / 'gpu_report.md').read_text()
    assert '**All weights are random**' in text
    assert 'Peak: 0.5 TFLOP/s dense bf16 (`--peak-tflops`)' in text
    [mfu] = _table(text, '| path | ms / batch')
    path, ms, ips, counted, dims, tflops, share = mfu
    assert path == 'eager'
    gflop = vit_dense_forward_flops(tiny_backbone, 64) / 1e9
    assert float(counted) == float(dims) == pytest.approx(gflop, abs=1e-3)
    assert float(ips) == pytest.approx(2 / (float(ms) / 1e3), rel=0.01)
    assert float(tflops) == pytest.approx(float(ips) * gflop / 1e3, rel=0.01)
    assert float(share.rstrip('%')) == pytest.approx(100 * float(tflops) / 0.5, abs=0.1)
    evals = {(r[0], r[1]): r for r in _table(text, '| path | precision')}
    assert set(evals) == {('batched windows', 'bf16'), ('batched windows', 'fp32'),
                          ('per-window loop', 'fp32'), ('DataLoader alone', '-')}
    assert evals['per-window loop', 'fp32'][2] == '1'          # batch 1
    for row in evals.values():
        assert float(row[4]) > 0                                 # images/s
    assert evals['batched windows', 'fp32'][7] == evals['per-window loop', 'fp32'][7]
    # the dense logits alone: same arithmetic batched and per window, MFU over the given peak
    model = {(r[0], r[1]): r for r in _table(text, '| path | precision | images/batch | images/s')}
    assert set(model) == set(evals) - {('DataLoader alone', '-')}
    assert model['batched windows', 'fp32'][4] == model['per-window loop', 'fp32'][4]
    for row in model.values():
        assert float(row[3]) > 0 and float(row[4]) > 0
        assert float(row[6].rstrip('%')) == pytest.approx(100 * float(row[5]) / 0.5, abs=0.1)
    assert 'x the batch-1 fp32 per-window loop' in text
    assert '(agree; tolerance' in text
    if ddp:
        assert 'processes' in text and '(match)' in text
    else:
        assert 'DDP: skipped (no GPU).' in text
    assert 'Every measurement ran and every comparison agreed.' in text
    for name in ('batched_bf16', 'batched_fp32', 'per_window_fp32'):
        cfg = (out / 'configs' / f'gpu_check_{name}.py').read_text()
        assert 'pretrained=None' in cfg and 'sclip_vit_b16.py' in cfg


def test_gpu_report_mfu_without_a_peak_is_na(tiny_backbone):
    from ovseg_bench.bench.speed.gpu_check import mfu_rows
    [row] = mfu_rows('tiny', torch.device('cpu'), 1, 32, 0, 1, None, False)
    assert row['mfu'] is None and row['tflops'] > 0
    assert row['counted'] == row['analytic']


def test_gpu_report_ddp_command_is_the_test_cli_under_torchrun(tmp_path):
    from ovseg_bench.bench.speed.gpu_check import ddp_command
    cmd = ddp_command(tmp_path / 'c.py', 4, tmp_path / 'data', tmp_path / 'w')
    assert cmd[1:4] == ['-m', 'torch.distributed.run', '--standalone']
    assert '--nproc_per_node=4' in cmd
    i = cmd.index('ovseg_bench.cli')
    assert cmd[i + 1:i + 3] == ['test', str(tmp_path / 'c.py')]
    assert cmd[cmd.index('--launcher') + 1] == 'pytorch'
