"""The shared contrastive losses: InfoNCE, and its all-gather across processes (gloo)."""
import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from ovseg_bench import losses


def _pairs(n=4, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (F.normalize(torch.randn(n, d, generator=g), dim=-1),
            F.normalize(torch.randn(n, d, generator=g), dim=-1))


def test_info_nce_is_symmetric_cross_entropy():
    a, b = _pairs()
    out = losses.info_nce(a, b, 10.0)
    logits = 10.0 * a @ b.t()
    # each row's cross-entropy written out: -log softmax at the diagonal
    i2t = -(logits.diag() - logits.logsumexp(1)).mean()
    t2i = -(logits.diag() - logits.logsumexp(0)).mean()
    assert torch.allclose(out.loss, (i2t + t2i) / 2, atol=1e-6)
    assert torch.equal(out.target, torch.arange(4))
    assert torch.allclose(out.logits_ba, logits.t())


def test_info_nce_perfect_pairs_and_accuracy():
    a, _ = _pairs()
    eye = F.normalize(torch.eye(4), dim=-1)
    out = losses.info_nce(eye, eye, 100.0)
    assert out.loss.item() < 1e-6
    assert [x.item() for x in out.accuracy()] == [1.0, 1.0]
    # shuffled partners: chance-level accuracy is 0, loss near log(4) at scale 0
    out = losses.info_nce(a, a.flip(0), 0.0)
    assert math.isclose(out.loss.item(), math.log(4), rel_tol=1e-6)


def test_gather_is_identity_without_processes():
    a, _ = _pairs()
    gathered, offset = losses.all_gather_rows(a)
    assert gathered is a and offset == 0


def _worker(rank, init, queue):
    dist.init_process_group('gloo', init_method=init, rank=rank, world_size=2)
    try:
        a, b = _pairs()
        mine = slice(2 * rank, 2 * rank + 2)
        a_local = a[mine].clone().requires_grad_()
        b_local = b[mine].clone().requires_grad_()
        # a transposed view as the a side, so that the incoming gradient of the gather is
        # not contiguous (the case a gather must not get wrong)
        out = losses.info_nce(a_local.t().contiguous().t(), b_local, 7.0)
        out.loss.backward()
        queue.put((rank, out.loss.item(), a_local.grad.tolist(), b_local.grad.tolist(),
                   out.target.tolist()))
    finally:
        dist.destroy_process_group()


def test_info_nce_two_gloo_processes_equal_one_process(tmp_path):
    """2 processes x batch 2 == 1 process x batch 4: the mean of the local losses is the
    global loss, and each process's input gradient, averaged over processes as DDP does,
    is the global loss's gradient of those rows."""
    a, b = _pairs()
    a.requires_grad_()
    b.requires_grad_()
    ref = losses.info_nce(a, b, 7.0)
    ref.loss.backward()

    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    init = f'file://{tmp_path / "store"}'
    procs = [ctx.Process(target=_worker, args=(r, init, queue)) for r in range(2)]
    for p in procs:
        p.start()
    try:
        results = sorted((queue.get(timeout=120) for _ in procs), key=lambda r: r[0])
    finally:
        for p in procs:
            p.join(timeout=60)
    assert all(p.exitcode == 0 for p in procs)
    assert [r[4] for r in results] == [[0, 1], [2, 3]]          # labels offset by B * rank
    loss = sum(r[1] for r in results) / 2
    grad_a = torch.tensor([g for r in results for g in r[2]]) / 2
    grad_b = torch.tensor([g for r in results for g in r[3]]) / 2
    assert loss == pytest.approx(ref.loss.item(), abs=1e-6)
    assert torch.allclose(grad_a, a.grad, atol=1e-6)
    assert torch.allclose(grad_b, b.grad, atol=1e-6)
