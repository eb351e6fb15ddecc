"""Library-independent parts of the ViT adapters: dense forward, last-block variants,
positional-embedding interpolation and the text fingerprint.

An adapter supplies a handful of primitives (see :class:`ViTDenseMixin`) over its library's
modules; everything a method sees is computed here once, so the open_clip and transformers
adapters cannot drift apart.
"""
import hashlib

import torch
import torch.nn.functional as F

from .base import DenseFeatures


def _split_heads(t, num_heads):
    """B,T,W -> B,heads,T,W/heads."""
    b, n, w = t.shape
    return t.view(b, n, num_heads, w // num_heads).transpose(1, 2)


def _merge_heads(t):
    """B,heads,T,d -> B,T,heads*d."""
    b, h, n, d = t.shape
    return t.transpose(1, 2).reshape(b, n, h * d)


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
    vh = _split_heads(v, num_heads)
    if kind == 'vv':
        out = attend(vh, vh, vh)
    elif kind == 'csa':
        qh, kh = _split_heads(q, num_heads), _split_heads(k, num_heads)
        out = attend(qh, qh, vh) + attend(kh, kh, vh)
    else:
        raise ValueError(f'unknown attention variant {kind!r}')
    return _merge_heads(out)


def interpolate_grid(pos, grid, size):
    """Bicubic resize of a 1+gh*gw,W positional table (class position first) to ``size``."""
    if tuple(size) == tuple(grid):
        return pos
    cls_pos, patch_pos = pos[:1], pos[1:]
    width = pos.shape[-1]
    patch_pos = patch_pos.reshape(1, grid[0], grid[1], width).permute(0, 3, 1, 2)
    patch_pos = F.interpolate(patch_pos.float(), size=tuple(size), mode='bicubic',
                              align_corners=False).to(pos.dtype)
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

    An adapter implements:
      ``_blocks()``             the list of vision blocks
      ``_qkv(blk, x)``          (q, k, v) B,T,W of the block's attention for residual stream x
                                 (norm included, before the head split)
      ``_attn_out(blk, o)``     output projection (and any layer scale) of B,T,W attention output
      ``_num_heads(blk)``
      ``_pos_table()``          the 1+gh*gw,W learned positional table; ``_native_grid``
      ``_pool_cls(x)``          B,W pooled token (before ln_post) from the final tokens, or
                                 None when the pool is the class token
    """
    _pos_cache = None
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

    def interpolate_pos_embed(self, h, w):
        """The 1+h*w,W positional table for an h x w patch grid (bicubic; identity at native).

        Cached per grid; the cache is checked against the current table on each use (a cheap
        exact comparison), so it never outlives a weight change, and is bypassed when the
        table needs gradients.
        """
        pos = self._pos_table()
        if (h, w) == tuple(self._native_grid):
            return pos
        if torch.is_grad_enabled() and pos.requires_grad:
            return interpolate_grid(pos, self._native_grid, (h, w))
        if self._pos_cache is None:
            self._pos_cache = {}
        hit = self._pos_cache.get((h, w))
        if (hit is not None and hit[0].device == pos.device and hit[0].dtype == pos.dtype
                and torch.equal(hit[0], pos)):
            return hit[1]
        src = pos.detach().clone()
        out = interpolate_grid(src, self._native_grid, (h, w))
        self._pos_cache[(h, w)] = (src, out)
        return out

    def _grid(self, images):
        H, W = images.shape[-2:]
        p = self.patch_size
        if H % p or W % p:
            raise ValueError(f'image size {H}x{W} is not divisible by the patch size {p}')
        return H // p, W // p

    def last_block_variant(self, x, kind):
        """Tokens B,T,W after the last block run as ``kind`` (std/value/vv/csa), before ln_post.

        The non-standard variants have no residual and no MLP: out_proj(attention(ln_1(x))).
        """
        if kind == 'std':
            return self.run_blocks(x, self.num_layers - 1, self.num_layers)
        if kind not in self.LAST_BLOCKS:
            raise ValueError(f'last_block must be one of {self.LAST_BLOCKS}, got {kind!r}')
        blk = self._blocks()[-1]
        q, k, v = self._qkv(blk, x)
        return self._attn_out(blk, variant_attention(kind, q, k, v, self._num_heads(blk),
                                                     fused=self.fused_attention))

    def forward_dense(self, images, layers=(), last_block='std'):
        if last_block not in self.LAST_BLOCKS:
            raise ValueError(f'last_block must be one of {self.LAST_BLOCKS}, got {last_block!r}')
        layers = self._check_layers(layers)
        x, (h, w) = self.embed(images)
        b = x.shape[0]
        hidden = {}

        def keep(i, t):
            if i in layers:
                hidden[i] = t[:, 1:].reshape(b, h, w, t.shape[-1])

        keep(0, x)
        n = self.num_layers
        for i in range(n - 1):
            x = self.run_blocks(x, i, i + 1)
            keep(i + 1, x)
        x_std = self.run_blocks(x, n - 1, n)
        keep(n, x_std)
        cls = self.pool(x_std)
        out = x_std if last_block == 'std' else self.last_block_variant(x, last_block)
        patch = self.project(out[:, 1:]).reshape(b, h, w, -1)
        return DenseFeatures(patch=patch, cls=cls, hidden=hidden)

    def pool(self, x):
        pooled = self._pool_cls(x)
        if pooled is None:
            return self.project(x[:, :1])[:, 0]
        return pooled

    def fingerprint(self):
        """sha1[:12] of the text tower's weights and the logit scale, recomputed on each call
        (about 0.15 s for ViT-B-16's text tower on one CPU core), so it can never go stale."""
        return hash_tensors(self._text_named_tensors(), extra=type(self).__name__)
