"""CLIP-ZSS and the inductive zero-shot protocol: unseen pixels never supervise, inference
without CLIP's image tower, hIoU on the right class subsets, the GLM's attention and memory
bank, the PLM's clustering, the synthesizer and ZegCLIP's loss."""
import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from ovseg_bench_methods.clip_zss import (
    CLIPZSS, PseudoWeightSynthesizer, SigmoidLogits, class_token_attention, focal_dice_loss,
    fuse_groups, label_fractions, masked_info_nce, multiscale_regions, pseudo_regions,
    seeded_kmeans, window_seeds)
from ovseg_bench.backbones import OpenCLIPBackbone
from ovseg_bench.data.zero_shot import IgnoreUnseenClasses, PackImageInfo, dataset_classes
from ovseg_bench.engine.metrics import OVIoUMetric, harmonic_mean
from ovseg_bench.segmentor import OVSegmentor

REPO = Path(__file__).resolve().parents[2]
CLASSES = dataset_classes('synth_coco')          # 8 things then 6 stuff
UNSEEN = ['diamond', 'heart', 'sky']
U = [CLASSES.index(c) for c in UNSEEN]
SEEN = [i for i in range(len(CLASSES)) if i not in U]


@pytest.fixture(scope='module')
def backbone():
    torch.manual_seed(0)
    return OpenCLIPBackbone('ovseg-tiny')      # random weights: shapes and wiring only


def make_head(backbone, **kw):
    torch.manual_seed(0)
    kw = {**dict(queue_size=16, templates='single', text_cache=None), **kw}
    return CLIPZSS(copy.deepcopy(backbone), 'synth_coco', UNSEEN, **kw)


def scene(b=2, size=64, seed=0):
    """Images and label maps with seen regions, unseen regions and a void stripe."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(b, 3, size, size, generator=g)
    gt = torch.full((b, size, size), SEEN[8], dtype=torch.long)       # a seen stuff class
    gt[:, :24, :24] = SEEN[0]                                         # a seen thing
    gt[:, 32:, 32:] = U[0]                                            # an unseen thing
    gt[:, 40:, :16] = U[2]                                            # unseen stuff
    gt[:, 28:30] = 255                                                # void
    images[:, :, 32:, 32:] += 2.0                                     # make it look different
    return images, gt


def batch_of(images, gt, ids=None):
    ids = torch.arange(len(images)) if ids is None else torch.as_tensor(ids)
    return dict(images=images, gt_seg=gt, image_id=ids)


def losses(head, images, gt):
    out = copy.deepcopy(head).forward_train(batch_of(images, gt))  # fresh memory bank
    return {k: v.detach() for k, v in out.items() if 'loss' in k}


# ---------------------------------------------------------------- the protocol
def test_transform_sets_unseen_pixels_to_ignore():
    t = IgnoreUnseenClasses(unseen=UNSEEN, dataset='synth_coco')
    gt = np.array([[0, U[0], U[1]], [U[2], 255, SEEN[-1]]], np.uint8)
    out = t.transform(dict(gt_seg_map=gt.copy()))['gt_seg_map']
    assert out.dtype == np.uint8
    assert out.tolist() == [[0, 255, 255], [255, 255, SEEN[-1]]]
    with pytest.raises(ValueError, match='not in the dataset'):
        IgnoreUnseenClasses(unseen=['unicorn'], dataset='synth_coco')


@pytest.mark.parametrize('modules', [dict(use_glm=False, use_plm=False), dict()])
def test_unseen_pixels_never_contribute_to_the_supervised_loss(backbone, modules):
    """Unseen pixels relabelled as other unseen classes (or as void) change no loss, both
    straight into the head and after the pipeline transform."""
    head = make_head(backbone, **modules)
    head.train()
    images, gt = scene()
    ref = losses(head, images, gt)
    flipped = gt.clone()
    flipped[gt == U[0]] = U[1]
    flipped[gt == U[2]] = U[0]
    transform = IgnoreUnseenClasses(unseen=UNSEEN, dataset='synth_coco')
    piped = torch.from_numpy(transform.transform(dict(gt_seg_map=gt.numpy().astype(np.uint8)))
                             ['gt_seg_map']).long()
    for other in (flipped, torch.where(torch.isin(gt, torch.tensor(U)), 255, gt), piped):
        got = losses(head, images, other)
        assert got.keys() == ref.keys()
        for k in ref:
            assert torch.equal(got[k], ref[k]), k
    # ... while relabelling a seen region does change the supervised loss
    moved = gt.clone()
    moved[gt == SEEN[0]] = SEEN[1]
    assert not torch.equal(losses(head, images, moved)['loss_ce'], ref['loss_ce'])


def test_seen_targets_exclude_unseen_classes(backbone):
    head = make_head(backbone, use_glm=False, use_plm=False)
    lut = head.seen_lut
    assert all(int(lut[u]) == 255 for u in U) and int(lut[255]) == 255
    assert [int(lut[s]) for s in SEEN] == list(range(len(SEEN)))
    embeds, owner = head.seen_text()     # only seen names are ever embedded in training
    assert int(owner.max()) + 1 == len(SEEN)


def test_hiou_is_the_harmonic_mean_over_the_right_subsets():
    classes = ('a', 'b', 'c', 'd')
    metric = OVIoUMetric(unseen_classes=['c', 'd'])
    metric.dataset_meta = dict(classes=classes)
    gt = torch.tensor([[0, 0, 1, 1], [2, 2, 3, 3], [0, 1, 2, 255]])
    pred = torch.tensor([[0, 0, 1, 0], [2, 3, 3, 3], [0, 1, 1, 3]])
    sample = dict(pred_sem_seg=dict(data=pred[None]), gt_sem_seg=dict(data=gt[None]))
    metric.process({}, [sample])
    res = metric.compute_metrics(metric.results)
    # by hand, valid pixels only: IoU a=3/4, b=2/4, c=1/3, d=2/3
    iou = {'a': 3 / 4, 'b': 2 / 4, 'c': 1 / 3, 'd': 2 / 3}
    seen = 100 * (iou['a'] + iou['b']) / 2
    unseen = 100 * (iou['c'] + iou['d']) / 2
    assert res['mIoU_seen'] == pytest.approx(seen)
    assert res['mIoU_unseen'] == pytest.approx(unseen)
    assert res['hIoU'] == pytest.approx(2 * seen * unseen / (seen + unseen))
    assert res['hIoU'] == pytest.approx(harmonic_mean(seen, unseen))
    assert res['mIoU'] == pytest.approx(100 * sum(iou.values()) / 4)


def test_hiou_is_undefined_when_a_side_is():
    assert math.isnan(harmonic_mean(float('nan'), 40.0))
    assert math.isnan(harmonic_mean(40.0, float('nan')))
    assert harmonic_mean(0.0, 0.0) == 0.0 and harmonic_mean(0.0, 50.0) == 0.0


# ---------------------------------------------------------------- inference
@pytest.mark.parametrize('size', [(64, 64), (64, 96)])
def test_predict_dense_shape(backbone, size):
    head = make_head(backbone).eval()
    embeds = F.normalize(torch.randn(5, backbone.embed_dim), dim=-1)
    with torch.no_grad():
        out = head.predict_dense(torch.randn(2, 3, *size), embeds)
    p = backbone.patch_size
    assert out.shape == (2, 5, size[0] // p, size[1] // p)
    assert out.abs().max() <= 1 + 1e-5          # cosine similarities


def test_inference_runs_without_the_clip_image_encoder(backbone, monkeypatch):
    head = make_head(backbone)
    state = copy.deepcopy(head.state_dict())
    images = torch.randn(2, 3, 64, 96)
    embeds = F.normalize(torch.randn(4, backbone.embed_dim), dim=-1)
    head.eval()
    with torch.no_grad():
        before = head.predict_dense(images, embeds)
    head.drop_teacher()
    assert head.backbone.model.visual is None
    assert not any(k.startswith('backbone.model.visual.') for k in head.state_dict())
    for name in ('forward_dense', 'embed', 'run_blocks', 'project', 'encode_image'):
        monkeypatch.setattr(head.backbone, name, lambda *a, **k: pytest.fail('CLIP image '
                                                                             'encoder used'))
    head.load_state_dict(state)           # a full trained checkpoint still loads
    with torch.no_grad():
        after = head.predict_dense(images, embeds)
        # the whole evaluator path: text tower for the class embeddings, slide windows
        seg = OVSegmentor(head, [['circle'], ['grass', 'lawn'], ['sky']], False,
                          dict(templates='single', text_cache=None, crop=64, stride=32))
        logits = seg.dense_logits(images)
    assert torch.allclose(before, after)
    assert logits.shape == (2, 3, 64, 96)


# ---------------------------------------------------------------- the modules
def test_baseline_has_only_the_supervised_loss(backbone):
    head = make_head(backbone, use_glm=False, use_plm=False)
    assert head.synthesizer is None and head.train_views == ('gt_seg',)
    out = head.forward_train(dict(images=scene()[0], gt_seg=scene()[1]))
    assert sorted(k for k in out if 'loss' in k) == ['loss_ce', 'loss_dice', 'loss_focal']
    full = make_head(backbone).forward_train(batch_of(*scene()))
    assert sorted(k for k in full if 'loss' in k) == [
        'loss_bce', 'loss_ce', 'loss_dice', 'loss_focal', 'loss_glm']


def test_training_updates_the_encoder_only(backbone):
    head = make_head(backbone)
    head.train()
    assert not head.backbone.training and head.encoder.training
    teacher = {k: v.clone() for k, v in head.backbone.state_dict().items()}
    encoder = [p.detach().clone() for p in head.encoder.parameters()]
    opt = torch.optim.AdamW([p for p in head.parameters() if p.requires_grad], lr=1e-3)
    images, gt = scene()
    for step in range(2):
        out = head.forward_train(batch_of(images, gt, [2 * step, 2 * step + 1]))
        opt.zero_grad()
        sum(v for k, v in out.items() if 'loss' in k).backward()
        opt.step()
    assert all(torch.equal(v, teacher[k]) for k, v in head.backbone.state_dict().items())
    assert any(not torch.equal(p, q) for p, q in zip(head.encoder.parameters(), encoder))
    assert int(head.bank.filled) == 4                # two batches of two class tokens
    assert head.bank.contents()[1].tolist() == [0, 1, 2, 3]


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


# ---------------------------------------------------------------- PLM
def test_window_seeds_are_window_means():
    x = torch.arange(16.0).view(1, 16, 1).expand(1, 16, 2).contiguous()   # 4x4 grid, D=2
    w = torch.ones(1, 16)
    w[0, 12:] = 0                                                        # last row padded
    seeds, alive = window_seeds(x, w, (4, 4), 2)
    assert seeds.shape == (1, 4, 2) and alive.all()
    # windows: rows 0-1 (values 0 1 4 5 / 2 3 6 7), rows 2-3 with row 3 padded (8 9 / 10 11)
    raw = torch.tensor([2.5, 4.5, 8.5, 10.5])
    assert torch.allclose(seeds[0], F.normalize(raw[:, None].expand(4, 2), dim=-1))
    w[0, 8:] = 0
    assert window_seeds(x, w, (4, 4), 2)[1].tolist() == [[True, True, False, False]]


def test_seeded_kmeans_recovers_well_separated_regions():
    torch.manual_seed(0)
    centres = F.normalize(torch.eye(3, 16) * 4 + 0.1 * torch.randn(3, 16), dim=-1)
    truth = torch.zeros(8, 8, dtype=torch.long)
    truth[:, 4:] = 1
    truth[5:, :] = 2
    x = F.normalize(centres[truth.flatten()] + 0.02 * torch.randn(64, 16), dim=-1)[None]
    w = torch.ones(1, 64)
    seeds, alive = window_seeds(x, w, (8, 8), 4)
    assign, _ = seeded_kmeans(x, w, seeds, alive)
    pairs = set(zip(assign[0].tolist(), truth.flatten().tolist()))
    assert len({a for a, _ in pairs}) == len(pairs) == 4      # K = 4 pure clusters
    assert {t for _, t in pairs} == {0, 1, 2}
    label, protos = multiscale_regions(x, w, (8, 8), windows=(4, 2), threshold=0.9)[0]
    assert len(protos) == 3          # over-segmentation at both scales fused back
    assert len(set(zip(label.tolist(), truth.flatten().tolist()))) == 3


def test_mask_fusion_uses_each_seed_once():
    """a~b and b~c but not a~c: a (the largest) takes b; c stays alone (no chaining)."""
    a = torch.tensor([1.0, 0.0])
    b = F.normalize(torch.tensor([1.0, 0.6]), dim=0)
    c = F.normalize(torch.tensor([1.0, 1.6]), dim=0)
    means = torch.stack([a, b, c])
    assert (means @ means.t())[0, 2] < 0.8 < (means @ means.t())[1, 2]
    assert fuse_groups(means, torch.tensor([5.0, 3.0, 4.0]), 0.8).tolist() == [0, 0, 1]
    # visited from the largest: c first takes b, then a is left alone
    assert fuse_groups(means, torch.tensor([3.0, 4.0, 5.0]), 0.8).tolist() == [1, 0, 0]


def test_padding_never_becomes_a_pseudo_class():
    g = torch.Generator().manual_seed(0)
    tokens = F.normalize(torch.randn(1, 8, 8, 16, generator=g), dim=-1)
    tokens[:, :, 4:] = F.normalize(torch.ones(16), dim=0)    # right half: one flat region
    target = torch.full((1, 64, 64), 255)                      # all unannotated
    valid = torch.ones(1, 64, 64, dtype=torch.bool)
    valid[:, :, 32:] = False                                   # ... which is padding
    regions = pseudo_regions(target, valid, tokens, (4, 2), 0.9, 0.5, 16)
    assert (regions[:, :, 4:] == -1).all()
    assert (regions[:, :, :4] >= 0).all()                      # the unpadded void: pseudo


def test_pseudo_labels_cover_only_unannotated_pixels(backbone):
    head = make_head(backbone)
    images, gt = scene()
    target = head.seen_lut[gt]
    valid = torch.ones_like(target, dtype=torch.bool)
    with torch.no_grad():
        t = head.backbone.forward_dense(images, last_block='value')
        tokens = F.normalize(t.patch, dim=-1)
        cls = F.normalize(t.cls, dim=-1)
        embeds, owner = head.seen_text()
        feats = head.encode_dense(images)
        plm = head._pixel_learning(feats, target, valid, tokens, cls, embeds, owner)
    fused = plm['fused']
    pseudo = fused >= len(SEEN)
    assert (fused[target != 255] == target[target != 255]).all()
    assert (pseudo <= (target == 255)).all() and pseudo.any()   # never on annotated pixels
    assert plm['weights'] is not None and plm['present'].any()


def test_label_fractions_are_area_pooling():
    labels = torch.randint(0, 4, (2, 16, 24))
    labels[0, :3] = 255
    onehot = F.one_hot(labels.clamp(max=4), 5)[..., :4].permute(0, 3, 1, 2).float()
    want = F.adaptive_avg_pool2d(onehot, (4, 6))
    assert torch.allclose(label_fractions(labels, 4, (4, 6)), want)


# ---------------------------------------------------------------- synthesizer and loss
def test_synthesizer_starts_as_the_identity_on_its_queries():
    syn = PseudoWeightSynthesizer(16)
    q = F.normalize(torch.randn(2, 3, 16), dim=-1)
    assert torch.allclose(syn(q, torch.randn(2, 1, 16)), q, atol=1e-6)


def test_the_synthesizers_gradient_reaches_the_encoder(backbone):
    """L_bce alone (seen prototypes vs seen text) trains the encoder through the centroids."""
    head = make_head(backbone, use_glm=False)
    head.train()
    out = head.forward_train(dict(images=scene()[0], gt_seg=scene()[1]))
    out['loss_bce'].backward()
    enc = [p.grad for p in head.encoder.parameters() if p.grad is not None]
    syn = [p.grad for p in head.synthesizer.parameters() if p.grad is not None]
    assert enc and any(g.abs().sum() > 0 for g in enc)
    assert any(g.abs().sum() > 0 for g in syn)


def _zegclip_focal_dice(logits, target):
    """ZegCLIP's criterion (models/losses/criterion.py), re-derived with loops: focal over
    every class map (ignore pixels negative), dice over the classes present, both / #masks."""
    b, c = logits.shape[:2]
    focal, dice, n = 0.0, 0.0, 0
    for i in range(b):
        present = [k for k in target[i].unique().tolist() if k != 255]
        n += len(present)
        for k in range(c):
            x = logits[i, k].flatten()
            t = (target[i] == k).flatten().float()
            prob = x.sigmoid()
            ce = F.binary_cross_entropy_with_logits(x, t, reduction='none')
            p_t = prob * t + (1 - prob) * (1 - t)
            a_t = 0.25 * t + 0.75 * (1 - t)
            focal += (a_t * ce * (1 - p_t) ** 2).mean()
            if k in present:
                dice += 1 - (2 * (prob * t).sum() + 1) / (prob.sum() + t.sum() + 1)
    n = max(n, 1)
    return focal / n, dice / n


def test_nel_loss_matches_zegclips_criterion():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 6, 5, generator=g) * 3
    target = torch.randint(0, 4, (2, 6, 5), generator=g)
    target[0, :2] = 255
    target[1][target[1] == 3] = 1                       # class 3 absent from image 1
    focal, dice = focal_dice_loss(logits, target)
    ref_focal, ref_dice = _zegclip_focal_dice(logits, target)
    assert focal == pytest.approx(float(ref_focal), rel=1e-5)
    assert dice == pytest.approx(float(ref_dice), rel=1e-5)


def test_sigmoid_logits_start_at_the_prior_odds_of_one_class_in_n(backbone):
    """The NEL and BCE logits start by SigLIP's rule, the bias at the log prior odds of a
    positive (one seen class of 11 here): at cosine 0 the probability is the prior 1/11, and
    a matching cosine of 0.5 is already a confident positive. With SigLIP's batch bias (-10)
    no cosine could reach p = 0.6, and a bias moves by ~lr per AdamW step, so the focal loss
    never saturates and drags every seen pixel onto its class's text embedding."""
    head = make_head(backbone)
    n = len(SEEN)
    for logits in (head.nel_logits, head.bce_logits):
        assert logits.bias.item() == pytest.approx(-math.log(n - 1))
        assert torch.sigmoid(logits(torch.tensor(0.0))).item() == pytest.approx(1 / n)
        assert torch.sigmoid(logits(torch.tensor(0.5))).item() > 0.9
    siglip = SigmoidLogits()
    assert torch.sigmoid(siglip(torch.tensor(1.0))).item() < 0.6


# ---------------------------------------------------------------- configs
def test_configs_declare_splits_for_every_evaluated_dataset():
    splits = Config.fromfile(str(REPO / 'configs/_base_/zero_shot/splits.py')).zero_shot_splits
    for name, unseen in splits.items():
        assert set(unseen) <= set(dataset_classes(name)), name
    cfgs = sorted((REPO / 'configs/clip_zss').glob('*.py'))
    assert cfgs
    for path in cfgs:
        cfg = Config.fromfile(str(path))
        assert cfg.method.type == 'CLIPZSS'
        assert set(cfg.datasets) <= set(cfg.unseen_classes), path.name
        for name, unseen in cfg.unseen_classes.items():
            assert list(unseen) == list(splits[name]), (path.name, name)
        assert list(cfg.method.unseen_classes) == list(splits[cfg.method.train_dataset])


# the published lists, as indices in mmseg's class order (ZegCLIP's and ZegCLIP-derived
# configs' novel_class) or as names (ZS3Net's paper)
PUBLISHED_SPLITS = dict(
    voc20=[15, 16, 17, 18, 19],
    coco_stuff171=[19, 23, 28, 29, 36, 51, 76, 88, 94, 112, 133, 136, 137, 157, 160],
    context59=[0, 2, 3, 7, 9, 13, 17, 19, 31, 37])
ZS3NET_CONTEXT = ['cow', 'motorbike', 'aeroplane', 'sofa', 'cat', 'tvmonitor', 'train',
                  'bottle', 'chair', 'pottedplant']


def test_split_indices_are_the_published_lists():
    cfg = Config.fromfile(str(REPO / 'configs/_base_/zero_shot/splits.py'))
    for name, indices in PUBLISHED_SPLITS.items():
        classes = dataset_classes(name)
        unseen = cfg.zero_shot_splits[name]
        assert sorted(classes.index(c) for c in unseen) == indices, name
        assert len(classes) - len(unseen) == {'voc20': 15, 'coco_stuff171': 156,
                                              'context59': 49}[name]
    alt = Config.fromfile(str(REPO / 'configs/_base_/zero_shot/context59_zs3net.py')
                          ).zero_shot_splits.context59
    assert sorted(alt) == sorted(ZS3NET_CONTEXT) and set(alt) <= set(dataset_classes('context59'))
    ctx = Config.fromfile(str(REPO / 'configs/clip_zss/clip_zss_vit_b16_context.py'))
    assert list(ctx.method.unseen_classes) == list(cfg.zero_shot_splits.context59)
    ignore = [t for t in ctx.train_data.pipeline if t['type'] == 'IgnoreUnseenClasses'][0]
    assert list(ignore['unseen']) == list(cfg.zero_shot_splits.context59)


def test_an_mmseg_encoder_by_config(backbone):
    """A convnet encoder from mmseg (a small DeepLabV3+-style ResNet) instead of the ViT."""
    norm = dict(type='BN', requires_grad=True)
    encoder = dict(
        type='mmseg', pretrained=None,
        backbone=dict(type='ResNetV1c', depth=18, out_indices=(0, 1, 2, 3), norm_cfg=norm,
                      dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1), contract_dilation=True),
        decode_head=dict(type='DepthwiseSeparableASPPHead', in_channels=512, in_index=3,
                         channels=32, dilations=(1, 6), c1_in_channels=64, c1_channels=16,
                         norm_cfg=norm, align_corners=False))
    head = make_head(backbone, encoder=encoder)
    out = head.forward_train(batch_of(*scene()))
    assert torch.isfinite(sum(v for k, v in out.items() if 'loss' in k))
    head.eval()
    with torch.no_grad():
        logits = head.predict_dense(torch.randn(1, 3, 64, 96),
                                    F.normalize(torch.randn(3, backbone.embed_dim), dim=-1))
    assert logits.shape == (1, 3, 16, 24)        # output stride 4


@pytest.mark.parametrize('detach', [False, True])
def test_pixel_loss_trains_the_synthesizer_unless_detached(backbone, detach):
    """The CE over the fused labels reaches the synthesizer (default), or only L_bce does."""
    head = make_head(backbone, use_glm=False, detach_pseudo_weights=detach)
    head.train()
    images, gt = scene()
    out = head.forward_train(dict(images=images, gt_seg=gt))
    assert out['loss_ce'] > 0
    out['loss_ce'].backward()
    grads = [p.grad for p in head.synthesizer.parameters() if p.grad is not None]
    reached = any(g.abs().sum() > 0 for g in grads)
    assert reached != detach


def test_an_mmseg_encoder_states_its_initialisation(backbone, tmp_path):
    """``pretrained`` is required: a local checkpoint is loaded into the encoder backbone;
    a missing file or a missing key is one clear error."""
    norm = dict(type='BN', requires_grad=True)
    encoder = dict(type='mmseg',
                   backbone=dict(type='ResNetV1c', depth=18, out_indices=(3,), norm_cfg=norm),
                   decode_head=dict(type='FCNHead', in_channels=512, in_index=0, channels=16,
                                    num_convs=1, norm_cfg=norm, align_corners=False))
    with pytest.raises(ValueError, match='encoder.pretrained is required'):
        make_head(backbone, encoder=encoder)
    with pytest.raises(FileNotFoundError, match='no file'):
        make_head(backbone, encoder={**encoder, 'pretrained': str(tmp_path / 'none.pth')})
    source = make_head(backbone, encoder={**encoder, 'pretrained': None}).encoder.backbone
    with torch.no_grad():
        for p in source.parameters():
            p.add_(1.0)
    torch.save({'state_dict': source.state_dict()}, tmp_path / 'r18.pth')
    loaded = make_head(backbone, encoder={**encoder, 'pretrained': str(tmp_path / 'r18.pth')})
    got = loaded.encoder.backbone.state_dict()
    for k, v in source.state_dict().items():
        assert torch.equal(v, got[k]), k


def test_the_configs_encoders(backbone):
    """The paper configs: an ImageNet-initialised SegFormer MiT-B5 at a named local path; the
    tiny default: the CLIP-ViT student; its MiT-B0 variant: random initialisation stated."""
    for name in ('voc', 'context', 'coco_stuff'):
        enc = Config.fromfile(str(REPO / f'configs/clip_zss/clip_zss_vit_b16_{name}.py')
                              ).method.encoder
        assert enc.type == 'mmseg' and enc.backbone.type == 'MixVisionTransformer'
        assert enc.backbone.num_layers == [3, 6, 40, 3] and enc.pretrained.endswith('.pth')
    tiny = Config.fromfile(str(REPO / 'configs/clip_zss/clip_zss_tiny_synth.py'))
    assert dict(tiny.method.encoder) == dict(type='clip_vit')
    mit = Config.fromfile(str(REPO / 'configs/clip_zss/clip_zss_mit_b0_synth.py'))
    assert mit.method.encoder.pretrained is None
    assert mit.method.encoder.backbone.num_layers == [2, 2, 2, 2]
    assert {k: v for k, v in mit.method.items() if k != 'encoder'} == \
        {k: v for k, v in tiny.method.items() if k != 'encoder'}
    head = make_head(backbone, encoder=mit.method.encoder).eval()
    with torch.no_grad():
        out = head.predict_dense(torch.randn(1, 3, 64, 64),
                                 F.normalize(torch.randn(3, backbone.embed_dim), dim=-1))
    assert out.shape == (1, 3, 16, 16)           # SegFormer's output stride 4


def _bases(path):
    """The ``_base_`` list of a config file, resolved to paths (read, not executed)."""
    import ast
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', '') == '_base_':
            return [(path.parent / p).resolve() for p in ast.literal_eval(node.value)]
    return []


@pytest.mark.parametrize('path', sorted((REPO / 'configs/clip_zss').glob('*.py')),
                         ids=lambda p: p.name)
def test_configs_inherit_one_level_from_base_files(path):
    """Every CLIP-ZSS config is named {method}_{backbone}_{data} and inherits only from files
    under configs/_base_, which inherit from nothing; its unseen pixels are ignored by the
    split of the dataset it trains on."""
    assert path.stem.startswith('clip_zss_') and '-' not in path.stem
    base_dir = (REPO / 'configs/_base_').resolve()
    for base in _bases(path):
        assert base.is_file() and base_dir in base.parents, base
        assert _bases(base) == [], f'{base} has a _base_ of its own'
    cfg = Config.fromfile(str(path))
    ignore = [t for t in cfg.train_data.pipeline if t['type'] == 'IgnoreUnseenClasses']
    assert len(ignore) == 1
    assert ignore[0]['dataset'] == cfg.method.train_dataset == cfg.train_data.name
    assert list(ignore[0]['unseen']) == list(cfg.method.unseen_classes) \
        == list(cfg.unseen_classes[cfg.method.train_dataset])


def test_the_trainer_checkpoints_and_resumes_the_memory_bank(synth_root, tmp_path, monkeypatch):
    """Through mmengine's checkpoint and resume: the bank is in the checkpoint, and a resumed
    run starts from it (two iterations of 2 crops, then a third after resuming)."""
    import os
    from ovseg_bench.engine.trainer import train
    (tmp_path / 'data').mkdir()
    os.symlink(synth_root, tmp_path / 'data' / 'synth')
    monkeypatch.chdir(tmp_path)
    cfg = Config.fromfile(str(REPO / 'configs/clip_zss/clip_zss_tiny_synth.py'))
    cfg.backbone.pretrained = None
    cfg.merge_from_dict({'method.encoder._delete_': True, 'method.encoder.type': 'clip_vit',
                         'method.templates': 'single', 'method.text_cache': None})
    cfg.train.update(iters=2, batch_size=2, num_workers=0, log_interval=1,
                     checkpoint_interval=1, max_keep_ckpts=-1, warmup_iters=1)
    run = tmp_path / 'run'
    train(cfg, work_dir=run)

    def bank(path):
        state = torch.load(path, map_location='cpu', weights_only=False)
        state = state.get('state_dict', state)
        prefix = 'head.bank.' if 'head.bank.keys' in state else 'bank.'
        return {k: state[prefix + k] for k in ('keys', 'ids', 'filled')}

    first, second = bank(run / 'iter_1.pth'), bank(run / 'iter_2.pth')
    assert int(first['filled']) == 2 and int(second['filled']) == 4
    assert torch.equal(second['keys'][:2], first['keys'][:2])
    assert (second['ids'][:4] != -1).all()
    cfg.train.update(iters=3)
    train(cfg, work_dir=run, resume=True)
    third = bank(run / 'iter_3.pth')
    assert int(third['filled']) == 6
    assert torch.equal(third['keys'][:4], second['keys'][:4])
    assert torch.equal(third['ids'][:4], second['ids'][:4])
