"""MaskCLIP (Zhou et al., "Extract Free Dense Labels from CLIP", ECCV 2022)."""
import torch.nn.functional as F

from ovseg_bench.head import MethodHead
from ovseg_bench.registry import register_method


@register_method(display_name='MaskCLIP', trainable=False,
                 config='maskclip/maskclip_tiny_synth.py')
class MaskCLIP(MethodHead):
    """MaskCLIP: training-free, last block's value embeddings vs class text embeddings.

    The paper's observation: in CLIP's last attention block, the query-key pooling mixes all
    patches into the class token, while the value path keeps each patch's own semantics. So
    the last block is replaced by its value projection and output projection (no residual, no
    MLP), followed by ln_post and the image projection (``last_block='value'`` of the
    backbone), and every patch is compared with the class text embeddings by cosine similarity.

    Choices: the paper's optional key smoothing and prompt denoising are refinements on top of
    the dense logits and are left out (post-processing belongs to the protocol); the backbone
    is frozen. ``last_block`` is exposed so the same head can run the std/vv/csa variants.
    """
    def __init__(self, backbone, last_block='value'):
        super().__init__(backbone)
        if last_block not in backbone.LAST_BLOCKS:
            raise ValueError(f'last_block must be one of {backbone.LAST_BLOCKS}, '
                             f'got {last_block!r}')
        self.last_block = last_block
        self.backbone.requires_grad_(False)

    def predict_dense(self, images, class_embeds):
        patch = F.normalize(self.backbone.forward_dense(images, last_block=self.last_block).patch,
                            dim=-1)
        return (patch @ class_embeds.t()).permute(0, 3, 1, 2)
