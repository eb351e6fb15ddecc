"""open_clip CLIPs whose image tower is a timm ViT: SigLIP, SigLIP2 (timm ``VisionTransformer``
with an attention-pool head) and EVA02-CLIP (timm ``Eva``, rotary positions), behind the same
dense interface as the other adapters."""
import torch
from open_clip.timm_model import TimmModel

from .base import MissingCapability, merge_heads, split_heads
from .open_clip import OpenCLIPBackbone


def _timm_blocks():
    from timm.models.eva import EvaBlock
    from timm.models.vision_transformer import Block
    return Block, EvaBlock


class OpenCLIPTimmBackbone(OpenCLIPBackbone, tower='timm'):
    """open_clip CLIP with a timm ViT image tower (built through ``OpenCLIPBackbone`` from the
    model name: ``ViT-B-16-SigLIP``, ``ViT-B-16-SigLIP2``, ``EVA02-B-16``, ...).

    The blocks, positions (timm's resampling at other sizes, rotary embeddings for EVA02) and
    pooling are timm's own. Patch tokens reach the joint space through the tower's final norm
    and head; with an attention-pool head (SigLIP's MAP) each patch token goes through the pool
    alone, which is the pool's value path (one key: its attention weight is 1), the analogue of
    MaskCLIP's dense use of CLIP's attention pool.
    """

    def _check_tower(self, visual):
        if self.pos_interpolation != 'size':
            raise ValueError(f'{self.model_name}: timm towers resize positions timm\'s way; '
                             f'pos_interpolation={self.pos_interpolation!r} is not supported')
        block, eva_block = _timm_blocks()
        trunk = getattr(visual, 'trunk', None)
        if not isinstance(visual, TimmModel) or not hasattr(trunk, 'blocks'):
            raise ValueError(f'{self.model_name}: only ViT image towers are supported (dense '
                             f'patch tokens); got {type(trunk or visual).__name__}')
        kinds = {type(b) for b in trunk.blocks}
        if not kinds <= {block, eva_block}:
            raise ValueError(f'{self.model_name}: timm blocks {sorted(k.__name__ for k in kinds)}'
                             f' are not supported (timm Block and EvaBlock are)')
        if trunk.global_pool not in ('token', 'avg', 'map'):
            raise ValueError(f'{self.model_name}: timm pooling {trunk.global_pool!r} is not '
                             f'supported')
        if getattr(trunk, 'rope_mixed', False):
            raise ValueError(f'{self.model_name}: depth-dependent rotary embeddings are not '
                             f'supported')
        # any input size divisible by the patch: timm resamples positions (and rotary tables)
        pe = trunk.patch_embed
        from timm.layers import Format
        trunk.dynamic_img_size = True
        pe.strict_img_size, pe.flatten, pe.output_fmt = False, False, Format.NHWC

    def _tower_dims(self, visual):
        trunk = visual.trunk
        patch = trunk.patch_embed.patch_size
        if patch[0] != patch[1]:
            raise ValueError(f'{self.model_name}: non-square patches {patch} are not supported')
        self.patch_size = int(patch[0])
        size = tuple(int(s) for s in visual.image_size)
        self.image_size = size[0] if size[0] == size[1] else size
        self._native_grid = tuple(int(g) for g in trunk.patch_embed.grid_size)
        self.width = int(trunk.embed_dim)
        self.num_layers = len(trunk.blocks)
        self.num_heads = int(trunk.blocks[-1].attn.num_heads)
        self.num_prefix_tokens = int(trunk.num_prefix_tokens)
        with torch.no_grad():
            self.embed_dim = int(self.project(torch.zeros(1, 1, self.width)).shape[-1])
        self._rope = None

    @property
    def _trunk(self):
        return self.model.visual.trunk

    def embed(self, images):
        trunk = self._trunk
        h, w = self._grid(images)
        x = trunk._pos_embed(trunk.patch_embed(images.to(trunk.patch_embed.proj.weight.dtype)))
        if isinstance(x, tuple):          # Eva: (tokens, rotary table of the native grid)
            x, rope = x
            if (h, w) != self._native_grid:
                # the table of this grid from the same frequency bands (timm's dynamic-size
                # path; the tower was built for a fixed size, with the native table cached)
                rope = trunk.rope._build_embed_cat((h, w), trunk.rope.bands).to(x.dtype)
            self._rope = ((h, w), rope)
        return trunk.norm_pre(x), (h, w)

    def _rope_for(self, x):
        """The rotary table for tokens ``x`` (EVA02), from the grid of the last ``embed``."""
        if getattr(self._trunk, 'rope', None) is None:
            return None
        grid, rope = self._rope or ((0, 0), None)
        if x.shape[1] != self.num_prefix_tokens + grid[0] * grid[1]:
            raise RuntimeError(f'{self.model_name}: rotary positions are known for the tokens '
                               f'of the last embed() ({grid}), not for {x.shape[1]} tokens')
        return rope

    def _is_eva(self, blk):
        return isinstance(blk, _timm_blocks()[1])

    def run_blocks(self, x, start=0, end=None):
        rope = self._rope_for(x)
        for blk in self._trunk.blocks[start:end]:
            x = blk(x, rope=rope) if self._is_eva(blk) else blk(x)
        return x

    def project(self, x):
        trunk = self._trunk
        y = trunk.norm(x)
        if trunk.global_pool == 'map':
            b, t, c = y.shape
            y = trunk.attn_pool(y.reshape(b * t, 1, c)).reshape(b, t, -1)
        y = trunk.head(trunk.head_drop(trunk.fc_norm(y)))
        return self.model.visual.head(y)

    def _pool_cls(self, x):
        trunk = self._trunk
        return self.model.visual.head(trunk.forward_head(trunk.norm(x)))

    # per-block attention access (Backbone)
    def _block(self, block):
        blk = self._trunk.blocks[block]
        if getattr(blk.attn, 'gate', None) is not None:
            raise MissingCapability(f'{self.model_name}: gated attention is not supported')
        return blk

    def qkv(self, x, block=-1):
        blk = self._block(block)
        a = blk.attn
        y = blk.norm1(x)
        if getattr(a, 'qkv', None) is None:             # Eva with separate projections
            q, k, v = (split_heads(p(y), a.num_heads) for p in (a.q_proj, a.k_proj, a.v_proj))
        else:
            bias = None
            if getattr(a, 'q_bias', None) is not None:  # Eva: biases kept beside the weight
                bias = torch.cat((a.q_bias, a.k_bias, a.v_bias))
                bias = bias if a.qkv.bias is None else bias + a.qkv.bias
            elif a.qkv.bias is not None:
                bias = a.qkv.bias
            qkv = torch.nn.functional.linear(y, a.qkv.weight, bias)
            q, k, v = (split_heads(t, a.num_heads) for t in qkv.chunk(3, dim=-1))
        q, k = a.q_norm(q), a.k_norm(k)
        rope = self._rope_for(x) if self._is_eva(blk) else None
        if rope is not None:
            from timm.layers import apply_rot_embed_cat
            n, half = self.num_prefix_tokens, getattr(a, 'rotate_half', False)
            q, k = (torch.cat([t[:, :, :n], apply_rot_embed_cat(t[:, :, n:], rope, half=half)],
                              dim=2).type_as(v) for t in (q, k))
        return merge_heads(q), merge_heads(k), merge_heads(v)

    def attn_proj(self, o, block=-1):
        blk = self._block(block)
        out = blk.attn.proj(blk.attn.norm(o))
        if self._is_eva(blk):
            return out if blk.gamma_1 is None else blk.gamma_1 * out
        return blk.ls1(out)

    def mlp(self, x, block=-1):
        blk = self._block(block)
        out = blk.mlp(blk.norm2(x))
        if self._is_eva(blk):
            return out if blk.gamma_2 is None else blk.gamma_2 * out
        return blk.ls2(out)
