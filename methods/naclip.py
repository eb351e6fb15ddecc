"""NACLIP (Hajimiri et al., "Pay Attention to Your Neighbours: Training-Free Open-Vocabulary
Semantic Segmentation", WACV 2025; official code sinahmr/NACLIP)."""
import torch

from ovseg_bench.backbones import LastBlock
from ovseg_bench.head import MethodHead
from ovseg_bench.registry import register_method

from .sclip import cosine_logits


def neighbourhood_prior(h, w, std, prefix=1):
    """(prefix+h*w) x (prefix+h*w) additive attention prior: exp(-|p_i - p_j|^2 / (2 std^2))
    between patch positions (row-major, in patch units), zero in the rows and columns of the
    ``prefix`` tokens before the patches (the class token)."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float), torch.arange(w, dtype=torch.float),
                            indexing='ij')
    pos = torch.stack([ys.flatten(), xs.flatten()], dim=1)            # h*w, 2
    prior = torch.zeros(prefix + h * w, prefix + h * w)
    prior[prefix:, prefix:] = torch.exp(-torch.cdist(pos, pos).square() / (2 * std ** 2))
    return prior


class NeighbourhoodAttention:
    """NACLIP's attention: softmax(k k^T / sqrt(d) + Gaussian neighbourhood prior) v per head
    (the prior is not scaled; it is the same for every head), or without the prior
    (``std=None``: plain k-k attention, the paper's ablation)."""

    def __init__(self, std):
        self.std = std
        self._priors = {}

    def __call__(self, q, k, v, grid):
        scores = (k @ k.transpose(-2, -1)) * k.shape[-1] ** -0.5
        if self.std is not None:
            prefix = scores.shape[-1] - grid[0] * grid[1]
            key = (tuple(grid), prefix, scores.device, scores.dtype)
            if key not in self._priors:
                self._priors[key] = neighbourhood_prior(*grid, self.std, prefix).to(scores)
            scores = scores + self._priors[key]
        return scores.softmax(-1) @ v


@register_method(display_name='NACLIP', trainable=False,
                 config='naclip/naclip_tiny_synth.py')
class NACLIP(MethodHead):
    """NACLIP: training-free, k-k attention plus a Gaussian neighbourhood prior, reduced block.

    The official defaults (``arch='reduced'``, ``attn_strategy='naclip'``,
    ``gaussian_std=5``): the last block keeps only its attention, with key-key similarity
    plus a Gaussian kernel over patch distances (std in patches) before the softmax, no
    residual and no FFN; ln_post and the projection follow. ``arch='vanilla'`` keeps the
    residual and the FFN; ``gaussian_std=None`` drops the kernel (k-k only). PAMR, windows and
    thresholds are protocol.
    """
    ARCHS = ('reduced', 'vanilla')

    def __init__(self, backbone, gaussian_std=5.0, arch='reduced'):
        super().__init__(backbone)
        if arch not in self.ARCHS:
            raise ValueError(f'NACLIP arch must be one of {self.ARCHS}, got {arch!r}')
        if gaussian_std is not None and not gaussian_std > 0:
            raise ValueError(f'NACLIP gaussian_std must be > 0 (or None), got {gaussian_std!r}')
        self.gaussian_std, self.arch = gaussian_std, arch
        full = arch == 'vanilla'
        self.last_block = LastBlock(NeighbourhoodAttention(gaussian_std), residual=full, mlp=full)
        self.backbone.requires_grad_(False)

    def predict_dense(self, images, class_embeds):
        patch = self.backbone.forward_dense(images, last_block=self.last_block).patch
        return cosine_logits(patch, class_embeds)
