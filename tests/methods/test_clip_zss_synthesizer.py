"""CLIP-ZSS's pseudo-weight synthesizer and loss: identity start, gradient to the encoder,
ZegCLIP's focal + dice criterion, sigmoid logits at the prior odds."""
import math

import pytest
import torch
import torch.nn.functional as F

from ovseg_bench_methods.clip_zss import PseudoWeightSynthesizer, SigmoidLogits, focal_dice_loss
from clip_zss_world import SEEN, backbone, make_head, scene  # noqa: F401 (backbone: a fixture)


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
