"""CLIP-ZSS's Pixel Learning Module, the clustering side: multi-scale K-means over the frozen
CLIP's dense tokens, seeded by sliding-window averages, then mask fusion, then the regions of
the unannotated pixels that become pseudo classes."""
import torch
import torch.nn.functional as F

IGNORE = 255


def window_seeds(x, weight, grid, size):
    """K-means seeds of a batch: the weighted mean token of every ``size`` x ``size`` window
    of the ``grid`` (h, w) token map (stride ``size``; border windows may be smaller).

    ``x`` B,N,D tokens (N = h*w, row-major); ``weight`` B,N in [0, 1] (the unpadded share of
    each token). Returns ``(seeds B,K,D L2-normalised, alive B,K bool)``; a window with no
    weight (all padding) is not alive.
    """
    b, n, d = x.shape
    h, w = grid
    size = max(1, min(int(size), max(h, w)))
    xw = (x * weight[..., None]).transpose(1, 2).reshape(b, d, h, w)
    num = F.avg_pool2d(xw, size, size, ceil_mode=True)          # same divisor as den
    den = F.avg_pool2d(weight.reshape(b, 1, h, w), size, size, ceil_mode=True)
    seeds = F.normalize((num / den.clamp_min(1e-12)).flatten(2).transpose(1, 2), dim=-1)
    return seeds, den.flatten(1) > 0


def seeded_kmeans(x, weight, seeds, alive, iters=10):
    """Spherical (cosine) K-means of a batch from given seeds. ``x`` B,N,D and ``seeds``
    B,K,D L2-normalised, ``weight`` B,N token weights (0: ignored by the centres), ``alive``
    B,K (dead seeds take no token). Returns ``(assign B,N long, centres B,K,D)``."""
    centres = seeds
    k = seeds.shape[1]

    def assign_of(c):
        return (x @ c.transpose(1, 2)).masked_fill(~alive[:, None, :], float('-inf')).argmax(2)

    for _ in range(iters):
        member = F.one_hot(assign_of(centres), k).to(x.dtype) * weight[..., None]  # B,N,K
        sums = member.transpose(1, 2) @ x
        counts = member.sum(1)[..., None]
        centres = torch.where(counts > 0, F.normalize(sums, dim=-1), centres)
    return assign_of(centres), centres


def fuse_groups(means, sizes, threshold):
    """Mask fusion where each mask (seed) is used once: masks are visited from the largest;
    an unused mask opens a group and takes every still-unused mask whose mean token has
    cosine above ``threshold`` with its own. Not transitive: a mask similar only to a member
    of a group stays out of it. ``means`` M,D L2-normalised, ``sizes`` M. Returns the group
    index (0..G-1, in order of opening) of every mask."""
    sim = means @ means.t()
    group = torch.full((len(means),), -1, dtype=torch.long, device=means.device)
    g = 0
    for i in sizes.argsort(descending=True, stable=True).tolist():
        if group[i] >= 0:
            continue
        take = (group < 0) & (sim[i] > threshold)
        take[i] = True
        group[take] = g
        g += 1
    return group


def fuse_masks(x, weight, assigns, threshold):
    """The regions of one image from its multi-scale K-means masks.

    ``x`` N,D tokens, ``weight`` N (0: a padding token), ``assigns`` one N-long assignment per
    scale. Masks (non-empty clusters of every scale, over the unpadded tokens) are grouped
    by :func:`fuse_groups`; a region is the union of its group's masks. A token lies in one
    mask per scale, hence possibly in several regions: it takes the one whose prototype
    (normalised weighted mean token) it is most similar to. Returns ``(label N long: region
    index, -1 on padding tokens; prototypes G,D)``; regions left without tokens are dropped.
    """
    real = weight > 0
    masks = []
    for assign in assigns:
        one_hot = F.one_hot(assign, int(assign.max()) + 1).t().bool() & real   # k,N
        masks.append(one_hot[one_hot.any(1)])
    masks = torch.cat(masks)                                                  # M,N
    wm = masks.float() * weight
    means = F.normalize(wm @ x, dim=-1)
    group = fuse_groups(means, wm.sum(1), threshold)
    member = (F.one_hot(group).t().float() @ masks.float()) > 0              # G,N union
    protos = F.normalize((member.float() * weight) @ x, dim=-1)
    score = (x @ protos.t()).masked_fill(~member.t(), -2.0)
    label = torch.where(real, score.argmax(1), -1)
    used = torch.unique(label[real])
    remap = torch.full((protos.shape[0] + 1,), -1, dtype=torch.long, device=x.device)
    remap[used] = torch.arange(len(used), device=x.device)
    label = remap[label]                                     # -1 maps through remap[-1]
    protos = F.normalize((F.one_hot(label.clamp_min(0), len(used)).t().float()
                          * (weight * real)) @ x, dim=-1)
    return label, protos


def multiscale_regions(x, weight, grid, windows=(4, 2), threshold=0.9, iters=10):
    """Regions of a batch: seeded K-means once per window size in ``windows`` (seeds:
    :func:`window_seeds`), then :func:`fuse_masks` per image. ``x`` B,N,D L2-normalised
    tokens on the ``grid``, ``weight`` B,N. Returns a list of B ``(label, prototypes)``."""
    assigns = []
    for size in windows:
        seeds, alive = window_seeds(x, weight, grid, size)
        assigns.append(seeded_kmeans(x, weight, seeds, alive, iters)[0])
    return [fuse_masks(x[i], weight[i], [a[i] for a in assigns], threshold)
            for i in range(len(x))]


def pseudo_regions(target, valid, tokens, windows, threshold, min_ignore, max_regions, iters=10):
    """The PLM's pseudo classes of a batch.

    ``target`` B,H,W (seen index or 255), ``valid`` B,H,W bool (False: padding), ``tokens``
    B,h,w,D L2-normalised teacher tokens. A region (:func:`multiscale_regions` over the
    unpadded tokens) is a pseudo class of its image when at least ``min_ignore`` of its
    patches are unannotated and unpadded; at most ``max_regions`` per image (the largest).
    Returns B,h,w long: the pseudo class index of each patch's region, or -1.
    """
    b, h, w, _ = tokens.shape
    weight = F.adaptive_avg_pool2d(valid.float()[:, None], (h, w))[:, 0].flatten(1)
    open_ = F.adaptive_avg_pool2d(((target == IGNORE) & valid).float()[:, None],
                                  (h, w))[:, 0].flatten(1)
    out = torch.full((b, h * w), -1, dtype=torch.long, device=tokens.device)
    fused = multiscale_regions(tokens.reshape(b, h * w, -1), weight, (h, w), windows,
                               threshold, iters)
    for i, (label, protos) in enumerate(fused):
        g = protos.shape[0]
        inside = label >= 0
        size = torch.zeros(g, device=tokens.device).index_add_(0, label[inside],
                                                               weight[i][inside])
        share = torch.zeros(g, device=tokens.device).index_add_(
            0, label[inside], open_[i][inside]) / size.clamp_min(1e-12)
        keep = (share >= min_ignore).nonzero()[:, 0]
        keep = keep[size[keep].argsort(descending=True, stable=True)][:max_regions]
        remap = torch.full((g + 1,), -1, dtype=torch.long, device=tokens.device)
        remap[keep] = torch.arange(len(keep), device=tokens.device)
        out[i] = remap[label]
    return out.view(b, h, w)
