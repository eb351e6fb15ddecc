"""CLIP-ZSS and the inductive zero-shot protocol: unseen pixels never supervise, inference
without CLIP's image tower, hIoU on the right class subsets, the PLM's clustering."""
import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from methods.clip_zss import (CLIPZSS, IgnoreUnseenClasses, PseudoWeightSynthesizer,
                              connected_components, dataset_classes,
                              multiscale_kmeans_fusion, spherical_kmeans)
from ovseg_bench.backbones import OpenCLIPBackbone
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


def losses(head, images, gt):
    out = copy.deepcopy(head).forward_train(dict(images=images, gt_seg=gt))  # fresh queue
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
    assert not torch.equal(losses(head, images, moved)['loss_seg'], ref['loss_seg'])


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
    assert head.synthesizer is None
    out = head.forward_train(dict(images=scene()[0], gt_seg=scene()[1]))
    assert [k for k in out if 'loss' in k] == ['loss_seg']
    full = make_head(backbone).forward_train(dict(images=scene()[0], gt_seg=scene()[1]))
    assert {'loss_seg', 'loss_pseudo', 'loss_glm', 'loss_align'} <= set(full)


def test_training_updates_the_encoder_only(backbone):
    head = make_head(backbone)
    head.train()
    assert not head.backbone.training and head.encoder.training
    teacher = {k: v.clone() for k, v in head.backbone.state_dict().items()}
    encoder = [p.detach().clone() for p in head.encoder.parameters()]
    opt = torch.optim.AdamW([p for p in head.parameters() if p.requires_grad], lr=1e-3)
    images, gt = scene()
    for _ in range(2):
        out = head.forward_train(dict(images=images, gt_seg=gt))
        opt.zero_grad()
        sum(v for k, v in out.items() if 'loss' in k).backward()
        opt.step()
    assert all(torch.equal(v, teacher[k]) for k, v in head.backbone.state_dict().items())
    assert any(not torch.equal(p, q) for p, q in zip(head.encoder.parameters(), encoder))
    assert int(head.queue_len) == 4                  # two batches of two class tokens


def test_glm_pulls_pooled_features_to_their_own_class_token(backbone):
    head = make_head(backbone, use_plm=False, queue_size=0)
    cls = F.normalize(torch.randn(3, backbone.embed_dim), dim=-1)
    aligned = cls[:, :, None, None].expand(-1, -1, 4, 4)              # every patch = its cls
    shuffled = cls[[1, 2, 0], :, None, None].expand(-1, -1, 4, 4)
    good = head._global_learning(aligned, cls)
    bad = head._global_learning(shuffled, cls)
    assert good['loss_glm'] < bad['loss_glm']
    assert good['glm_acc'] == 1 and bad['glm_acc'] == 0


def test_kmeans_and_mask_fusion_recover_well_separated_regions():
    torch.manual_seed(0)
    centres = F.normalize(torch.eye(3, 16) * 4 + 0.1 * torch.randn(3, 16), dim=-1)
    truth = torch.arange(60) % 3
    x = F.normalize(centres[truth] + 0.02 * torch.randn(60, 16), dim=-1)
    assign, _ = spherical_kmeans(x, 3)
    assert torch.equal(spherical_kmeans(x, 3)[0], assign)             # deterministic
    assert len(torch.unique(assign)) == 3
    for ks in [(2,), (3,), (2, 4, 8)]:
        label, protos = multiscale_kmeans_fusion(x, ks, threshold=0.9)
        if ks == (2,):       # too coarse on its own: two of the three regions share a mask
            assert len(protos) == 2
            continue
        assert len(protos) == 3          # over-segmentation at K=4, 8 fused back
        # the labelling is a relabelling of the truth
        pairs = set(zip(label.tolist(), truth.tolist()))
        assert len(pairs) == 3


def _reference_kmeans(x, k, iters):
    """Lloyd's spherical K-means for one image, written plainly (loops over rows)."""
    first = int((x @ F.normalize(x.mean(0), dim=0)).argmax())
    idx, nearest = [first], x @ x[first]
    for _ in range(1, k):
        idx.append(int(nearest.argmin()))
        nearest = torch.maximum(nearest, x @ x[idx[-1]])
    centres = x[idx]
    for _ in range(iters):
        assign = (x @ centres.t()).argmax(1)
        for c in range(k):
            if (assign == c).any():
                centres[c] = F.normalize(x[assign == c].sum(0), dim=0)
    return (x @ centres.t()).argmax(1)


def test_batched_kmeans_solves_each_image_on_its_own():
    torch.manual_seed(1)
    x = F.normalize(torch.randn(5, 64, 16), dim=-1)
    assign, centres = spherical_kmeans(x, 4, iters=10)
    assert assign.shape == (5, 64) and centres.shape == (5, 4, 16)
    for i in range(5):
        assert torch.equal(assign[i], _reference_kmeans(x[i], 4, 10))
        assert torch.equal(spherical_kmeans(x[i], 4, iters=10)[0], assign[i])
    fused = multiscale_kmeans_fusion(x, (2, 4), threshold=0.9)
    for i, (label, protos) in enumerate(fused):
        one_label, one_protos = multiscale_kmeans_fusion(x[i], (2, 4), threshold=0.9)
        assert torch.equal(label, one_label) and torch.allclose(protos, one_protos)


def test_connected_components_is_transitive():
    adj = torch.zeros(5, 5, dtype=torch.bool)
    adj[0, 2] = adj[2, 0] = adj[2, 4] = adj[4, 2] = True
    assert connected_components(adj).tolist() == [0, 1, 0, 2, 0]


def test_pseudo_labels_cover_only_unannotated_pixels(backbone):
    head = make_head(backbone)
    images, gt = scene()
    target = head.seen_lut[gt]
    with torch.no_grad():
        t = head.backbone.forward_dense(images, last_block='value')
        tokens = F.normalize(t.patch, dim=-1)
        cls = F.normalize(t.cls, dim=-1)
        embeds, owner = head.seen_text()
        plm = head._pixel_learning(target, (cls, tokens), embeds, owner, tokens.shape[1:3])
    pseudo = plm['target']
    assert ((pseudo >= 0) <= (target == 255)).all()       # never on an annotated pixel
    assert plm['weights'] is not None and plm['valid'].any()
    assert int(pseudo.max()) < plm['valid'].sum(1).max()


def test_synthesizer_starts_as_the_identity_on_region_features():
    syn = PseudoWeightSynthesizer(16)
    q = F.normalize(torch.randn(2, 3, 16), dim=-1)
    assert torch.allclose(syn(q, torch.randn(2, 5, 16)), q, atol=1e-6)


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


def test_an_mmseg_encoder_by_config(backbone):
    """A convnet encoder from mmseg (a small DeepLabV3+-style ResNet) instead of the ViT."""
    norm = dict(type='BN', requires_grad=True)
    encoder = dict(
        type='mmseg',
        backbone=dict(type='ResNetV1c', depth=18, out_indices=(0, 1, 2, 3), norm_cfg=norm,
                      dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1), contract_dilation=True),
        decode_head=dict(type='DepthwiseSeparableASPPHead', in_channels=512, in_index=3,
                         channels=32, dilations=(1, 6), c1_in_channels=64, c1_channels=16,
                         norm_cfg=norm, align_corners=False))
    head = make_head(backbone, encoder=encoder)
    out = head.forward_train(dict(images=scene()[0], gt_seg=scene()[1]))
    assert torch.isfinite(sum(v for k, v in out.items() if 'loss' in k))
    head.eval()
    with torch.no_grad():
        logits = head.predict_dense(torch.randn(1, 3, 64, 96),
                                    F.normalize(torch.randn(3, backbone.embed_dim), dim=-1))
    assert logits.shape == (1, 3, 16, 24)        # output stride 4


@pytest.mark.parametrize('detach', [False, True])
def test_pixel_loss_trains_the_synthesizer_unless_detached(backbone, detach):
    """The pseudo-label loss reaches the synthesizer (default), or only the alignment does."""
    head = make_head(backbone, use_glm=False, detach_pseudo_weights=detach)
    head.train()
    images, gt = scene()
    out = head.forward_train(dict(images=images, gt_seg=gt))
    assert out['loss_pseudo'] > 0
    out['loss_pseudo'].backward()
    grads = [p.grad for p in head.synthesizer.parameters() if p.grad is not None]
    reached = any(g.abs().sum() > 0 for g in grads)
    assert reached != detach
