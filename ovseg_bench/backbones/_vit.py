"""Library-independent parts of the ViT adapters: dense forward, last-block variants,
positional-embedding interpolation and the text fingerprint.

An adapter supplies a handful of primitives (see :class:`ViTDenseMixin`) over its library's
modules; everything a method sees is computed here once, so the open_clip and transformers
adapters cannot drift apart.
"""
import hashlib

import torch
import torch.nn.functional as F

from .base import DenseFeatures, LastBlock, merge_heads, split_heads


def matmul_attention(q, k, v):
    """softmax(q k^T / sqrt(d)) v written out with two matmuls: the naive reference of
    ``F.scaled_dot_product_attention`` (which fuses them and never stores the T x T scores
    on the flash/memory-efficient kernels)."""
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    return scores.softmax(-1) @ v


def variant_attention(kind, q, k, v, num_heads, fused=True):
    """Per-head attention of a last-block variant on B,T,W projections (before out_proj).

    ``value``: the values alone; ``vv``: softmax(v v^T / sqrt(d)) v; ``csa``:
    (softmax(q q^T / sqrt(d)) + softmax(k k^T / sqrt(d))) v. ``fused``:
    ``F.scaled_dot_product_attention`` (same scale, no mask, no dropout: the same function);
    False forces :func:`matmul_attention`, for speed comparisons.
    """
    if kind == 'value':
        return v
    attend = F.scaled_dot_product_attention if fused else matmul_attention
    vh = split_heads(v, num_heads)
    if kind == 'vv':
        out = attend(vh, vh, vh)
    elif kind == 'csa':
        qh, kh = split_heads(q, num_heads), split_heads(k, num_heads)
        out = attend(qh, qh, vh) + attend(kh, kh, vh)
    else:
        raise ValueError(f'unknown attention variant {kind!r}')
    return merge_heads(out)


POS_INTERPOLATIONS = ('size', 'dino')


def interpolate_grid(pos, grid, size, mode='size'):
    """Bicubic resize of a 1+gh*gw,W positional table (class position first) to ``size``.

    ``size``: sampled for the target size (source step grid/size). ``dino``: the resize of
    DINO's ``interpolate_pos_encoding`` that SCLIP, ClearCLIP, NACLIP and ProxyCLIP inherit,
    a scale factor of (size + 0.1) / grid, which samples the table at slightly other points.
    """
    if tuple(size) == tuple(grid):
        return pos
    cls_pos, patch_pos = pos[:1], pos[1:]
    width = pos.shape[-1]
    patch_pos = patch_pos.reshape(1, grid[0], grid[1], width).permute(0, 3, 1, 2).float()
    if mode == 'size':
        patch_pos = F.interpolate(patch_pos, size=tuple(size), mode='bicubic',
                                  align_corners=False)
    elif mode == 'dino':
        scale = tuple((s + 0.1) / g for s, g in zip(size, grid))
        patch_pos = F.interpolate(patch_pos, scale_factor=scale, mode='bicubic',
                                  align_corners=False)
    else:
        raise ValueError(f'pos_interpolation must be one of {POS_INTERPOLATIONS}, got {mode!r}')
    patch_pos = patch_pos.to(pos.dtype)
    patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(size[0] * size[1], width)
    return torch.cat([cls_pos, patch_pos], dim=0)


def hash_tensors(named, extra=''):
    """sha1 hex[:12] over names, shapes, dtypes and raw bytes of ``(name, tensor)`` pairs."""
    h = hashlib.sha1(extra.encode())
    for name, t in named:
        t = t.detach()
        h.update(f'{name}:{tuple(t.shape)}:{t.dtype};'.encode())
        h.update(t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()[:12]


class ViTDenseMixin:
    """Dense ViT forward on top of adapter primitives.

    An adapter implements the public per-block access of :class:`Backbone` (``qkv``,
    ``attn_proj``, ``mlp``, ``embed``, ``run_blocks``, ``project``) and:
      ``_pos_table()``          the 1+gh*gw,W learned positional table; ``_native_grid``
      ``_pool_cls(x)``          B,W pooled token (before ln_post) from the final tokens, or
                                 None when the pool is the class token
    """
    _pos_cache = None
    # how the positional table is resized off the pretraining grid (``POS_INTERPOLATIONS``)
    pos_interpolation = 'size'
    # tokens before the patches (the class token; a tower without one has 0)
    num_prefix_tokens = 1
    # Last-block variants (vv, csa) through F.scaled_dot_product_attention; False: the
    # explicit matmul-softmax reference (speed comparisons). The standard blocks are the
    # library's own (open_clip: nn.MultiheadAttention, fused in torch).
    fused_attention = True

    def _check_layers(self, layers):
        layers = sorted(set(int(i) for i in layers))
        bad = [i for i in layers if not 0 <= i <= self.num_layers]
        if bad:
            raise ValueError(f'layers must lie in 0..{self.num_layers} (0 = embedding, i = output '
                             f'of block i); got {bad}')
        return layers

    def _set_pos_interpolation(self, mode):
        if mode not in POS_INTERPOLATIONS:
            raise ValueError(f'pos_interpolation must be one of {POS_INTERPOLATIONS}, '
                             f'got {mode!r}')
        self.pos_interpolation = mode

    def interpolate_pos_embed(self, h, w):
        """The 1+h*w,W positional table for an h x w patch grid (bicubic, as
        ``pos_interpolation`` says; identity at native).

        Cached per grid; the cache is checked against the current table on each use (a cheap
        exact comparison), so it never outlives a weight change, and is bypassed when the
        table needs gradients.
        """
        pos = self._pos_table()
        if (h, w) == tuple(self._native_grid):
            return pos
        if torch.is_grad_enabled() and pos.requires_grad:
            return interpolate_grid(pos, self._native_grid, (h, w), self.pos_interpolation)
        if self._pos_cache is None:
            self._pos_cache = {}
        key = (h, w, self.pos_interpolation)
        hit = self._pos_cache.get(key)
        if (hit is not None and hit[0].device == pos.device and hit[0].dtype == pos.dtype
                and torch.equal(hit[0], pos)):
            return hit[1]
        src = pos.detach().clone()
        out = interpolate_grid(src, self._native_grid, (h, w), self.pos_interpolation)
        self._pos_cache[key] = (src, out)
        return out

    def _grid(self, images):
        H, W = images.shape[-2:]
        p = self.patch_size
        if H % p or W % p:
            raise ValueError(f'image size {H}x{W} is not divisible by the patch size {p}')
        return H // p, W // p

    def last_block_variant(self, x, kind, grid=None):
        """Tokens B,T,W after the last block run as ``kind`` (a name of ``LAST_BLOCKS`` or a
        :class:`LastBlock`), before ln_post; ``x`` enters the last block, ``grid`` is its
        (h, w) patch grid.

        The named non-standard variants have no residual and no MLP:
        out_proj(attention(ln_1(x))).
        """
        if kind == 'std':
            return self.run_blocks(x, self.num_layers - 1, self.num_layers)
        q, k, v = self.qkv(x, -1)
        if isinstance(kind, LastBlock):
            heads = self.num_heads
            o = kind.attention(split_heads(q, heads), split_heads(k, heads),
                               split_heads(v, heads), grid)
            out = self.attn_proj(merge_heads(o), -1)
            if kind.residual:
                out = x + out
            if kind.mlp:
                out = out + self.mlp(out, -1)
            return out
        if kind not in self.LAST_BLOCKS:
            raise ValueError(f'last_block must be one of {self.LAST_BLOCKS} or a LastBlock, '
                             f'got {kind!r}')
        return self.attn_proj(variant_attention(kind, q, k, v, self.num_heads,
                                                fused=self.fused_attention), -1)

    def forward_dense(self, images, layers=(), last_block='std'):
        if not isinstance(last_block, LastBlock) and last_block not in self.LAST_BLOCKS:
            raise ValueError(f'last_block must be one of {self.LAST_BLOCKS} or a LastBlock, '
                             f'got {last_block!r}')
        layers = self._check_layers(layers)
        x, (h, w) = self.embed(images)
        b = x.shape[0]
        hidden = {}

        n_pre = self.num_prefix_tokens

        def keep(i, t):
            if i in layers:
                hidden[i] = t[:, n_pre:].reshape(b, h, w, t.shape[-1])

        keep(0, x)
        n = self.num_layers
        for i in range(n - 1):
            x = self.run_blocks(x, i, i + 1)
            keep(i + 1, x)
        x_std = self.run_blocks(x, n - 1, n)
        keep(n, x_std)
        cls = self.pool(x_std)
        out = x_std if last_block == 'std' else self.last_block_variant(x, last_block, (h, w))
        patch = self.project(out[:, n_pre:]).reshape(b, h, w, -1)
        return DenseFeatures(patch=patch, cls=cls, hidden=hidden)

    def pool(self, x):
        pooled = self._pool_cls(x)
        if pooled is None:
            return self.project(x[:, :1])[:, 0]
        return pooled

    def fingerprint(self):
        """sha1[:12] of the text tower's weights and the logit scale, recomputed on each call
        (about 0.15 s for ViT-B-16's text tower on one CPU core), so it can never go stale."""
        return hash_tensors(self.text_named_tensors(), extra=type(self).__name__)
