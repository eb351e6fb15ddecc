"""ClearCLIP (Lan et al., "ClearCLIP: Decomposing CLIP Representations for Dense
Vision-Language Inference", ECCV 2024; official code mc-lan/ClearCLIP)."""
from ovseg_bench.backbones import LastBlock
from ovseg_bench.head import MethodHead
from ovseg_bench.registry import register_method

from .sclip import cosine_logits, self_attention


def query_attention(q, k, v, grid=None):
    """ClearCLIP's self-self attention: softmax(q q^T / sqrt(d)) v, per head."""
    return self_attention(q, v)


@register_method(display_name='ClearCLIP', trainable=False,
                 config='clearclip/clearclip_tiny_synth.py')
class ClearCLIP(MethodHead):
    """ClearCLIP: training-free, CLIP's last block reduced to q-q attention, no residual, no FFN.

    The paper's three changes to the final block: query-query attention in place of
    query-key, the residual connection removed and the feed-forward network discarded; the
    attention output goes through ln_post and the projection. ``residual=True`` is the code's
    ``ignore_residual=False`` option (residual and FFN kept, as in SCLIP's block). Logit
    scale, windows and background threshold are protocol.
    """
    def __init__(self, backbone, residual=False):
        super().__init__(backbone)
        self.residual = bool(residual)
        self.last_block = LastBlock(query_attention, residual=self.residual, mlp=self.residual)
        self.backbone.requires_grad_(False)

    def predict_dense(self, images, class_embeds):
        patch = self.backbone.forward_dense(images, last_block=self.last_block).patch
        return cosine_logits(patch, class_embeds)
