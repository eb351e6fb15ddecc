"""Vision foundation models (DINO, DINOv2, ...) through timm: an image-only backbone that
gives dense patch features, for methods that use one beside CLIP (e.g. ProxyCLIP)."""
import logging
from pathlib import Path

import torch

from ..registry import BACKBONES
from ._vit import interpolate_grid
from .base import RANDOM_WEIGHTS, Freezable

logger = logging.getLogger(__name__)


@BACKBONES.register_module()
class TimmVFM(Freezable):
    """Vision foundation model (timm ViT: DINO, DINOv2) as dense features; local weights only.

    e.g. ``vit_base_patch8_224.dino``, ``vit_base_patch14_reg4_dinov2.lvd142m``.

    Args:
        model: a timm model name.
        pretrained: a local checkpoint file (timm's own converter for the model reads it, so
            the official DINO / DINOv2 releases load as they are); ``None`` means random
            weights, on purpose (a warning says so).
        frozen: no parameter requires grad and the module stays in eval mode.
        pos_interpolation: how positions are resized off the pretraining grid: ``timm``
            (timm's own resampling) or ``dino`` (DINO's ``interpolate_pos_encoding``, which
            ProxyCLIP runs; for ViTs with one class token and no registers).
        **model_kwargs: passed to ``timm.create_model`` (e.g. ``img_size``).

    ``forward_patch`` takes images normalised with this model's own ``mean``/``std`` (0..255
    scale, from timm's pretrained config) at any size divisible by ``patch_size`` (positions
    are resampled by timm) and returns the last block's patch tokens after the final norm.
    """

    def __init__(self, model, pretrained=None, frozen=True, pos_interpolation='timm',
                 **model_kwargs):
        super().__init__()
        import timm
        arch = str(model).split('.')[0]
        if not timm.is_model(arch):
            raise ValueError(f'unknown timm model {model!r} (names: timm.list_models(), '
                             f'e.g. vit_base_patch8_224.dino)')
        kwargs = dict(model_kwargs, dynamic_img_size=True, num_classes=0)
        if pretrained is not None:
            path = Path(pretrained)
            if not path.is_file():
                raise FileNotFoundError(f'vision model checkpoint not found: {path} (weights '
                                        f'are never downloaded: give a local checkpoint file)')
            self.model = timm.create_model(model, pretrained=True,
                                           pretrained_cfg_overlay=dict(file=str(path)), **kwargs)
            logger.info('TimmVFM(%s): loaded %s', model, path)
        else:
            self.model = timm.create_model(model, pretrained=False, **kwargs)
            logger.warning('TimmVFM(%s): pretrained=None, ' + RANDOM_WEIGHTS + ' (initialised '
                           'on purpose, nothing loaded)', model)
        self.model_name = model
        patch = self.model.patch_embed.patch_size
        if patch[0] != patch[1]:
            raise ValueError(f'{model}: non-square patches {patch} are not supported')
        self.patch_size = int(patch[0])
        self.width = int(self.model.num_features)
        cfg = self.model.pretrained_cfg
        self.mean = tuple(float(m) * 255 for m in cfg.get('mean', (0.485, 0.456, 0.406)))
        self.std = tuple(float(s) * 255 for s in cfg.get('std', (0.229, 0.224, 0.225)))
        if pos_interpolation not in ('timm', 'dino'):
            raise ValueError(f"pos_interpolation must be 'timm' or 'dino', got "
                             f"{pos_interpolation!r}")
        if pos_interpolation == 'dino' and (self.model.num_prefix_tokens != 1
                                            or getattr(self.model, 'no_embed_class', False)):
            raise ValueError(f"{model}: pos_interpolation='dino' needs a ViT whose positional "
                             f"table holds one class position and the patches (DINO's layout)")
        self.pos_interpolation = pos_interpolation
        self.freeze(frozen)

    def forward_patch(self, images):
        """B,h,w,C final-norm patch tokens of B,3,H,W images (H, W divisible by the patch)."""
        H, W = images.shape[-2:]
        p = self.patch_size
        if H % p or W % p:
            raise ValueError(f'image size {H}x{W} is not divisible by the patch size {p}')
        if self.pos_interpolation == 'timm':
            tokens = self.model.forward_features(images)
        else:
            tokens = self._forward_dino_positions(images, (H // p, W // p))
        patch = tokens[:, self.model.num_prefix_tokens:]
        return patch.reshape(images.shape[0], H // p, W // p, -1)

    def _forward_dino_positions(self, images, grid):
        """timm's forward_features with DINO's positional resize."""
        m = self.model
        x = m.patch_embed.norm(m.patch_embed.proj(images).flatten(2).transpose(1, 2))
        x = torch.cat([m.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        native = tuple(int(g) for g in m.patch_embed.grid_size)
        x = m.pos_drop(x + interpolate_grid(m.pos_embed[0], native, grid, 'dino').to(x.dtype))
        x = m.norm_pre(x)
        for blk in m.blocks:
            x = blk(x)
        return m.norm(x)

    def renormalize(self, images, mean, std):
        """Images normalised with ``mean``/``std`` (0..255 scale, e.g. CLIP's) -> normalised
        with this model's own."""
        def col(t):
            return torch.tensor(t, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
        return (images * col(std) + col(mean) - col(self.mean)) / col(self.std)
