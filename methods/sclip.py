"""SCLIP (Wang et al., "SCLIP: Rethinking Self-Attention for Dense Vision-Language
Inference", ECCV 2024; official code wangf3014/SCLIP)."""
import torch.nn.functional as F

from ovseg_bench.backbones import LastBlock
from ovseg_bench.head import MethodHead
from ovseg_bench.registry import register_method


def self_attention(a, v):
    """softmax(a a^T / sqrt(d)) v per head (a, v: B,heads,T,d)."""
    return ((a @ a.transpose(-2, -1)) * a.shape[-1] ** -0.5).softmax(-1) @ v


def correlative_attention(q, k, v, grid=None):
    """SCLIP's correlative self-attention: (softmax(q q^T) + softmax(k k^T)) v, per head."""
    return self_attention(q, v) + self_attention(k, v)


def cosine_logits(patch, class_embeds):
    """B,h,w,D patch embeddings vs K,D normalised class embeddings -> B,K,h,w cosines."""
    return (F.normalize(patch, dim=-1) @ class_embeds.t()).permute(0, 3, 1, 2)


@register_method(display_name='SCLIP', trainable=False, config='sclip/sclip_tiny_synth.py')
class SCLIP(MethodHead):
    """SCLIP: training-free, correlative self-attention (q-q + k-k) in CLIP's last block.

    The released code (``clip/model.py``) replaces only the attention weights of the last
    block, softmax(q q^T / sqrt(d)) + softmax(k k^T / sqrt(d)), and keeps the block's
    residual and MLP: ``form='released'`` (the default). ``form='reduced'`` drops both, the
    block ClearCLIP and NACLIP build on (the backbone's ``last_block='csa'``). Every token's
    output passes ln_post and the projection and is compared with the class embeddings by
    cosine similarity. The logit scale, the sliding windows and PAMR are protocol.
    """
    FORMS = ('released', 'reduced')

    def __init__(self, backbone, form='released'):
        super().__init__(backbone)
        if form not in self.FORMS:
            raise ValueError(f'SCLIP form must be one of {self.FORMS}, got {form!r}')
        self.form = form
        full = form == 'released'
        self.last_block = LastBlock(correlative_attention, residual=full, mlp=full)
        self.backbone.requires_grad_(False)

    def predict_dense(self, images, class_embeds):
        patch = self.backbone.forward_dense(images, last_block=self.last_block).patch
        return cosine_logits(patch, class_embeds)
