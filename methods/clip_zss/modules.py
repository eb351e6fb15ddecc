"""CLIP-ZSS's trainable parts besides the encoder's loss terms: the segmentation encoders, the
pseudo-weight synthesizer, and ZegCLIP's non-mutually-exclusive loss (sigmoid focal + dice)."""
import copy
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


# ---------------------------------------------------------------------------- synthesizer
class PseudoWeightSynthesizer(nn.Module):
    """Region centroids of the encoder's features -> classifier weights in the text space.

    One pre-norm cross-attention block whose queries are the centroids and whose key and
    value are the image's CLIP class token, then an MLP; both residual, their last layers
    zero-initialised so that a fresh synthesizer returns its query. Output L2-normalised.
    """

    def __init__(self, dim, num_heads=4, mlp_ratio=2.0):
        super().__init__()
        heads = num_heads if dim % num_heads == 0 else 1
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm_mlp = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        for layer in (self.attn.out_proj, self.mlp[-1]):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, queries, context):
        """``queries`` B,Q,D centroids; ``context`` B,T,D (the class token: T = 1)."""
        kv = self.norm_kv(context)
        x = queries + self.attn(self.norm_q(queries), kv, kv, need_weights=False)[0]
        x = x + self.mlp(self.norm_mlp(x))
        return F.normalize(x, dim=-1)


class SigmoidLogits(nn.Module):
    """Cosine -> logit for sigmoid losses: ``exp(t) * cos + b``, ``t`` and ``b`` learned.

    Initialised by SigLIP's rule: scale 10, and the bias at the log prior odds of a positive,
    so that training starts near the prior (SigLIP's -10 is that rule for one positive in its
    ~32k-pair batch; :meth:`for_classes` applies it to one positive class among ``n``)."""

    @classmethod
    def for_classes(cls, n):
        """Logits of one-of-``n`` targets: bias ``log(1 / (n - 1))``."""
        return cls(bias=-math.log(max(n - 1, 1)))

    def __init__(self, scale=10.0, bias=-10.0):
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale)))
        self.bias = nn.Parameter(torch.tensor(float(bias)))

    def forward(self, cos):
        return cos * self.log_scale.exp() + self.bias


# ---------------------------------------------------------------------------- NEL loss
def focal_dice_loss(logits, target, valid=None, alpha=0.25, gamma=2.0):
    """ZegCLIP's non-mutually-exclusive loss over per-class sigmoid logits.

    ``logits`` B,C,H,W; ``target`` B,H,W class index or 255. Every class map of every image
    is a binary problem whose positives are the pixels of that class; ignore pixels are
    negatives of every class (as in ZegCLIP's criterion). Focal: per map, the mean over its
    pixels of the sigmoid focal loss (alpha 0.25, gamma 2), summed over all B*C maps; dice
    (``1 - (2 sum(p t) + 1) / (sum p + sum t + 1)``): summed over the maps of the classes
    present in each image. Both divided by the number of present (image, class) pairs.
    ``valid`` B,H,W bool restricts both to those pixels (padding is no negative).
    Returns ``(focal, dice)``.
    """
    b, c = logits.shape[:2]
    onehot = F.one_hot(target.clamp(max=c), c + 1)[..., :c].permute(0, 3, 1, 2).float()
    if valid is None:
        valid = torch.ones_like(target, dtype=torch.bool)
    v = valid[:, None].float().expand_as(logits).flatten(2)
    x, t = logits.flatten(2), onehot.flatten(2)
    present = t.sum(-1) > 0                                               # B,C
    n_masks = present.sum().clamp_min(1)
    ce = F.binary_cross_entropy_with_logits(x, t, reduction='none')
    p = x.sigmoid()
    p_t = p * t + (1 - p) * (1 - t)
    focal = ce * (1 - p_t) ** gamma * (alpha * t + (1 - alpha) * (1 - t))
    focal = ((focal * v).sum(-1) / v.sum(-1).clamp_min(1)).sum() / n_masks
    dice = 1 - (2 * (p * t * v).sum(-1) + 1) / ((p * v).sum(-1) + (t * v).sum(-1) + 1)
    return focal, dice[present].sum() / n_masks


# ---------------------------------------------------------------------------- encoders
def _strip_text_tower(backbone):
    """Delete the text tower's parameters from a backbone copy used as an image encoder."""
    if getattr(backbone, 'model', None) is None:
        return
    for name, tensor in backbone.text_named_tensors():
        if name in ('logit_scale', 'logit_bias'):
            tensor.requires_grad_(False)    # kept for loading, unused by an image encoder
            continue
        owner, _, leaf = name.rpartition('.')
        module = backbone.model.get_submodule(owner) if owner else backbone.model
        if leaf in module._parameters:
            del module._parameters[leaf]


class CLIPViTEncoder(nn.Module):
    """A trainable copy of the shared CLIP ViT's image tower (text tower dropped).

    Dense output: the copy's patch tokens after ln_post and proj (the CLIP image-text space),
    ``last_block`` choosing the final block's variant (``std``: the ViT as pretrained).
    """

    def __init__(self, backbone, last_block='std'):
        super().__init__()
        if last_block not in backbone.LAST_BLOCKS:
            raise ValueError(f'last_block must be one of {backbone.LAST_BLOCKS}, '
                             f'got {last_block!r}')
        vit = copy.deepcopy(backbone)
        if hasattr(vit, 'frozen'):
            vit.frozen = False
        vit.requires_grad_(True)
        _strip_text_tower(vit)
        self.vit = vit
        self.last_block = last_block
        self.out_dim = backbone.embed_dim

    def forward(self, images):
        patch = self.vit.forward_dense(images, last_block=self.last_block).patch
        return patch.permute(0, 3, 1, 2)                                      # B,D,h,w


class MMSegEncoder(nn.Module):
    """A closed-set mmseg segmenter's backbone + decode head as the encoder (the paper's
    SegFormer / Swin / SegNeXt; e.g. ``MixVisionTransformer`` + ``SegformerHead``), its
    classifier resized to output the joint-space width, so its output is the dense feature
    map. ``pretrained``: a local ImageNet checkpoint of the backbone (mmseg's format, loaded
    through the backbone's ``init_cfg``), or ``None`` for random initialisation; required, so
    that a random encoder is always a stated choice."""

    def __init__(self, out_dim, backbone, decode_head, pretrained, neck=None):
        super().__init__()
        import mmseg.models  # noqa: F401  (registers mmseg's modules)
        from mmseg.registry import MODELS
        backbone = dict(backbone)
        if pretrained is not None:
            if not Path(pretrained).is_file():
                raise FileNotFoundError(
                    f'method.encoder.pretrained: no file {pretrained!r} (a local ImageNet '
                    f'checkpoint of the encoder backbone; None for random initialisation)')
            if backbone.get('init_cfg'):
                raise ValueError('give method.encoder.pretrained or encoder.backbone.init_cfg, '
                                 'not both')
            backbone['init_cfg'] = dict(type='Pretrained', checkpoint=str(pretrained))
        self.backbone = MODELS.build(backbone)
        self.neck = MODELS.build(neck) if neck is not None else None
        head = dict(decode_head)
        head.update(num_classes=out_dim, out_channels=out_dim, threshold=None,
                    loss_decode=dict(type='CrossEntropyLoss', loss_weight=0.0))
        self.decode_head = MODELS.build(head)
        self.out_dim = out_dim
        for module in (self.backbone, self.neck, self.decode_head):
            if module is not None and hasattr(module, 'init_weights'):
                module.init_weights()

    def forward(self, images):
        feats = self.backbone(images)
        if self.neck is not None:
            feats = self.neck(feats)
        return self.decode_head(feats)                                        # B,D,h,w


def build_encoder(cfg, backbone):
    cfg = dict(cfg or {})
    kind = cfg.pop('type', 'clip_vit')
    if kind == 'clip_vit':
        return CLIPViTEncoder(backbone, **cfg)
    if kind == 'mmseg':
        if 'pretrained' not in cfg:
            raise ValueError("method.encoder.pretrained is required for an mmseg encoder: a "
                             "local ImageNet checkpoint path, or None to say that it starts "
                             "from random weights")
        return MMSegEncoder(backbone.embed_dim, **cfg)
    raise ValueError(f"encoder type must be 'clip_vit' or 'mmseg', got {kind!r}")


