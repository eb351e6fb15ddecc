"""``ovseg-bench speed``: FLOPs against hand counts, the naive paths against the fast ones, and
the command end to end on the tiny backbone (random weights, seconds)."""
import csv

import pytest
import torch
import torch.nn.functional as F

from ovseg_bench.backbones._vit import matmul_attention, variant_attention
from ovseg_bench.bench.speed import inputs, report
from ovseg_bench.bench.speed.flops import count_flops, frozen_parameters, peak_bf16_tflops
from ovseg_bench.bench.speed.train_step import TrainerStep
from ovseg_bench.registry import METHODS, load_plugins, names

load_plugins()


def vit_forward_flops(bb, size, batch=1):
    """FLOPs of ``forward_dense`` (standard last block) of an open_clip ViT, from its dims:
    patch convolution, per block q/k/v projections, scores, weighted values, out-projection
    and MLP, then ``ln_post @ proj`` of the class token and of every patch token."""
    w, layers, d, p = bb.width, bb.num_layers, bb.embed_dim, bb.patch_size
    patches = (size // p) ** 2
    tokens = patches + 1
    mlp = bb.model.visual.transformer.resblocks[0].mlp.c_fc.out_features   # hidden width
    conv = 2 * patches * w * 3 * p * p
    block = (2 * tokens * w * 3 * w + 2 * 2 * tokens * tokens * w + 2 * tokens * w * w
             + 2 * 2 * tokens * w * mlp)
    return batch * (conv + layers * block + 2 * tokens * w * d)


def test_count_flops_of_a_linear_layer():
    lin = torch.nn.Linear(48, 20)
    x = torch.randn(7, 48)
    assert count_flops(lambda: lin(x)) == 2 * 7 * 48 * 20
    # backward: the gradient of the input and of the weight, one matmul each
    x.requires_grad_(True)
    assert count_flops(lambda: lin(x).sum().backward()) == 3 * 2 * 7 * 48 * 20


def test_count_flops_of_the_tiny_vit_matches_its_dims(tiny_backbone):
    """Both attention paths of torch are counted: the fused MultiheadAttention kernel (eval,
    no grad) and scaled_dot_product_attention (grad enabled), which the stock counter
    leaves at zero on CPU."""
    x = torch.randn(2, 3, 64, 64)
    expected = vit_forward_flops(tiny_backbone, 64, batch=2)
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
    whole = vit_forward_flops(tiny_backbone, 64) + 2 * patches * tiny_backbone.embed_dim * 5
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
