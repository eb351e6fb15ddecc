"""PACL (Mukhoti et al., "Open Vocabulary Semantic Segmentation with Patch Aligned Contrastive
Learning", CVPR 2023, arXiv 2212.04994)."""
import hashlib
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ovseg_bench.head import MethodHead
from ovseg_bench.losses import all_gather_rows
from ovseg_bench.registry import register_method

_EPS = 1e-6
_ACTIVATIONS = dict(relu=nn.ReLU, gelu=nn.GELU)


class ResidualEmbedder(nn.Module):
    """``e(x) = linear(x) + mlp(x)``: a linear path and a two-layer MLP path, summed.

    ``init='identity'`` (needs ``dim_in == dim_out``) makes the embedder the identity map at
    the start: the linear path is the identity matrix and the MLP's output layer is zero, so
    an untrained PACL scores exactly like the frozen CLIP's own patch/text embeddings.
    ``init='random'`` keeps PyTorch's default initialisation for every layer.
    """

    def __init__(self, dim_in, dim_out, hidden=None, activation='relu', init='identity'):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f'activation must be one of {sorted(_ACTIVATIONS)}, '
                             f'got {activation!r}')
        if init not in ('identity', 'random'):
            raise ValueError(f"init must be 'identity' or 'random', got {init!r}")
        hidden = hidden or dim_out
        self.linear = nn.Linear(dim_in, dim_out)
        self.mlp = nn.Sequential(nn.Linear(dim_in, hidden), _ACTIVATIONS[activation](),
                                 nn.Linear(hidden, dim_out))
        if init == 'identity':
            if dim_in != dim_out:
                raise ValueError(f"init='identity' needs dim_in == dim_out "
                                 f'({dim_in} != {dim_out})')
            with torch.no_grad():
                self.linear.weight.copy_(torch.eye(dim_out))
                self.linear.bias.zero_()
                self.mlp[-1].weight.zero_()
                self.mlp[-1].bias.zero_()

    def forward(self, x):
        return self.linear(x) + self.mlp(x)


def _compatibility_block(patch, norms, gram, text, temperature):
    """``phi`` of every image with the texts of one block (see :func:`pacl_compatibility`)."""
    t = F.normalize(text, dim=-1)
    sim = torch.einsum('bnd,td->btn', patch / norms[..., None], t)      # B,T,N cosines
    a = (sim / temperature).softmax(-1)                                 # B,T,N weights
    # p[b,t] = sum_n a[b,t,n] patch[b,n] (never built, it is B,T,D):
    #   p . t_hat   = sum_n a * (patch[b,n] . t_hat)  = sum_n a * sim * |patch[b,n]|
    #   |p|^2       = a^T G_b a                       with G_b = patch[b] patch[b]^T (N,N)
    num = (a * sim * norms[:, None]).sum(-1)                            # B,T
    sq = (torch.bmm(a, gram) * a).sum(-1)                               # B,T
    return num / sq.clamp_min(_EPS * _EPS).sqrt()


def pacl_compatibility(patch, text, temperature=1.0, text_chunk=None):
    """PACL's compatibility ``phi(x_b, y_t)`` of every image with every text: B,T.

    ``patch``: B,N,D vision-embedder outputs ``e_v(x_i)``; ``text``: T,D text-embedder
    outputs ``e_t(y)`` (norms are free; cosines are taken here). For each pair::

        a_i = softmax_i(cos(e_v(x_i), e_t(y)) / temperature)
        phi = cos(sum_i a_i e_v(x_i), e_t(y))

    Every pair has its own patch weighting. Computed from one einsum of normalised tensors
    (the B,T,N cosines), the softmax, and two weighted sums over patches: the pooled
    vectors' dot with the text is ``sum_n a * cos * |e_v|`` and their squared norm is
    ``a^T G a`` with each image's N,N Gram matrix, so no B,T,D (let alone B,T,N,D) tensor
    exists. Memory: ``O(B*T*N + B*N^2)`` scalars, kept for backward. ``text_chunk`` splits
    the texts into blocks computed under activation checkpointing, so that with autograd
    only ``O(B*text_chunk*N)`` is alive at a time (recomputed in backward).
    """
    norms = patch.norm(dim=-1).clamp_min(_EPS)                          # B,N
    gram = torch.bmm(patch, patch.transpose(1, 2))                      # B,N,N
    if not text_chunk or len(text) <= text_chunk:
        return _compatibility_block(patch, norms, gram, text, temperature)
    grad = torch.is_grad_enabled() and (patch.requires_grad or text.requires_grad)
    blocks = []
    for start in range(0, len(text), text_chunk):
        chunk = text[start:start + text_chunk]
        if grad:
            blocks.append(checkpoint(_compatibility_block, patch, norms, gram, chunk,
                                     temperature, use_reentrant=False))
        else:
            blocks.append(_compatibility_block(patch, norms, gram, chunk, temperature))
    return torch.cat(blocks, 1)


@register_method(display_name='PACL', config='pacl/pacl_tiny_synth.py')
class PACL(MethodHead):
    """PACL: frozen CLIP + patch/text embedders trained with a patch-weighted contrastive loss.

    The paper's observation: CLIP's contrastive loss only aligns the image *class token*
    with the text, so its patch tokens are poorly aligned with text and segment badly. PACL
    keeps both CLIP encoders frozen and trains small embedders on top, ``e_v`` on every
    vision patch token and ``e_t`` on the text embedding, with a new compatibility function
    inside CLIP's symmetric InfoNCE loss: for image x and caption y,
    ``a_i = softmax_i(cos(e_v(x_i), e_t(y)))`` weighs the patches by their similarity to
    the caption and ``phi(x, y) = cos(sum_i a_i e_v(x_i), e_t(y))``. Every one of the B x B
    image-caption pairs of a batch gets its own weighting; the loss is the cross-entropy of
    ``scale * phi`` over captions for each image and over images for each caption,
    averaged. Because the pooled vector is a convex mix of patch embeddings chosen by their
    similarity to the text, the loss can only be lowered by making the *patches* that show
    the caption's content similar to it: patch-level alignment without any mask. Inference:
    every patch is compared with the class-name embeddings ``e_t(class)`` by cosine
    (B,K,h,w). The same ``phi`` with class names as texts classifies whole images
    (:meth:`classify`, the paper's zero-shot classification).

    Choices where the paper leaves a detail open (or where this benchmark differs):

    * Patch tokens (``embed_input``): ``'tokens'`` (the paper's, the default) are the last
      block's patch tokens before CLIP's projection (width W, e.g. 768 for ViT-B/16; the
      contract's ``hidden[num_layers]``: OpenAI's CLIP applies ``ln_post`` to the class
      token only), and ``e_v`` maps W -> D; ``'joint'`` reads them in the joint space
      (``forward_dense(...).patch``: ``ln_post`` and the projection applied, D -> D), which
      allows the identity initialisation below and the backbone's other last-block
      variants (``last_block``).
    * Embedders: ``e(x) = linear(x) + mlp(x)``, the MLP being Linear-ReLU-Linear with hidden
      width = output width (the paper's residual form: a linear path plus a non-linear
      path, summed). As in the paper, only the vision embedder is trained
      (``text_embedder='identity'``, the default): ``e_t`` is the frozen CLIP text embedding
      (EOT token after the text projection, the text "CLS"). ``text_embedder='residual'``
      also trains an ``e_t`` of the same form.
    * Initialisation (``init``): ``'random'`` is PyTorch's default (the default with
      ``embed_input='tokens'``); ``'identity'`` (the default with ``'joint'``) starts both
      embedders as the identity map, so an untrained PACL *is* frozen CLIP compared
      patch-by-patch with text.
    * Patch weighting temperature: ``patch_temperature=1`` is the paper's plain softmax of
      cosines (the default, and the paper configs'); lower values sharpen the weighting
      (the tiny synthetic config uses 0.1, see docs/methods/pacl.md).
    * Compatibility precision: ``phi`` is computed in fp32 even under autocast (a bf16
      Gram term at logit scale 100 is worth about one logit of noise).
    * Contrastive temperature: a learned logit scale of the head, initialised from the
      frozen CLIP's (``logit_scale_init`` overrides) and clamped to ``max_logit_scale``
      (100, CLIP's clamp); ``learn_logit_scale=False`` keeps it fixed.
    * Frozen encoders: ``requires_grad_(False)`` and kept in eval mode whatever ``train()``
      is called with (no dropout/batch-norm drift); their features are computed under
      ``no_grad`` in training.
    * Distributed training (``gather=True``): the negatives are the captions and images of
      all processes, as in CLIP. Each process scores its own images against every process's
      captions (only the T,D caption embeddings are gathered), then the B_local x B_global
      score rows are gathered (differentiably) so each process also scores its own captions
      against every image; patch embeddings never leave their process. With gradient
      averaging across processes this is exactly the gradient of the global-batch loss.
    * Memory: the B x B compatibility never builds the B,B,N,D (naive) or B,B,D pooled
      tensors; it keeps B^2*N weights plus B Gram matrices N,N (see
      :func:`pacl_compatibility`); ``text_chunk`` bounds it further with checkpointing.
    """
    def __init__(self, backbone, hidden_dim=None, text_embedder='identity', activation='relu',
                 init=None, patch_temperature=1.0, logit_scale_init=None,
                 learn_logit_scale=True, max_logit_scale=100.0, last_block='std',
                 text_chunk=None, gather=True, embed_input='tokens'):
        super().__init__(backbone)
        if embed_input not in ('tokens', 'joint'):
            raise ValueError(f"embed_input must be 'tokens' or 'joint', got {embed_input!r}")
        if embed_input == 'tokens' and last_block != 'std':
            raise ValueError(f"last_block={last_block!r} needs embed_input='joint' (the "
                             f'pre-projection tokens are those of the standard last block)')
        init = init or ('random' if embed_input == 'tokens' else 'identity')
        if text_embedder not in ('residual', 'identity'):
            raise ValueError(f"text_embedder must be 'residual' or 'identity', "
                             f'got {text_embedder!r}')
        if last_block not in backbone.LAST_BLOCKS:
            raise ValueError(f'last_block must be one of {backbone.LAST_BLOCKS}, '
                             f'got {last_block!r}')
        if patch_temperature <= 0:
            raise ValueError(f'patch_temperature must be > 0, got {patch_temperature}')
        self.backbone.requires_grad_(False)
        self.backbone.eval()
        dim = backbone.embed_dim
        self.embed_input = embed_input
        dim_in = backbone.width if embed_input == 'tokens' else dim
        self.vision_embedder = ResidualEmbedder(dim_in, dim, hidden_dim, activation, init)
        self.text_embedder = (ResidualEmbedder(dim, dim, hidden_dim, activation, init)
                              if text_embedder == 'residual' else nn.Identity())
        self.patch_temperature = float(patch_temperature)
        self.last_block = last_block
        self.text_chunk = text_chunk
        self.gather = gather
        self.max_logit_scale = float(max_logit_scale)
        if logit_scale_init is None:
            logit_scale_init = float(backbone.logit_scale)
        log_scale = torch.tensor(math.log(min(logit_scale_init, max_logit_scale)))
        if learn_logit_scale:
            self.log_logit_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer('log_logit_scale', log_scale)

    def train(self, mode=True):
        super().train(mode)
        self.backbone.eval()   # frozen CLIP stays in eval mode
        return self

    # ------------------------------------------------------------------ embeddings
    def patch_embeddings(self, images):
        """B,h,w,D vision-embedder outputs ``e_v(x_i)`` (not normalised) of the patch tokens
        ``embed_input`` names."""
        with torch.no_grad():
            if self.embed_input == 'tokens':
                n = self.backbone.num_layers
                patch = self.backbone.forward_dense(images, layers=(n,)).hidden[n]
            else:
                patch = self.backbone.forward_dense(images, last_block=self.last_block).patch
        return self.vision_embedder(patch)

    def encode_text(self, tokens):
        with torch.no_grad():
            text = self.backbone.encode_text(tokens)
        return self.text_embedder(text)

    def text_fingerprint(self):
        digest = hashlib.sha1()
        for name, value in sorted(self.text_embedder.state_dict().items()):
            digest.update(name.encode())
            digest.update(value.detach().float().cpu().contiguous().numpy().tobytes())
        return f'{self.backbone.fingerprint()}-pacl-{digest.hexdigest()[:12]}'

    @property
    def logit_scale(self):
        return self.log_logit_scale.exp().clamp(max=self.max_logit_scale)

    def compatibility(self, patch, text):
        """B,T ``phi`` of B images' patch embeddings (B,h,w,D or B,N,D) with T texts (T,D)."""
        if patch.dim() == 4:
            patch = patch.flatten(1, 2)
        with torch.autocast(patch.device.type, enabled=False):
            return pacl_compatibility(patch.float(), text.float(), self.patch_temperature,
                                      self.text_chunk)

    # ------------------------------------------------------------------ training
    def forward_train(self, batch):
        images = batch['images']
        patch = self.patch_embeddings(images)                             # B,h,w,D
        tokens = self.backbone.tokenize(list(batch['captions'])).to(images.device)
        text = self.encode_text(tokens)                                   # B,D
        all_text, offset = all_gather_rows(text) if self.gather else (text, 0)
        rows = self.compatibility(patch, all_text)                        # B, B_global
        all_rows = all_gather_rows(rows)[0] if len(all_text) > len(text) else rows
        b = len(rows)
        cols = all_rows[:, offset:offset + b].t()                         # B, B_global
        scale = self.logit_scale
        target = torch.arange(b, device=rows.device) + offset
        loss = (F.cross_entropy(scale * rows, target)
                + F.cross_entropy(scale * cols, target)) / 2
        with torch.no_grad():
            acc_i2t = (rows.argmax(1) == target).float().mean()
            acc_t2i = (cols.argmax(1) == target).float().mean()
        return dict(loss_pacl=loss, logit_scale=scale.detach(), acc_i2t=acc_i2t,
                    acc_t2i=acc_t2i)

    # ------------------------------------------------------------------ inference
    def predict_dense(self, images, class_embeds):
        patch = F.normalize(self.patch_embeddings(images), dim=-1)
        return torch.einsum('bhwd,kd->bkhw', patch, class_embeds.to(patch.dtype))

    def classify(self, images, class_embeds):
        """B,K image-level scores: PACL's compatibility of each image with each class text."""
        return self.compatibility(self.patch_embeddings(images), class_embeds)
