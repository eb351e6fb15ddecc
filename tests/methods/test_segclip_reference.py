"""SegCLIP against re-derivations of the authors' arithmetic (ArrowLuo/SegCLIP,
modules/module_seg_vit.py and modules/modeling.py), on shared random weights.

The reference modules below are written from the authors' forward passes (sequence-first
attention, their layer layout and names); our modules' weights are copied into them.
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ovseg_bench_methods.segclip import (MaskedDecoder, SegCLIP, SemanticGroup,
                                         straight_through_gumbel)


class RefQuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class RefCrossBlock(nn.Module):
    """Centers attend to [centers; patches] (keys layer-normalised), then a QuickGELU MLP."""

    def __init__(self, d, heads):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads)          # sequence-first
        self.ln_x, self.ln_k, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.c_fc, self.gelu, self.c_proj = nn.Linear(d, 4 * d), RefQuickGELU(), \
            nn.Linear(4 * d, d)

    def forward(self, q, k):
        q = q.permute(1, 0, 2)
        k = k.permute(1, 0, 2)
        kn = self.ln_k(k)
        q = q + self.attn(self.ln_x(q), kn, kn, need_weights=False)[0]
        q = q + self.c_proj(self.gelu(self.c_fc(self.ln_2(q))))
        return q.permute(1, 0, 2)


class RefSemanticLearner(nn.Module):
    """The authors' semantic learner: returns (outputs, hard_attn, soft_attn), attentions
    B,M,L (centers first), eval mode only (no Gumbel noise)."""

    def __init__(self, d, tokens, heads, cross):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.semantic_center = nn.Parameter(torch.zeros(tokens, d))
        self.cross_att = nn.ModuleList(RefCrossBlock(d, heads) for _ in range(cross))
        self.cross_ln = nn.LayerNorm(d)
        self.k_conv = nn.Conv1d(d, d, 1, groups=heads, bias=False)
        self.k_ln = nn.LayerNorm(d)
        self.v_conv = nn.Conv1d(d, d, 1, groups=heads, bias=False)
        self.o_ln = nn.LayerNorm(d)
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, inputs):
        feat = self.norm(inputs).permute(0, 2, 1)                        # B,C,L
        q = self.semantic_center.unsqueeze(0).repeat(len(inputs), 1, 1)
        for blk in self.cross_att:
            q = blk(q, torch.cat([q, inputs], dim=1))
        q = self.cross_ln(q)
        k = self.k_ln(self.k_conv(feat).permute(0, 2, 1))
        v = self.v_conv(feat).permute(0, 2, 1)
        attn = torch.einsum('bsi,bdi->bsd', q, k)                        # B,M,L
        soft = F.softmax(attn, dim=1)
        hard = torch.zeros_like(soft).scatter_(1, soft.argmax(1, keepdim=True), 1.0)
        out = torch.einsum('bsi,bid->bsd', hard, v)
        out = out / hard.sum(-1).unsqueeze(-1).clamp_min(1.0)
        x = self.o_ln(q + out)
        out = self.fc2(F.gelu(self.fc1(x)))
        return RefQuickGELU()(out), hard, soft


def _copy_into_reference(ours, ref):
    m = {'semantic_center': ours.centers, 'norm': ours.norm_patches,
         'cross_ln': ours.norm_centers, 'k_conv': ours.key, 'k_ln': ours.norm_key,
         'v_conv': ours.value, 'o_ln': ours.update[0], 'fc1': ours.update[1][0],
         'fc2': ours.update[1][2]}
    with torch.no_grad():
        for name, src in m.items():
            dst = getattr(ref, name)
            if isinstance(src, nn.Parameter):
                dst.copy_(src)
            else:
                dst.load_state_dict(src.state_dict())
        for blk, rb in zip(ours.cross, ref.cross_att):
            rb.attn.load_state_dict(blk.attn.state_dict())
            rb.ln_x.load_state_dict(blk.norm_q.state_dict())
            rb.ln_k.load_state_dict(blk.norm_kv.state_dict())
            rb.ln_2.load_state_dict(blk.norm_mlp.state_dict())
            rb.c_fc.load_state_dict(blk.mlp[0].state_dict())
            rb.c_proj.load_state_dict(blk.mlp[2].state_dict())


def _randomise(module, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)


def test_group_module_equals_the_authors_semantic_learner():
    d, m, heads = 32, 8, 4
    ours = SemanticGroup(d, m, num_heads=heads, cross_layers=2).eval()
    _randomise(ours, 0)
    ref = RefSemanticLearner(d, m, heads, 2).eval()
    _copy_into_reference(ours, ref)
    x = torch.randn(3, 49, d, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = ours(x)
        want, hard, soft = ref(x)
    assert torch.allclose(out['centers'], want, atol=1e-5)
    assert torch.allclose(out['soft'], soft.transpose(1, 2), atol=1e-6)
    assert torch.equal(out['hard'], hard.transpose(1, 2))


def test_superpixel_kl_equals_the_authors_kl_div_form():
    g = torch.Generator().manual_seed(2)
    b, side, m = 2, 6, 8
    assign = F.one_hot(torch.randint(0, m, (b, side * side), generator=g), m).float()
    assign = assign + 0.1 * torch.rand(assign.shape, generator=g)   # any B,L,M input
    ids = torch.randint(0, 5, (b, side, side), generator=g)
    # the authors: same-superpixel mask, mean assignment, F.kl_div both ways, / B*L*M
    seg = ids.view(b, -1)
    same = (seg.unsqueeze(-1) - seg.unsqueeze(-2) == 0).float()
    mean = torch.einsum('bgl,blc->bgc', same, assign) / same.sum(-1, keepdim=True).clamp_min(1)
    coef = assign.numel()
    kl1 = F.kl_div(F.log_softmax(assign, -1), F.softmax(mean, -1), reduction='sum') / coef
    kl2 = F.kl_div(F.log_softmax(mean, -1), F.softmax(assign, -1), reduction='sum') / coef
    want = (kl1 + kl2) / 2
    assert SegCLIP.superpixel_kl(assign, ids).item() == pytest.approx(want.item(), abs=1e-6)


def test_rebuild_equals_the_authors_reconstruct_layer():
    g = torch.Generator().manual_seed(3)
    dec = MaskedDecoder(32, 8, patch_size=8, mid_layers=1, decoder_layers=1)
    _randomise(dec, 4)
    centers = torch.randn(2, 8, 32, generator=g)
    attn = torch.rand(2, 8, 20, generator=g)                  # the authors' B,M,L layout
    # the authors: attn -> B,L,M, Linear over M, einsum with the B,M,H inputs, QuickGELU
    mixed = F.linear(attn.permute(0, 2, 1), dec.mix.weight, dec.mix.bias)
    want = RefQuickGELU()(torch.einsum('bdh,bmd->bmh', centers, mixed))
    with torch.no_grad():
        got = dec.rebuild(centers, attn.transpose(1, 2))
    assert torch.allclose(got, want, atol=1e-5)


def test_straight_through_gradient_is_the_soft_gumbel_softmax_gradient():
    logits = torch.randn(3, 10, 8, generator=torch.Generator().manual_seed(5),
                         requires_grad=True)
    upstream = torch.randn(3, 10, 8, generator=torch.Generator().manual_seed(6))
    torch.manual_seed(7)
    hard = straight_through_gumbel(logits, 0.9, dim=-1)
    (hard * upstream).sum().backward()
    ours = logits.grad.clone()
    logits.grad = None
    torch.manual_seed(7)                                     # the same Gumbel noise
    u = torch.rand_like(logits).clamp_(1e-9, 1 - 1e-9)
    soft = ((logits - torch.log(-torch.log(u))) / 0.9).softmax(-1)
    assert torch.equal(hard.detach(),
                       F.one_hot(soft.argmax(-1), 8).float())   # forward: the one-hot
    (soft * upstream).sum().backward()
    assert torch.allclose(ours, logits.grad, atol=1e-7)
    # ... which is also the authors' y_hard - y_soft.detach() + y_soft
    logits.grad = None
    soft = ((logits - torch.log(-torch.log(u))) / 0.9).softmax(-1)
    y = F.one_hot(soft.argmax(-1), 8).float() - soft.detach() + soft
    (y * upstream).sum().backward()
    assert torch.allclose(ours, logits.grad, atol=1e-7)
