"""ProxyCLIP (Lan et al., "ProxyCLIP: Proxy Attention Improves CLIP for Open-Vocabulary
Segmentation", ECCV 2024; official code mc-lan/ProxyCLIP)."""
import torch.nn.functional as F

from ovseg_bench.head import MethodHead
from ovseg_bench.registry import BACKBONES, build, register_method

from .sclip import cosine_logits


def proxy_attention(feats, beta, gamma):
    """ProxyCLIP's attention from proxy features B,N,C: cosine similarities between all
    patches, shifted by ``beta`` times their mean (per image), scaled by ``gamma``, negatives
    masked out, softmax over keys -> B,N,N (the same for every head)."""
    f = F.normalize(feats, dim=-1)
    sim = f @ f.transpose(1, 2)
    sim = (sim - sim.mean(dim=(1, 2), keepdim=True) * beta) * gamma
    return sim.masked_fill(sim < 0, float('-inf')).softmax(-1)


@register_method(display_name='ProxyCLIP', trainable=False,
                 config='proxyclip/proxyclip_tiny_synth.py')
class ProxyCLIP(MethodHead):
    """ProxyCLIP: training-free, CLIP's last-block values mixed by a foundation model's attention.

    The VFM (``vfm``, a backbone config such as ``TimmVFM`` with DINO ViT-B/8, the paper's
    default) sees the same image in its own normalisation; its final-norm patch features give
    the attention (``proxy_attention``: cosine similarity, minus ``beta`` x mean, times
    ``gamma``, negatives masked, softmax). CLIP's last-block value embeddings of the patches
    are resized bilinearly to the VFM's patch grid, mixed by that attention, passed through
    the block's output projection (no residual, no FFN), ln_post and the projection; the
    logits come at the VFM's grid. ``vfm=None`` takes the proxy features from CLIP itself
    (its last block's output tokens), for worlds without a foundation model.
    """
    def __init__(self, backbone, vfm=None, beta=1.2, gamma=3.0):
        super().__init__(backbone)
        self.vfm = build(BACKBONES, vfm) if vfm is not None else None
        self.beta, self.gamma = float(beta), float(gamma)
        self.requires_grad_(False)

    def predict_dense(self, images, class_embeds):
        bb = self.backbone
        x, (h, w) = bb.embed(images)
        x = bb.run_blocks(x, 0, bb.num_layers - 1)
        if self.vfm is None:
            feats = bb.run_blocks(x, bb.num_layers - 1, bb.num_layers)[:, 1:]
            gh, gw = h, w
        else:
            grid = self.vfm.forward_patch(self.vfm.renormalize(images, bb.mean, bb.std))
            b, gh, gw, c = grid.shape
            feats = grid.reshape(b, gh * gw, c)
        attn = proxy_attention(feats, self.beta, self.gamma)            # B,N,N
        v = bb.qkv(x, -1)[2][:, 1:]                                      # B,h*w,W
        v = v.transpose(1, 2).reshape(v.shape[0], -1, h, w)
        v = F.interpolate(v, size=(gh, gw), mode='bilinear', align_corners=False)
        v = v.flatten(2).transpose(1, 2)                                 # B,N,W
        patch = bb.project(bb.attn_proj(attn @ v, -1))
        return cosine_logits(patch.reshape(v.shape[0], gh, gw, -1), class_embeds)
