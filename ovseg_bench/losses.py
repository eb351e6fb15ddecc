"""Contrastive losses shared by the method heads: one differentiable all-gather (and one
without gradient, for rows such as a memory bank's keys), one InfoNCE.

In distributed training every process scores its own rows against the rows of all processes
(CLIP's and SegCLIP's ``dist_collect``): with gradients averaged over processes (DDP), the
gradient is exactly that of the loss over the global batch.
"""
from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F


def world():
    """(rank, world size), (0, 1) when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _GatherRows(torch.autograd.Function):
    """Forward: every rank's rows concatenated in rank order. Backward: the gradient of the
    gathered tensor summed over ranks (all-reduce), this rank's rows returned (each rank's
    loss depends on every rank's rows). One all-reduce, on any backend; torch's
    ``torch.distributed.nn.functional.all_gather`` is deprecated."""

    @staticmethod
    def forward(ctx, x):
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x)
        ctx.rows = (dist.get_rank() * len(x), len(x))
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        dist.all_reduce(grad)
        start, n = ctx.rows
        return grad[start:start + n]


def all_gather_rows(x):
    """``(rows of every rank concatenated, offset of this rank's rows)``, differentiable;
    ``(x, 0)`` when not distributed. Every rank must pass the same number of rows."""
    rank, size = world()
    if size == 1:
        return x, 0
    return _GatherRows.apply(x), rank * len(x)


def gather_rows_no_grad(x):
    """``(rows of x from every rank concatenated in rank order, index of this rank's first
    row)``; no gradient, ranks may hold different row counts. ``(x, 0)`` without a process
    group. (The teacher's class tokens need no gradient, so a plain all_gather is enough.)"""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x, 0
    n = torch.tensor([len(x)], device=x.device)
    sizes = [torch.zeros_like(n) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, n)
    sizes = [int(s.item()) for s in sizes]
    padded = x.new_zeros((max(sizes),) + tuple(x.shape[1:]))
    padded[:len(x)] = x
    parts = [torch.zeros_like(padded) for _ in sizes]
    dist.all_gather(parts, padded.contiguous())
    rows = torch.cat([p[:s] for p, s in zip(parts, sizes)])
    return rows, sum(sizes[:dist.get_rank()])


class Contrast(NamedTuple):
    """An InfoNCE result: ``loss``; ``logits_ab`` (local a rows x all b rows) and
    ``logits_ba`` (local b rows x all a rows); ``target`` (the positive column of each local
    row)."""
    loss: torch.Tensor
    logits_ab: torch.Tensor
    logits_ba: torch.Tensor
    target: torch.Tensor

    def accuracy(self):
        """(a->b, b->a) top-1 accuracies of the local rows, without gradient."""
        with torch.no_grad():
            return tuple((lg.argmax(1) == self.target).float().mean()
                         for lg in (self.logits_ab, self.logits_ba))


def info_nce(a, b, scale, gather=True):
    """Symmetric InfoNCE of row-aligned embeddings ``a``, ``b`` (N,D, L2-normalised by the
    caller): row i of ``a`` and of ``b`` are a positive pair, every other row a negative.

    ``scale * cos`` logits; cross-entropy over the b rows for each a row and over the a rows
    for each b row, averaged. ``gather``: the negatives are the rows of every process
    (:func:`all_gather_rows`); ``False`` uses the local batch only.
    """
    all_a, offset = all_gather_rows(a) if gather else (a, 0)
    all_b, _ = all_gather_rows(b) if gather else (b, 0)
    logits_ab = scale * a @ all_b.t()
    logits_ba = scale * b @ all_a.t()
    target = torch.arange(len(a), device=a.device) + offset
    loss = (F.cross_entropy(logits_ab, target) + F.cross_entropy(logits_ba, target)) / 2
    return Contrast(loss, logits_ab, logits_ba, target)
