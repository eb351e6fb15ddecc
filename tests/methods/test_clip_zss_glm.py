"""CLIP-ZSS's global learning module: the paper's attention, pooled features pulled to their
own class token, a memory bank without same-image negatives that survives save and resume."""
import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ovseg_bench_methods.clip_zss import class_token_attention, masked_info_nce
from ovseg_bench.data.zero_shot import PackImageInfo
from clip_zss_world import backbone, batch_of, make_head, scene  # noqa: F401 (backbone: a fixture)


# ---------------------------------------------------------------- GLM
def test_glm_attention_is_the_papers_formula_on_a_hand_example():
    """W = Softmax(S R / sqrt(C)), C = 4: S R = [4, 0, -4] / 2 = [2, 0, -2]."""
    s = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    r = torch.tensor([[[1.0, 1.0, 1.0, 1.0], [1.0, -1.0, 1.0, -1.0], [-1.0, -1.0, -1.0, -1.0]]])
    e = [math.exp(2), 1.0, math.exp(-2)]
    want = torch.tensor([[v / sum(e) for v in e]])
    assert torch.allclose(class_token_attention(s, r), want)


def test_glm_pulls_pooled_features_to_their_own_class_token(backbone):
    head = make_head(backbone, use_plm=False, queue_size=0)
    cls = F.normalize(torch.randn(3, backbone.embed_dim), dim=-1) * 5
    aligned = cls[:, :, None, None].expand(-1, -1, 4, 4)              # every patch = its cls
    shuffled = cls[[1, 2, 0], :, None, None].expand(-1, -1, 4, 4)
    ids = torch.arange(3)
    good = head._global_learning(aligned, cls, ids)
    bad = head._global_learning(shuffled, cls, ids)
    assert good['loss_glm'] < bad['loss_glm']
    assert good['glm_acc'] == 1 and bad['glm_acc'] == 0


def test_no_key_of_the_same_image_is_ever_a_negative(backbone):
    """A bank holding other crops of the batch's images (and a batch holding one image twice):
    those keys get no score, and the loss is InfoNCE over the other images' keys only."""
    head = make_head(backbone, use_plm=False, queue_size=8)
    d = backbone.embed_dim
    g = torch.Generator().manual_seed(3)
    for ids in ([7, 8, 9], [7, 10, 8]):                   # image 7 twice, 8 twice, in the bank
        head.bank.push(F.normalize(torch.randn(3, d, generator=g), dim=-1), torch.tensor(ids))
    raw = torch.randn(3, d, 4, 4, generator=g)
    cls = torch.randn(3, d, generator=g)
    ids = torch.tensor([7, 11, 7])                        # the batch: image 7 twice
    bank_keys, bank_ids = (t.clone() for t in head.bank.contents())
    out = head._global_learning(raw, cls, ids)
    # the reference: per query, positive + keys of other images, plain cross-entropy
    f = raw.flatten(2).transpose(1, 2)
    w = (torch.einsum('bc,bnc->bn', cls, f) / math.sqrt(d)).softmax(1)
    pooled = F.normalize(torch.einsum('bn,bnd->bd', w, f), dim=-1)
    keys = torch.cat([F.normalize(cls, dim=-1), bank_keys])
    key_ids = torch.cat([ids, bank_ids])
    want = []
    for i in range(3):
        others = [j for j in range(len(keys)) if key_ids[j] != ids[i]]
        logits = pooled[i] @ keys[[i] + others].t() / 0.07
        want.append(-logits.log_softmax(0)[0])
    assert out['loss_glm'] == pytest.approx(float(torch.stack(want).mean()), rel=1e-5)
    # the masked rows: query 0 (image 7) scores neither query 2's key nor the bank's 7s
    _, logits = masked_info_nce(pooled, keys, key_ids, ids, torch.arange(3), 0.07)
    same = (key_ids[None] == ids[:, None]) & ~F.one_hot(torch.arange(3), len(keys)).bool()
    assert same.sum() == 6 and torch.isinf(logits[same]).all()
    assert torch.isfinite(logits[~same]).all()


def test_the_memory_bank_survives_save_and_resume(backbone):
    """Three steps in one run == two steps, a state-dict round trip into a new head, a third."""
    def step(head, opt, k):
        images, gt = scene(seed=k)
        out = head.forward_train(batch_of(images, gt, [k, k + 10]))
        loss = sum(v for key, v in out.items() if 'loss' in key)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(out['loss_glm'].detach())

    def fresh():
        head = make_head(backbone, use_plm=False, queue_size=3).train()
        return head, torch.optim.SGD([p for p in head.parameters() if p.requires_grad], lr=0.1)

    a, opt_a = fresh()
    for k in range(2):
        step(a, opt_a, k)
    state = copy.deepcopy(a.state_dict())
    assert {'bank.keys', 'bank.ids', 'bank.ptr', 'bank.filled'} <= set(state)
    b, opt_b = fresh()
    b.load_state_dict(state)
    opt_b.load_state_dict(opt_a.state_dict())
    assert torch.equal(b.bank.keys, a.bank.keys) and torch.equal(b.bank.ids, a.bank.ids)
    assert step(b, opt_b, 2) == step(a, opt_a, 2)
    assert torch.equal(b.bank.keys, a.bank.keys) and int(b.bank.ptr) == int(a.bank.ptr) == 0
    # an exported head from before the bank was saved still loads (empty bank)
    c, _ = fresh()
    c.load_state_dict({k: v for k, v in state.items() if not k.startswith('bank.')})
    assert int(c.bank.filled) == 0


def test_image_ids_come_from_the_image_path():
    t = PackImageInfo()
    img = np.zeros((20, 30, 3), np.uint8)
    a = t.transform(dict(img=img, img_path='a/0001.jpg'))
    b = t.transform(dict(img=img[:10], img_path='a/0001.jpg'))
    c = t.transform(dict(img=img, img_path='a/0002.jpg'))
    assert a['image_id'] == b['image_id'] != c['image_id']
    assert a['valid_hw'].tolist() == [20, 30] and b['valid_hw'].tolist() == [10, 30]
    assert {'image_id', 'valid_hw'} <= set(a['view_keys'])
