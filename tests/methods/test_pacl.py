"""PACL: frozen encoders, the batched compatibility, patch weighting, dense/classify shapes."""
import hashlib
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ovseg_bench_methods.pacl import PACL, ResidualEmbedder, pacl_compatibility
from ovseg_bench.backbones.base import Backbone, DenseFeatures


class FakeBackbone(Backbone):
    """A few-parameter stand-in for a CLIP backbone (with dropout, to catch train mode)."""
    embed_dim, width, num_layers, patch_size, image_size = 16, 24, 1, 8, 32

    def __init__(self):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, self.width, 8, 8)
        self.block = nn.Linear(self.width, self.width)
        self.drop = nn.Dropout(0.5)
        self.proj = nn.Linear(self.width, self.embed_dim)
        self.words = nn.Embedding(97, self.width)
        self.text_proj = nn.Linear(self.width, self.embed_dim)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def tokenize(self, texts):
        ids = [[sum(map(ord, w)) % 96 + 1 for w in t.split()][:8] for t in texts]
        return torch.tensor([i + [0] * (8 - len(i)) for i in ids])

    def encode_text(self, tokens):
        mask = (tokens > 0).float()[..., None]
        x = (self.words(tokens) * mask).sum(1) / mask.sum(1).clamp_min(1)
        return self.text_proj(x)

    def embed(self, images):
        x = self.patch_embed(images)
        h, w = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        return torch.cat([x.mean(1, keepdim=True), x], 1), (h, w)

    def run_blocks(self, x, start=0, end=None):
        return x + self.drop(F.gelu(self.block(x)))

    def project(self, x):
        return self.proj(x)

    def pool(self, x):
        return self.proj(x[:, 0])

    def forward_dense(self, images, layers=(), last_block='std'):
        x, (h, w) = self.embed(images)
        tokens = self.run_blocks(x)
        hidden = {1: tokens[:, 1:].unflatten(1, (h, w))} if 1 in layers else {}
        x = self.project(tokens)
        return DenseFeatures(patch=x[:, 1:].unflatten(1, (h, w)), cls=x[:, 0], hidden=hidden)

    @property
    def logit_scale(self):
        return self.log_scale.exp()

    def fingerprint(self):
        digest = hashlib.sha1()
        for p in list(self.words.parameters()) + list(self.text_proj.parameters()):
            digest.update(p.detach().numpy().tobytes())
        return digest.hexdigest()[:12]


def batch(b=4):
    torch.manual_seed(1)
    return dict(images=torch.randn(b, 3, 32, 32),
                captions=[f'a {c} shape on grass' for c in ('red', 'blue', 'green', 'pink')][:b])


def naive_phi(patch, text, temperature=1.0):
    """One (image, text) pair at a time, straight from the paper's formula."""
    out = torch.zeros(len(patch), len(text), dtype=patch.dtype)
    for b in range(len(patch)):
        for t in range(len(text)):
            sims = torch.stack([F.cosine_similarity(patch[b, n], text[t], dim=0)
                                for n in range(patch.shape[1])])
            a = torch.softmax(sims / temperature, 0)
            pooled = (a[:, None] * patch[b]).sum(0)
            out[b, t] = F.cosine_similarity(pooled, text[t], dim=0)
    return out


@pytest.mark.parametrize('init,embed_input', [('identity', 'joint'), ('random', 'tokens')])
def test_clip_encoders_get_no_gradient_and_stay_bit_identical(init, embed_input):
    torch.manual_seed(0)
    backbone = FakeBackbone()
    head = PACL(backbone, init=init, embed_input=embed_input)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    head.train()
    assert not backbone.training and not backbone.drop.training
    assert head.vision_embedder.training
    trainable = [p for p in head.parameters() if p.requires_grad]
    assert trainable and all(not p.requires_grad for p in backbone.parameters())
    embedders_before = [p.detach().clone() for p in trainable]
    opt = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=0.1)
    for _ in range(2):
        out = head.forward_train(batch())
        opt.zero_grad()
        sum(v for k, v in out.items() if 'loss' in k).backward()
        assert all(p.grad is None for p in backbone.parameters())
        opt.step()
    for k, v in backbone.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert any(not torch.equal(p, q) for p, q in zip(trainable, embedders_before))


def test_batched_compatibility_equals_naive_pairs():
    torch.manual_seed(0)
    patch = torch.randn(3, 5, 4, dtype=torch.float64)
    text = torch.randn(4, 4, dtype=torch.float64)
    for temperature in (1.0, 0.1):
        ref = naive_phi(patch, text, temperature)
        assert torch.allclose(pacl_compatibility(patch, text, temperature), ref, atol=1e-10)
        assert torch.allclose(pacl_compatibility(patch, text, temperature, text_chunk=3), ref,
                              atol=1e-10)


def test_chunked_compatibility_has_the_same_gradients():
    grads = []
    for chunk in (None, 2):
        gen = torch.Generator().manual_seed(0)
        patch = torch.randn(3, 6, 5, dtype=torch.float64, generator=gen).requires_grad_()
        text = torch.randn(5, 5, dtype=torch.float64, generator=gen).requires_grad_()
        (pacl_compatibility(patch, text, 0.5, text_chunk=chunk) ** 2).sum().backward()
        grads.append((patch.grad, text.grad))
    assert torch.allclose(grads[0][0], grads[1][0]) and torch.allclose(grads[0][1], grads[1][1])


@pytest.mark.parametrize('temperature', [1.0, 0.1, 0.01])
def test_planted_patch_is_found(temperature):
    """One patch equal to the caption embedding among random ones: phi -> 1 as the patch
    temperature -> 0 (the weighting concentrates on it), and predict_dense ranks it first."""
    g = torch.Generator().manual_seed(0)
    text = F.normalize(torch.randn(1, 16, generator=g), dim=-1)
    patch = torch.randn(1, 36, 16, generator=g)
    patch[0, 17] = 3 * text[0]
    phi = pacl_compatibility(patch, text, temperature)[0, 0].item()
    if temperature == 0.01:
        assert phi == pytest.approx(1.0, abs=1e-4)
    phis = [pacl_compatibility(patch, text, t)[0, 0].item() for t in (1.0, 0.1, 0.01)]
    assert phis[0] < phis[1] < phis[2] <= 1 + 1e-6
    head = PACL(FakeBackbone(), embed_input='joint').eval()
    head.patch_embeddings = lambda images: patch.reshape(1, 6, 6, 16)
    dense = head.predict_dense(torch.zeros(1, 3, 48, 48), text)
    assert dense.flatten().argmax().item() == 17


def test_classify_is_the_compatibility_with_class_embeddings():
    torch.manual_seed(0)
    head = PACL(FakeBackbone(), patch_temperature=0.3).eval()
    classes = F.normalize(torch.randn(5, 16), dim=-1)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        patch = head.patch_embeddings(images).flatten(1, 2)
        assert torch.allclose(head.classify(images, classes),
                              naive_phi(patch, classes, 0.3), atol=1e-5)


def test_compatibility_is_fp32_under_autocast():
    torch.manual_seed(0)
    head = PACL(FakeBackbone())
    patch, text = torch.randn(2, 9, 16), torch.randn(3, 16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        phi = head.compatibility(patch, text)
    assert phi.dtype == torch.float32
    assert torch.allclose(phi, pacl_compatibility(patch, text), atol=1e-6)


def test_paper_embedder_reads_the_tokens_before_the_projection():
    backbone = FakeBackbone()
    head = PACL(backbone)                               # embed_input='tokens' (the paper's)
    assert head.vision_embedder.linear.in_features == backbone.width       # 24 -> 16
    assert head.vision_embedder.linear.out_features == backbone.embed_dim
    assert head.patch_embeddings(torch.randn(1, 3, 32, 32)).shape == (1, 4, 4, 16)
    with pytest.raises(ValueError, match="needs embed_input='joint'"):
        PACL(backbone, last_block='vv')


def test_predict_dense_and_classify_shapes():
    torch.manual_seed(0)
    head = PACL(FakeBackbone(), init='random').eval()
    classes = F.normalize(head.encode_text(head.backbone.tokenize(['a', 'b c', 'd', 'e', 'f'])),
                          dim=-1)
    images = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        dense = head.predict_dense(images, classes)
        scores = head.classify(images, classes)
    assert dense.shape == (2, 5, 4, 6) and dense.abs().max() <= 1 + 1e-5
    assert scores.shape == (2, 5) and scores.abs().max() <= 1 + 1e-5


def test_identity_init_is_frozen_clip():
    torch.manual_seed(0)
    backbone = FakeBackbone().eval()
    head = PACL(backbone, embed_input='joint')          # init defaults to 'identity' there
    tokens = backbone.tokenize(['a red star', 'grass'])
    assert torch.allclose(head.encode_text(tokens), backbone.encode_text(tokens))
    classes = F.normalize(backbone.encode_text(tokens), dim=-1)
    images = torch.randn(2, 3, 32, 32)
    clip = F.normalize(backbone.forward_dense(images).patch, dim=-1) @ classes.t()
    assert torch.allclose(head.predict_dense(images, classes), clip.permute(0, 3, 1, 2),
                          atol=1e-6)


def test_text_fingerprint_follows_the_text_embedder():
    head = PACL(FakeBackbone(), text_embedder='residual')
    first = head.text_fingerprint()
    assert head.text_fingerprint() == first
    with torch.no_grad():
        head.text_embedder.mlp[-1].bias.add_(0.1)
    second = head.text_fingerprint()
    assert second != first
    with torch.no_grad():   # the vision embedder does not change text embeddings
        head.vision_embedder.mlp[-1].bias.add_(0.1)
    assert head.text_fingerprint() == second


def test_training_lowers_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    head = PACL(FakeBackbone(), init='random').train()
    opt = torch.optim.Adam([p for p in head.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(30):
        loss = head.forward_train(batch())['loss_pacl']
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_options_are_checked():
    with pytest.raises(ValueError, match='text_embedder'):
        PACL(FakeBackbone(), text_embedder='mlp')
    with pytest.raises(ValueError, match='last_block'):
        PACL(FakeBackbone(), last_block='nope')
    with pytest.raises(ValueError, match='identity'):
        ResidualEmbedder(4, 3, init='identity')
    head = PACL(FakeBackbone(), text_embedder='identity', learn_logit_scale=False)
    assert all(n.startswith('vision_embedder') for n, p in head.named_parameters()
               if p.requires_grad)


def test_real_tiny_clip_stays_bit_identical_after_a_training_step():
    open_clip_backbone = pytest.importorskip('ovseg_bench.backbones.open_clip')
    torch.manual_seed(0)
    backbone = open_clip_backbone.OpenCLIPBackbone('ovseg-tiny')
    head = PACL(backbone).train()
    assert not backbone.training
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    opt = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=0.1)
    out = head.forward_train(dict(images=torch.randn(3, 3, 64, 64),
                                  captions=['a red star', 'green grass', 'a striped square']))
    out['loss_pacl'].backward()
    assert all(p.grad is None for p in backbone.parameters())
    opt.step()
    assert all(torch.equal(v, before[k]) for k, v in backbone.state_dict().items())
    with torch.no_grad():
        classes = F.normalize(head.encode_text(backbone.tokenize(['star', 'grass'])), dim=-1)
        assert head.predict_dense(torch.randn(1, 3, 64, 96), classes).shape == (1, 2, 8, 12)


def _distributed_worker(rank, world, port, queue):
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                            world_size=world)
    try:
        torch.manual_seed(0)
        head = PACL(FakeBackbone(), init='random').train()
        full = batch()
        b = len(full['captions']) // world
        part = dict(images=full['images'][rank * b:(rank + 1) * b],
                    captions=full['captions'][rank * b:(rank + 1) * b])
        out = head.forward_train(part)
        out['loss_pacl'].backward()
        grads = []
        for p in head.parameters():
            if p.requires_grad:
                dist.all_reduce(p.grad)          # what DDP does: average over processes
                grads.append(p.grad / world)
        loss = out['loss_pacl'].detach().clone()
        dist.all_reduce(loss)
        if rank == 0:
            queue.put((loss.item() / world, [g.tolist() for g in grads]))
    finally:
        dist.destroy_process_group()


def test_distributed_gather_gives_the_global_batch_gradient():
    import socket
    import torch.multiprocessing as mp
    torch.manual_seed(0)
    head = PACL(FakeBackbone(), init='random').train()
    out = head.forward_train(batch())
    out['loss_pacl'].backward()
    ref = [p.grad for p in head.parameters() if p.requires_grad]
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    queue = mp.get_context('fork').SimpleQueue()
    mp.start_processes(_distributed_worker, args=(2, port, queue), nprocs=2, join=True,
                       start_method='fork')
    loss, grads = queue.get()
    assert loss == pytest.approx(out['loss_pacl'].item(), rel=1e-5)
    for g, r in zip(grads, ref):
        assert torch.allclose(torch.tensor(g), r, atol=1e-6)
