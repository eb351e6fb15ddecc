"""PAMR (ovseg_bench/pamr.py) against a plain reference written as TCL's and NACLIP's pamr.py
compute it: 3x3 shift kernels applied by dilated convolutions on replicate-padded maps."""
import pytest
import torch
import torch.nn.functional as F

from ovseg_bench.pamr import pamr


def official_pamr(image, mask, steps, dilations):
    """The reference: per dilation, a convolution with one-hot 3x3 kernels (8 neighbours, or
    all 9 positions for the local standard deviation), dilated by d, on replicate padding."""
    def shifts(x, with_centre):
        b, k, h, w = x.shape
        kernels = []
        for i in range(3):
            for j in range(3):
                if (i, j) != (1, 1) or with_centre:
                    kern = torch.zeros(1, 3, 3)
                    kern[0, i, j] = 1
                    kernels.append(kern)
        weight = torch.stack(kernels)
        flat = x.reshape(b * k, 1, h, w)
        outs = [F.conv2d(F.pad(flat, [d] * 4, mode='replicate'), weight, dilation=d)
                for d in dilations]
        return torch.cat(outs, 1).view(b, k, -1, h, w)

    mask = F.interpolate(mask, size=image.shape[-2:], mode='bilinear', align_corners=True)
    std = shifts(image, True).std(2, keepdim=True)
    aff = -(image[:, :, None] - shifts(image, False)).abs() / (1e-8 + 0.1 * std)
    aff = aff.mean(1, keepdim=True).softmax(2)
    for _ in range(steps):
        mask = (shifts(mask, False) * aff).sum(2)
    return mask


@pytest.mark.parametrize('steps,dilations', [(10, (8, 16)), (10, (1, 2, 4, 8, 12, 24)),
                                             (1, (1,))])
def test_pamr_matches_the_reference_on_a_batch(steps, dilations):
    torch.manual_seed(0)
    image = torch.randn(2, 3, 37, 53)
    scores = torch.randn(2, 5, 37, 53)
    got = pamr(image, scores, steps, dilations)
    want = official_pamr(image, scores, steps, dilations)
    assert got.shape == (2, 5, 37, 53)
    assert torch.allclose(got, want, atol=1e-5)


def test_pamr_resizes_low_resolution_scores_and_smooths_within_regions():
    # two flat regions split down the middle; noisy scores become flat inside each region
    image = torch.zeros(1, 3, 32, 32)
    image[..., 16:] = 1.0
    torch.manual_seed(0)
    scores = torch.randn(1, 2, 16, 16)
    out = pamr(image, scores, steps=100, dilations=(1, 2, 4))
    assert out.shape == (1, 2, 32, 32)
    assert torch.allclose(out, official_pamr(image, scores, 100, (1, 2, 4)), atol=1e-5)
    left, right = out[..., :, :16], out[..., :, 16:]
    assert left.std() < 0.2 * scores.std() and right.std() < 0.2 * scores.std()
    # the edge holds the halves apart: on a flat image the same scores mix across it
    flat = pamr(torch.zeros_like(image), scores, steps=100, dilations=(1, 2, 4))
    gap = (left.mean((2, 3)) - right.mean((2, 3))).abs().max()
    flat_gap = (flat[..., :16].mean((2, 3)) - flat[..., 16:].mean((2, 3))).abs().max()
    assert gap > 3 * flat_gap
