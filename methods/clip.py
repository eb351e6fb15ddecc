"""CLIP (Radford et al., "Learning Transferable Visual Models From Natural Language
Supervision", ICML 2021): contrastive image-caption pretraining, and its plain dense baseline."""
import torch
import torch.nn.functional as F

from ovseg_bench.head import MethodHead
from ovseg_bench.losses import info_nce
from ovseg_bench.registry import register_method


@register_method(display_name='CLIP', config='clip/clip_tiny_synth.py')
class CLIP(MethodHead):
    """CLIP: symmetric image-caption InfoNCE; dense = standard patch tokens vs class text.

    Training: the image embedding (the backbone's class token in the joint space) and the
    caption embedding (the text tower's) are L2-normalised; their cosine similarities times
    the backbone's learned temperature (``logit_scale``, clamped at ``max_logit_scale`` = 100
    as in CLIP) are scored by cross-entropy over the captions for each image and over the
    images for each caption, averaged. The whole backbone is trained (its learning rate is
    the trainer's ``lr * backbone_lr_mult``); this is how the project pretrains its tiny CLIP.

    ``patch_dropout`` (FLIP, Li et al., "Scaling Language-Image Pre-training via Masking",
    CVPR 2023): during training each image's encoder sees only a random ``1 - p`` of its
    patch tokens (the class token always), which cuts the image tower's cost by about ``p``;
    inference always sees every patch. FLIP then tunes briefly without masking; here the
    masked model is used as it is (measured in docs/measurements.md, the tiny CLIP).

    Choices: in distributed training the negatives are the captions/images of all ranks
    (``gather=True``; each rank scores its own rows against every rank's columns), as CLIP
    does; ``gather=False`` uses the local batch only. The temperature is clamped in the
    forward pass (the parameter itself is left as is). Inference (``predict_dense``): every
    patch token of the standard last block, after ``ln_post`` and the projection, is compared
    with the class embeddings by cosine -- the naive dense CLIP that MaskCLIP improves on.
    """

    def __init__(self, backbone, max_logit_scale=100.0, gather=True, patch_dropout=0.0):
        super().__init__(backbone)
        if not 0.0 <= patch_dropout < 1.0:
            raise ValueError(f'patch_dropout must lie in [0, 1), got {patch_dropout}')
        self.max_logit_scale = float(max_logit_scale)
        self.gather = gather
        self.patch_dropout = float(patch_dropout)

    def _encode_masked(self, images):
        """Image embeddings from a random ``1 - patch_dropout`` of each image's patches."""
        x, _ = self.backbone.embed(images)
        b, t, w = x.shape
        keep = max(1, round((t - 1) * (1.0 - self.patch_dropout)))
        idx = torch.rand(b, t - 1, device=x.device).argsort(1)[:, :keep] + 1
        x = torch.cat([x[:, :1], x.gather(1, idx[..., None].expand(-1, -1, w))], dim=1)
        return self.backbone.pool(self.backbone.run_blocks(x))

    def forward_train(self, batch):
        images = batch['images']
        img = self._encode_masked(images) if self.patch_dropout else \
            self.backbone.encode_image(images)
        img = F.normalize(img, dim=-1)
        tokens = self.backbone.tokenize(list(batch['captions'])).to(images.device)
        txt = F.normalize(self.backbone.encode_text(tokens), dim=-1)
        scale = self.backbone.logit_scale.clamp(max=self.max_logit_scale)
        out = info_nce(img, txt, scale, gather=self.gather)
        acc_i2t, acc_t2i = out.accuracy()
        return dict(loss_clip=out.loss, logit_scale=scale.detach(), acc_i2t=acc_i2t,
                    acc_t2i=acc_t2i)

    def predict_dense(self, images, class_embeds):
        patch = F.normalize(self.backbone.forward_dense(images).patch, dim=-1)
        return torch.einsum('bhwd,kd->bkhw', patch, class_embeds.to(patch.dtype))
