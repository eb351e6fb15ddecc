"""ViL-Seg: multi-crop views from the pipeline config, the IIC clustering loss, loss switches,
view correspondences and the shape of the dense prediction."""
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ovseg_bench_methods.vilseg import ViLSeg, mutual_information_loss, photometric
from ovseg_bench.registry import BACKBONES, build, load_plugins

CONFIG = Path(__file__).resolve().parents[2] / 'configs/vilseg/vilseg_tiny_synth.py'


@pytest.fixture(scope='module')
def backbone():
    load_plugins()
    torch.manual_seed(0)
    return build(BACKBONES, dict(type='OpenCLIPBackbone', model='ovseg-tiny'))


def make_batch(b=3, n_global=2, n_local=2, size=64, local=32):
    boxes = torch.tensor([[0., 0., 96., 96.], [32., 0., 128., 96.]]
                         + [[0., 0., 40., 40.]] * n_local)[:n_global + n_local]
    return dict(images=torch.randn(b, 3, size, size),
                captions=['a red circle on grass', 'a blue star', 'water and sand'][:b],
                global_crops=torch.randn(b, n_global, 3, size, size),
                local_crops=torch.randn(b, n_local, 3, local, local),
                crop_boxes=boxes.expand(b, -1, -1),
                crop_flips=torch.tensor([False, True] + [False] * n_local)[
                    :n_global + n_local].expand(b, -1))


def test_views_come_from_the_pipeline_config(synth_root, backbone):
    """The tiny config's pipeline makes every view the head trains on; without its
    MultiCropViews transform the trainer refuses the data; a collated, normalised batch
    trains."""
    from mmseg.registry import DATASETS

    from ovseg_bench import config as C
    from ovseg_bench.data.image_text import image_text_collate
    from ovseg_bench.engine.trainer import ViewNormalizer, check_views
    cfg = C.load_config(str(CONFIG))
    method = {k: v for k, v in cfg.method.items() if k != 'type'}
    head = ViLSeg(backbone, **method)
    data = dict(cfg.train_data, data_root=str(synth_root / 'coco'))
    dataset = DATASETS.build(data)
    crops = next(t for t in cfg.train_data.pipeline if t['type'] == 'MultiCropViews')
    item = dataset[0]
    g, s = crops['n_global'], crops['global_size']
    n, s_local = crops['n_local'], crops['local_size']
    assert item['global_crops'].shape == (g, 3, s, s)
    assert item['local_crops'].shape == (n, 3, s_local, s_local)
    assert item['crop_boxes'].shape == (g + n, 4) and item['crop_flips'].shape == (g + n,)
    check_views(dataset, head)
    without = [t for t in cfg.train_data.pipeline if t['type'] != 'MultiCropViews']
    with pytest.raises(ValueError, match='global_crops'):
        check_views(DATASETS.build(dict(data, pipeline=without)), head)
    batch = image_text_collate([dataset[0], dataset[1]])
    batch = ViewNormalizer(backbone.mean, backbone.std, ('images',) + head.train_views)(batch)
    out = head.forward_train(batch)
    assert {'loss_vision', 'loss_cross', 'loss_cluster'} <= set(out)


def test_cluster_loss_minimal_for_consistent_assignment():
    c, n = 4, 64
    labels = torch.arange(n) % c
    onehot = F.one_hot(labels, c).float()
    consistent = mutual_information_loss(onehot, onehot)
    assert consistent.item() == pytest.approx(-math.log(c), abs=1e-4)   # the global minimum
    shuffled = mutual_information_loss(onehot, onehot[torch.randperm(n, generator=
                                                     torch.Generator().manual_seed(0))])
    assert shuffled.item() > consistent.item() + 0.5
    collapsed = F.one_hot(torch.zeros(n, dtype=torch.long), c).float()
    assert mutual_information_loss(collapsed, collapsed).item() == pytest.approx(0, abs=1e-4)
    # soft, random assignments never beat the perfectly consistent one
    p = torch.randn(n, c).softmax(-1)
    assert mutual_information_loss(p, p).item() > consistent.item()


def test_cluster_pairs_follow_the_crop_geometry(backbone):
    """Two crops (one flipped) of an image of vertical stripes: every pair taken from the
    overlap sees the same stripe, so one-hot stripe assignments agree exactly."""
    head = ViLSeg(backbone, num_clusters=4)
    h = w = 8
    boxes = torch.tensor([[[0., 0., 64., 64.], [32., 0., 96., 64.]]])

    def stripes(box, flip):       # cluster = which 16-px stripe of the image a patch centre hits
        xs = box[0] + (torch.arange(w) + 0.5) / w * (box[2] - box[0])
        ids = (xs // 16).long() % 4
        ids = ids.flip(0) if flip else ids
        return F.one_hot(ids, 4).float().expand(h, w, 4)

    probs = torch.stack([stripes(boxes[0, 0], False), stripes(boxes[0, 1], True)])[None]
    p, q = head.cluster_pairs(probs, boxes, torch.tensor([[False, True]]))
    assert len(p) == h * w // 2                       # half of view 0 lies inside view 1
    assert torch.allclose(p, q)
    # without the flip the same maps disagree
    p2, q2 = head.cluster_pairs(probs, boxes, torch.tensor([[False, False]]))
    assert not torch.allclose(p2, q2)


@pytest.mark.parametrize('off', ['vision', 'cross', 'cluster'])
def test_each_loss_can_be_switched_off(backbone, off):
    torch.manual_seed(0)
    head = ViLSeg(backbone, num_clusters=4, **{f'{off}_weight': 0.0})
    out = head.forward_train(make_batch())
    losses = {k for k in out if 'loss' in k}
    assert losses == {'loss_vision', 'loss_cross', 'loss_cluster'} - {f'loss_{off}'}
    total = sum(out[k] for k in losses)
    assert torch.isfinite(total)
    head.zero_grad()
    total.backward()
    proj_grad = head.vision_proj[0].weight.grad
    cluster_grad = head.cluster_head[0].weight.grad
    assert (proj_grad is None) == (off == 'vision')
    assert (cluster_grad is None) == (off == 'cluster')


def test_single_global_view_uses_neighbour_pairs(backbone):
    """One view: each patch is paired with its right and its lower neighbour, nothing else.
    On a map whose assignment encodes the patch position, every pair is exactly one step
    right or one step down, and every such step appears once."""
    head = ViLSeg(backbone, num_clusters=4)
    b, h, w = 2, 3, 4
    pos = torch.arange(h * w).view(1, 1, h, w, 1).expand(b, 1, h, w, 1).float()
    p, q = head.cluster_pairs(pos)                   # no boxes: displacement pairs
    steps = sorted(zip(p[:, 0].long().tolist(), q[:, 0].long().tolist()))
    right = [(y * w + x, y * w + x + 1) for y in range(h) for x in range(w - 1)]
    down = [(y * w + x, (y + 1) * w + x) for y in range(h - 1) for x in range(w)]
    assert steps == sorted((right + down) * b)
    # and a batch without boxes trains on them
    batch = make_batch(n_global=1)
    del batch['crop_boxes'], batch['crop_flips']
    out = head.forward_train(batch)
    assert torch.isfinite(out['loss_cluster']) and out['loss_cluster'].requires_grad


def test_the_contrasts_pool_with_the_class_token(backbone, monkeypatch):
    """The default image embedding of both contrasts is the class token: the dense patch
    embeddings get no gradient from the captions. With the mean of the patches, every patch
    of an image gets the same gradient, which pulls the patches of an image together."""
    grads = {}
    forward_dense = backbone.forward_dense

    def keep_patch(images, **kw):
        feats = forward_dense(images, **kw)
        feats.patch.retain_grad()
        grads['patch'] = feats.patch
        return feats

    monkeypatch.setattr(backbone, 'forward_dense', keep_patch)
    assert ViLSeg(backbone).global_pool == 'cls'
    for pool in ('cls', 'mean'):
        head = ViLSeg(backbone, num_clusters=4, global_pool=pool, vision_weight=0,
                      cluster_weight=0)
        head.forward_train(make_batch())['loss_cross'].backward()
        g = grads['patch'].grad                                   # B*G,h,w,D
        if pool == 'cls':
            assert g is None or not g.any()
        else:
            g = g.flatten(1, 2)
            assert g.abs().amax() > 0
            assert torch.allclose(g, g[:, :1].expand_as(g), atol=1e-7)


def test_predict_dense_shape_and_groups(backbone):
    head = ViLSeg(backbone, num_clusters=5).eval()
    embeds = F.normalize(torch.randn(7, backbone.embed_dim), dim=-1)
    with torch.no_grad():
        logits = head.predict_dense(torch.randn(2, 3, 64, 96), embeds)
    assert logits.shape == (2, 7, 8, 12)
    assert logits.abs().max() <= 1 + 1e-5             # cosine similarities
    # one score vector per group: at most num_clusters distinct columns per image
    for img in logits:
        assert len(torch.unique(img.flatten(1).t(), dim=0)) <= 5


# ---------------------------------------------------------------- photometric views
MEAN, STD = (122.770938, 116.74601, 104.09373), (68.5005327, 66.6321579, 70.32316304)


def _normalised(rgb01):
    mean = torch.tensor(MEAN).view(3, 1, 1) / 255
    std = torch.tensor(STD).view(3, 1, 1) / 255
    return (rgb01 - mean) / std, mean, std


def test_photometric_augmentation_changes_colour_not_geometry():
    torch.manual_seed(0)
    rgb = torch.zeros(4, 3, 32, 32)
    rgb[:, 0, :, 16:] = 0.9                          # a red right half, a dark left half
    rgb[:, 2, :, :16] = 0.2
    x, mean, std = _normalised(rgb)
    assert torch.allclose(photometric(x, MEAN, STD, jitter_p=0, grey_p=0, blur_p=0), x,
                          atol=1e-5)                # every transform off: the identity
    grey = photometric(x, MEAN, STD, jitter_p=0, grey_p=1, blur_p=0) * std + mean
    assert torch.allclose(grey[:, 0], grey[:, 1], atol=1e-5)
    assert torch.allclose(grey[:, 1], grey[:, 2], atol=1e-5)
    jit = photometric(x, MEAN, STD, jitter_p=1, grey_p=0, blur_p=0) * std + mean
    assert not torch.allclose(jit[0], jit[1], atol=1e-3)    # one draw per image
    # the edge stays where it was: columns 15 and 16 still differ most
    step = (jit[:, :, :, 1:] - jit[:, :, :, :-1]).abs().sum((1, 2))        # B,31
    assert (step.argmax(1) == 15).all()
    blur = photometric(x, MEAN, STD, jitter_p=0, grey_p=0, blur_p=1) * std + mean
    assert (blur[:, 0, :, 15] > 0.0).all() and (blur[:, 0, :, 16] < 0.9).all()


def test_the_clustering_sees_an_augmented_second_view(backbone, monkeypatch):
    """With ``cluster_augment`` the second global view reaches the clustering head through
    the photometric augmentation; the contrasts are unchanged; None restores the old pairs."""
    seen = []
    import ovseg_bench_methods.vilseg as vilseg
    real = vilseg.photometric
    monkeypatch.setattr(vilseg, 'photometric',
                        lambda x, *a, **k: seen.append(x) or real(x, *a, **k))
    batch = make_batch()
    torch.manual_seed(0)
    aug = ViLSeg(backbone, num_clusters=4).forward_train(batch)
    assert len(seen) == 1 and torch.equal(seen[0], batch['global_crops'][:, 1])
    torch.manual_seed(0)
    plain = ViLSeg(backbone, num_clusters=4, cluster_augment=None).forward_train(batch)
    assert len(seen) == 1
    for k in ('loss_cross', 'loss_vision'):
        assert torch.allclose(aug[k], plain[k])
    assert not torch.allclose(aug['loss_cluster'], plain['loss_cluster'])


def test_resampling_pads_with_the_border_value(backbone):
    """A view-0 patch centre just outside view 1's last patch centre (still inside view 1)
    is resampled from the border, not blended with zeros."""
    head = ViLSeg(backbone, num_clusters=2)
    # view 1 starts 4 px right of view 0: view 0's first patch centre (x = 8) lies a quarter
    # patch left of view 1's first centre (x = 12), where zero padding would weigh 1/4
    boxes = torch.tensor([[[0., 0., 64., 64.], [4., 0., 68., 64.]]])
    probs = torch.zeros(1, 2, 4, 4, 2)
    probs[..., 0] = 1.0                              # every patch of both views: cluster 0
    p, q = head.cluster_pairs(probs, boxes, torch.tensor([[False, False]]))
    assert len(p) == 16 and torch.allclose(q.sum(1), torch.ones(16))
