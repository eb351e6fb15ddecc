"""Pixel-adaptive mask refinement (PAMR; Araslanov & Roth, CVPR 2020), as TCL and NACLIP run it.

Each step replaces every pixel's scores by a weighted sum of its 8 neighbours at each
dilation (borders replicated). The weights come from the image alone: for each neighbour the
absolute colour difference, divided by 0.1 x the local standard deviation (over the 3x3
neighbourhood at every dilation, centre included), negated, averaged over colour channels
and softmax-normalised over all the neighbours. Everything runs on whole B,C,H,W tensors.
"""
import torch
import torch.nn.functional as F


def neighbours(x, dilations, centre=False):
    """B,C,P,H,W: the values at the 3x3 offsets of each dilation (the centre only when
    ``centre``), row-major per dilation, with replicated borders."""
    h, w = x.shape[-2:]
    out = []
    for d in dilations:
        padded = F.pad(x, [d] * 4, mode='replicate')
        for dy in (-d, 0, d):
            for dx in (-d, 0, d):
                if dy or dx or centre:
                    out.append(padded[..., d + dy:d + dy + h, d + dx:d + dx + w])
    return torch.stack(out, 2)


def pamr_weights(image, dilations):
    """B,1,P,H,W neighbour weights of ``image`` (B,3,H,W), summing to 1 over P."""
    image = image.float()
    std = neighbours(image, dilations, centre=True).std(2, keepdim=True)
    diff = (neighbours(image, dilations) - image[:, :, None]).abs()
    affinity = -diff / (1e-8 + 0.1 * std)
    return affinity.mean(1, keepdim=True).softmax(2)


def pamr(image, scores, steps=10, dilations=(8, 16)):
    """Refine ``scores`` (B,C,H,W, at ``image``'s size) with ``steps`` PAMR steps."""
    if scores.shape[-2:] != image.shape[-2:]:
        scores = F.interpolate(scores, size=image.shape[-2:], mode='bilinear',
                               align_corners=True)
    weights = pamr_weights(image, dilations).unbind(2)
    h, w = scores.shape[-2:]
    offsets = [(d, dy, dx) for d in dilations for dy in (-d, 0, d) for dx in (-d, 0, d)
               if dy or dx]
    for _ in range(steps):
        # neighbours summed one at a time: no B,C,P,H,W stack of the (many-channel) scores
        padded = {d: F.pad(scores, [d] * 4, mode='replicate') for d in dilations}
        out = torch.zeros_like(scores)
        for (d, dy, dx), weight in zip(offsets, weights):
            out.addcmul_(padded[d][..., d + dy:d + dy + h, d + dx:d + dx + w], weight)
        scores = out
    return scores
