"""FLOPs of a call (``torch.utils.flop_counter`` plus the two kernels it misses), a ViT's
forward counted from its dimensions, and the devices' dense bf16 peaks that MFU divides by.

FLOPs are 2 x the multiply-adds of matmuls, convolutions and attention; element-wise work is
not counted.
"""
import contextlib
import re

import torch
from torch.utils.flop_counter import (FlopCounterMode, sdpa_backward_flop_count,
                                      sdpa_flop_count)

# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s from NVIDIA's datasheets, matched as
# whole words in the device name, most specific first.
PEAK_BF16_TFLOPS = (('H200', 989.0), ('H100 NVL', 835.0), ('H100 PCIe', 756.0),
                    ('H100', 989.0), ('A100', 312.0), ('L40S', 362.0), ('L4', 121.0))


def _native_mha_flops(query, key, value, embed_dim, num_head, *args, out_shape=None,
                      **kwargs):
    """torch's fused ``nn.MultiheadAttention`` inference kernel (batch first): q/k/v
    in-projections, scores, weighted values and the out-projection."""
    b, tq, e = query
    tk = key[1]
    projections = 2 * b * tq * e * e + 2 * 2 * b * tk * e * e + 2 * b * tq * e * e
    return projections + 2 * 2 * b * tq * tk * e


def _cpu_sdpa_flops(query, key, value, *args, out_shape=None, **kwargs):
    return sdpa_flop_count(query, key, value)


def _cpu_sdpa_backward_flops(grad_out, query, key, value, *args, out_shape=None, **kwargs):
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
    with FlopCounterMode(display=False, custom_mapping=EXTRA_FLOP_FORMULAS) as counter:
        fn()
    return counter.get_total_flops()


def vit_dense_forward_flops(backbone, size, batch=1):
    """FLOPs of ``backbone.forward_dense`` (standard last block) on ``batch`` S x S images,
    from the ViT's dimensions: the patch convolution; per block the q/k/v projections, the
    scores, the weighted values, the out-projection and the MLP; then ``ln_post @ proj`` of
    every token (the class token and each patch)."""
    w, layers, d, p = backbone.width, backbone.num_layers, backbone.embed_dim, \
        backbone.patch_size
    mlp = backbone.model.visual.transformer.resblocks[0].mlp.c_fc.out_features  # hidden width
    patches = (size // p) ** 2
    tokens = patches + 1
    conv = 2 * patches * w * 3 * p * p
    block = (2 * tokens * w * 3 * w + 2 * 2 * tokens * tokens * w + 2 * tokens * w * w
             + 2 * 2 * tokens * w * mlp)
    return batch * (conv + layers * block + 2 * tokens * w * d)


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
