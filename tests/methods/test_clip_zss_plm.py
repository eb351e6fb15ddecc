"""CLIP-ZSS's pixel learning module: window-mean seeds, seeded K-means, mask fusion with each
seed once, no pseudo class from padding, pseudo labels only where no annotation is."""

import torch
import torch.nn.functional as F

from ovseg_bench_methods.clip_zss import (fuse_groups, label_fractions, multiscale_regions,
                                          pseudo_regions, seeded_kmeans, window_seeds)
from clip_zss_world import SEEN, backbone, make_head, scene  # noqa: F401 (backbone: a fixture)


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
