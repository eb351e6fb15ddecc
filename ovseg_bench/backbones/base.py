"""The backbone side of the plugin contract (``../docs/plugin_contract.md``)."""
import contextlib
import logging
from abc import ABCMeta, abstractmethod
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn


# What an adapter logs when it is built without weights on purpose (``pretrained=None``).
RANDOM_WEIGHTS = 'the weights are RANDOM'


@contextlib.contextmanager
def drop_log_records(text):
    """Drop log records containing ``text`` while the block runs: a logger's filters see only
    the records logged on it, so every existing logger gets the filter, and the root's
    handlers too (they receive what child loggers propagate)."""
    class _Drop(logging.Filter):
        def filter(self, record):
            return text not in record.getMessage()
    drop = _Drop()
    root = logging.getLogger()
    loggers = [root, *(x for x in root.manager.loggerDict.values()
                       if isinstance(x, logging.Logger))]
    handlers = list(root.handlers)
    for x in handlers + loggers:
        x.addFilter(drop)
    try:
        yield
    finally:
        for x in handlers + loggers:
            x.removeFilter(drop)


class MissingCapability(NotImplementedError):
    """The backbone lacks an optional capability that a method needs (per-block attention
    access, its text tower's tensors, ...); the message names the backbone and what it lacks."""


@dataclass
class DenseFeatures:
    """Dense output of a CLIP image encoder.

    patch:  B,h,w,D  every patch token in the joint image-text space (after ln_post and proj)
    cls:    B,D      the class token in the joint space (standard last block)
    hidden: {layer: B,h,w,W}  requested intermediate blocks' patch tokens (residual stream, before
            ln_post), layer i meaning the output of block i (1-based; 0 is the embedding)
    """
    patch: torch.Tensor
    cls: torch.Tensor
    hidden: dict = field(default_factory=dict)


def split_heads(t, num_heads):
    """B,T,W -> B,heads,T,W/heads."""
    b, n, w = t.shape
    return t.view(b, n, num_heads, w // num_heads).transpose(1, 2)


def merge_heads(t):
    """B,heads,T,d -> B,T,heads*d."""
    b, h, n, d = t.shape
    return t.transpose(1, 2).reshape(b, n, h * d)


@dataclass(frozen=True)
class LastBlock:
    """A replacement for the last vision block's attention, for the patch tokens.

    attention: ``f(q, k, v, grid) -> B,heads,T,d``, called on the block's per-head
        projections ``q, k, v`` (B,heads,T,d; the backbone's ``num_prefix_tokens`` first
        tokens, the class token of a CLIP ViT, then the h x w patches row by row;
        ``grid == (h, w)``). It returns the attended values, which the
        backbone merges over heads and passes through the block's output projection.
    residual: add the block's input to that output (the block's first residual).
    mlp: then add the block's feed-forward branch on the result (the second residual).

    ``LastBlock(f)`` is the reduced block ``out_proj(f(...))`` of ClearCLIP/NACLIP;
    ``LastBlock(f, residual=True, mlp=True)`` the full block with its attention swapped
    (SCLIP's released form).
    """
    attention: Callable
    residual: bool = False
    mlp: bool = False


class Freezable(nn.Module):
    """A module that can be frozen: no gradients, and ``train()`` keeps it in eval mode."""
    frozen = False

    def freeze(self, frozen=True):
        self.frozen = frozen
        if frozen:
            self.requires_grad_(False)
            self.eval()

    def train(self, mode=True):
        return super().train(False if self.frozen else mode)


class Backbone(Freezable, metaclass=ABCMeta):
    """A CLIP model behind one interface, whatever library it comes from.

    Subclasses set ``embed_dim`` (joint space), ``width`` (vision residual width),
    ``num_layers`` (vision blocks), ``num_heads`` (attention heads per block),
    ``num_prefix_tokens`` (tokens before the patches: 1, the class token, for CLIP ViTs),
    ``patch_size``, ``image_size`` (pretraining size),
    ``mean``/``std`` (pixel normalisation, 0..255 scale) and implement the methods below.
    The built-in adapters hold the wrapped library model (open_clip's or transformers'
    ``CLIPModel``) as ``model``, which :meth:`text_named_tensors` names within; the few
    methods that edit it (CLIP-ZSS drops a tower) check that it is there.
    """
    LAST_BLOCKS = ('std', 'value', 'vv', 'csa')
    embed_dim: int
    width: int
    num_layers: int
    num_heads: int
    patch_size: int
    image_size: int
    mean = (122.770938, 116.74601, 104.09373)   # OpenAI CLIP's, x255
    std = (68.5005327, 66.6321579, 70.32316304)

    @abstractmethod
    def tokenize(self, texts):
        """N,L token ids for a list of strings."""

    @abstractmethod
    def encode_text(self, tokens):
        """N,D text embeddings in the joint space (not normalised)."""

    def encode_image(self, images):
        """B,D image embeddings in the joint space (not normalised)."""
        return self.forward_dense(images).cls

    @abstractmethod
    def forward_dense(self, images, layers=(), last_block='std'):
        """DenseFeatures for B,3,H,W normalised images (any H, W divisible by the patch).

        ``last_block`` picks the final block's variant for the patch tokens: ``std`` (as
        trained), ``value`` (MaskCLIP: the last block's value projection alone, no residual,
        no MLP), ``vv`` (value-value self-attention), ``csa`` (query-query + key-key
        attention in the reduced form, without residual and MLP), or a :class:`LastBlock`
        (any attention function, with or without the residual and the MLP).
        The cls token always comes from the standard block.
        """

    # Finer-grained access for methods that change the encoder's inside (e.g. SegCLIP).
    @abstractmethod
    def embed(self, images):
        """(B,1+h*w,W tokens after patch embedding, interpolated positions and ln_pre; (h, w))."""

    @abstractmethod
    def run_blocks(self, x, start=0, end=None):
        """Run vision blocks ``start..end-1`` (0-based) on B,T,W tokens."""

    # Per-block attention access, for methods that change a block's attention (SCLIP,
    # ProxyCLIP, ...). ``block`` is a 0-based index (negative counts from the end). A backbone
    # without it (e.g. a test double) serves every method that does not need it.
    def qkv(self, x, block=-1):
        """(q, k, v), each B,T,W: the block's attention projections of the B,T,W residual
        stream ``x`` entering it (its pre-attention norm included; heads not split)."""
        raise MissingCapability(f'{type(self).__name__} gives no per-block attention access')

    def attn_proj(self, o, block=-1):
        """The block's attention output projection (and layer scale, if any) of B,T,W
        attended values (heads merged): what the block adds to its residual stream."""
        raise MissingCapability(f'{type(self).__name__} gives no per-block attention access')

    def mlp(self, x, block=-1):
        """The block's feed-forward branch (norm, MLP, layer scale) on B,T,W tokens: what the
        block adds to its residual stream after the attention."""
        raise MissingCapability(f'{type(self).__name__} gives no per-block attention access')

    @abstractmethod
    def project(self, x):
        """ln_post then proj on every token: B,T,W -> B,T,D."""

    @abstractmethod
    def pool(self, x):
        """B,D image embedding in the joint space from final B,T,W tokens, pooled as the model
        was trained (class token, or mean of the patch tokens present)."""

    @property
    @abstractmethod
    def logit_scale(self):
        """The learned CLIP temperature (a scalar tensor, exp already applied)."""

    @abstractmethod
    def fingerprint(self):
        """A short string that changes whenever the text encoder's weights change."""

    def text_named_tensors(self):
        """``(name, tensor)`` pairs of the text tower's weights (logit scale and bias
        included), named as in ``self.model.named_parameters()``."""
        raise MissingCapability(f'{type(self).__name__} does not list its text tower')

    def state_dict_for_export(self):
        """What a trained backbone is exported as (``backbone.pt``): a state dict loadable as
        the adapter's ``pretrained``. Defaults to the module's own state dict."""
        return self.state_dict()
