"""SegCLIP (Luo et al., "SegCLIP: Patch Aggregation with Learnable Centers for Open-Vocabulary
Semantic Segmentation", ICML 2023, arXiv 2211.14813).

One file, as a method plugin is (docs/plugin_contract.md): the semantic-group module, the
head and its three losses (contrastive, masked-patch reconstruction, superpixel KL), which
is why it runs past 400 lines."""

import torch
import torch.nn.functional as F
from torch import nn

from ovseg_bench.head import MethodHead
from ovseg_bench.losses import info_nce
from ovseg_bench.registry import register_method

LOSSES = ('contrastive', 'reconstruction', 'superpixel')


# ---------------------------------------------------------------------------------- pieces
def truncate_tokens(tokens, length):
    """CLIP token rows (N,L: start token, words, end token, padding) cut to ``length``: the
    start token, the first ``length - 2`` words and the end token (the authors' ``max_words``).
    The end token is the row's largest id, as CLIP's text pooling assumes."""
    if tokens.shape[1] <= length:
        return tokens
    end_pos = tokens.argmax(1)
    out = tokens[:, :length].clone()
    long = end_pos >= length
    out[long, -1] = tokens[long, end_pos[long]]
    return out


def straight_through_gumbel(logits, tau, dim):
    """Hard one-hot samples along ``dim`` whose gradient is that of the Gumbel-softmax.

    Forward: ``one_hot(argmax((logits + g) / tau))`` with ``g ~ Gumbel(0, 1)``; backward: the
    gradient of ``softmax((logits + g) / tau)`` (the straight-through estimator).
    """
    u = torch.rand_like(logits).clamp_(1e-9, 1 - 1e-9)
    soft = ((logits - torch.log(-torch.log(u))) / tau).softmax(dim)
    return _HardStraightThrough.apply(soft, dim)


class _HardStraightThrough(torch.autograd.Function):
    """Forward: exact one-hot of the argmax; backward: the gradient goes to ``soft`` unchanged
    (``hard + soft - soft.detach()`` would leave rounding residues in the one-hot values)."""

    @staticmethod
    def forward(ctx, soft, dim):
        return torch.zeros_like(soft).scatter_(dim, soft.argmax(dim, keepdim=True), 1.0)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def sincos_2d(h, w, dim, device=None):
    """Fixed h*w,dim 2-D sine-cosine positions: half the channels code the row, half the column."""
    if dim % 4:
        raise ValueError(f'sin-cos positions need a width divisible by 4, got {dim}')
    quarter = dim // 4
    freq = 1.0 / 10000 ** (torch.arange(quarter, device=device, dtype=torch.float32) / quarter)
    rows, cols = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32),
                                torch.arange(w, device=device, dtype=torch.float32),
                                indexing='ij')
    parts = []
    for coord in (rows.reshape(-1), cols.reshape(-1)):
        angle = coord[:, None] * freq[None]
        parts += [angle.sin(), angle.cos()]
    return torch.cat(parts, dim=1)


def patchify(images, patch):
    """B,3,H,W -> B,(H/p)*(W/p),p*p*3 (patches in raster order, pixels row-major, RGB last)."""
    b, c, hh, ww = images.shape
    x = images.reshape(b, c, hh // patch, patch, ww // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (hh // patch) * (ww // patch), patch * patch * c)


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


def _mlp(dim, ratio=4.0, act=nn.GELU):
    hidden = int(dim * ratio)
    return nn.Sequential(nn.Linear(dim, hidden), act(), nn.Linear(hidden, dim))


class Block(nn.Module):
    """Pre-norm transformer block on B,T,W tokens (self-attention, or cross-attention when
    ``context`` is given: queries from ``x``, keys/values from the normalised ``context``).
    ``act``: the MLP's activation (CLIP's QuickGELU in the authors' CLIP-style blocks, GELU
    in their MAE decoder)."""

    def __init__(self, dim, num_heads, mlp_ratio=4.0, cross=False, act=nn.GELU):
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim) if cross else None
        self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = _mlp(dim, mlp_ratio, act)

    def forward(self, x, context=None):
        q = self.norm_q(x)
        kv = q if context is None else self.norm_kv(context)
        x = x + self.attn(q, kv, kv, need_weights=False)[0]
        return x + self.mlp(self.norm_mlp(x))


def _heads_for(dim, head_dim=64):
    """CLIP's head count rule (width / 64), at least 1, and a divisor of ``dim``."""
    heads = max(1, dim // head_dim)
    while dim % heads:
        heads -= 1
    return heads


# ---------------------------------------------------------------------------------- group module
class SemanticGroup(nn.Module):
    """Learnable centers gathering patches into semantic regions (SegCLIP's semantic group module).

    1. ``num_centers`` learnable center tokens are refined by ``cross_layers`` cross-attention
       blocks whose keys/values are ``[centers; patches]`` (the centers see each other and the
       image).
    2. Patch-to-center logits: ``q_c . k_l`` between the normalised refined centers and a
       grouped 1x1 projection (one per head group, no bias) of the normalised patches, itself
       normalised.
    3. Assignment over the centers for every patch: a hard straight-through Gumbel-softmax
       (temperature ``tau``) in training; at inference the argmax (no noise) pools the centers
       and the softmax of the logits is the soft assignment used for segmentation.
    4. Every center becomes the mean of the values (another grouped projection) of the patches
       assigned to it, added to the refined center and passed through LN -> MLP -> QuickGELU.
    """

    def __init__(self, dim, num_centers=8, num_heads=None, cross_layers=2, tau=0.9,
                 eval_pool='hard'):
        super().__init__()
        if eval_pool not in ('hard', 'soft'):
            raise ValueError(f"eval_pool must be 'hard' or 'soft', got {eval_pool!r}")
        num_heads = num_heads or _heads_for(dim)
        self.tau = float(tau)
        self.eval_pool = eval_pool
        self.centers = nn.Parameter(torch.zeros(num_centers, dim))
        self.cross = nn.ModuleList(Block(dim, num_heads, cross=True, act=QuickGELU)
                                   for _ in range(cross_layers))
        self.norm_centers = nn.LayerNorm(dim)
        self.norm_patches = nn.LayerNorm(dim)
        self.key = nn.Conv1d(dim, dim, 1, groups=num_heads, bias=False)
        self.norm_key = nn.LayerNorm(dim)
        self.value = nn.Conv1d(dim, dim, 1, groups=num_heads, bias=False)
        self.update = nn.Sequential(nn.LayerNorm(dim), _mlp(dim), QuickGELU())
        nn.init.trunc_normal_(self.centers, std=0.02)

    def forward(self, patches):
        """``patches`` B,L,W -> dict(centers B,M,W, hard B,L,M (pooling assignment), soft B,L,M,
        logits B,L,M)."""
        q = self.centers.unsqueeze(0).expand(patches.shape[0], -1, -1)
        for blk in self.cross:
            q = blk(q, torch.cat([q, patches], dim=1))
        q = self.norm_centers(q)
        x = self.norm_patches(patches).transpose(1, 2)                  # B,W,L
        k = self.norm_key(self.key(x).transpose(1, 2))                   # B,L,W
        v = self.value(x).transpose(1, 2)                                # B,L,W
        logits = k @ q.transpose(1, 2)                                   # B,L,M
        soft = logits.softmax(-1)
        if self.training:
            assign = straight_through_gumbel(logits, self.tau, dim=-1)
        elif self.eval_pool == 'hard':
            assign = F.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
        else:
            assign = soft
        pooled = assign.transpose(1, 2) @ v                              # B,M,W
        pooled = pooled / assign.sum(1).unsqueeze(-1).clamp_min(1.0)
        return dict(centers=self.update(q + pooled), hard=assign, soft=soft, logits=logits)


class MaskedDecoder(nn.Module):
    """MAE branch: center tokens -> visible-patch tokens -> blocks -> pixels of every patch.

    Each visible patch token is rebuilt as its (learned linear mix of the) center assignment
    times the center tokens, then ``mid_layers`` new transformer blocks, then an MAE decoder
    (``decoder_layers`` blocks of width ``decoder_dim`` with a shared mask token in place of
    the masked patches, fixed sin-cos positions, a leading mean token) predicts each patch's
    pixels.
    """

    def __init__(self, dim, num_centers, patch_size, mid_layers=2, decoder_dim=None,
                 decoder_layers=3, decoder_heads=8):
        super().__init__()
        decoder_dim = decoder_dim or dim // 2
        while decoder_dim % decoder_heads:
            decoder_heads -= 1
        self.mix = nn.Linear(num_centers, num_centers)
        self.act = QuickGELU()
        self.mid = nn.ModuleList(Block(dim, _heads_for(dim), act=QuickGELU)
                                 for _ in range(mid_layers))
        self.embed = nn.Linear(dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.blocks = nn.ModuleList(Block(decoder_dim, decoder_heads)
                                    for _ in range(decoder_layers))
        self.norm = nn.LayerNorm(decoder_dim)
        self.pred = nn.Linear(decoder_dim, patch_size * patch_size * 3)
        nn.init.normal_(self.mask_token, std=0.02)

    def rebuild(self, centers, assign):
        """B,Lv,W patch tokens from the B,M,W centers through the B,Lv,M assignment (the
        authors' ReconstructLayer: a learned M x M mix of the assignment, QuickGELU)."""
        return self.act(self.mix(assign) @ centers)

    def forward(self, centers, assign, keep, grid):
        """``centers`` B,M,W; ``assign`` B,Lv,M; ``keep`` B,Lv indices of the visible patches
        in raster order; ``grid`` (h, w). Returns B,h*w,p*p*3 pixel predictions."""
        x = self.rebuild(centers, assign)
        for blk in self.mid:
            x = blk(x)
        x = self.embed(x)
        b, _, d = x.shape
        n = grid[0] * grid[1]
        full = self.mask_token.expand(b, n, d).clone()
        full = full.scatter(1, keep.unsqueeze(-1).expand(-1, -1, d), x)
        full = full + sincos_2d(*grid, d, device=x.device).to(x.dtype)
        full = torch.cat([x.mean(1, keepdim=True), full], dim=1)
        for blk in self.blocks:
            full = blk(full)
        return self.pred(self.norm(full))[:, 1:]


def _init_new(module):
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# ---------------------------------------------------------------------------------- the head
@register_method(display_name='SegCLIP', train_views=('superpixels',),
                 config='segclip/segclip_tiny_synth.py')
class SegCLIP(MethodHead):
    """SegCLIP: learnable centers group CLIP patches mid-ViT; contrastive + MAE + superpixel KL.

    The paper inserts a *semantic group module* into CLIP's ViT image encoder and trains the
    whole model on image-caption pairs (CC3M + COCO), without any pixel label:

    * **Encoder split.** The first ``split_layer`` blocks (10 of ViT-B/16's 12) run on the
      patch tokens; the group module (:class:`SemanticGroup`) turns them into
      ``num_centers`` (8) center tokens: learnable centers refined by ``cross_layers`` (2)
      cross-attention blocks over ``[centers; patches]``, a patch-to-center assignment (hard
      straight-through Gumbel-softmax, ``tau`` 0.9, in training), each center updated from the
      mean of its patches plus an MLP. The remaining CLIP blocks run on the center tokens
      only; the image embedding is the max over the center tokens, then ``ln_post`` + ``proj``.
    * **Losses** (each switchable through ``loss_weights``: a weight of 0 skips the term, it
      is then absent from the output): ``loss_contrastive``, CLIP's symmetric image-caption
      InfoNCE at the backbone's learned temperature (clamped to 100);
      ``loss_reconstruction``, MAE on a second, masked forward (``mask_ratio`` 0.75 of the
      patches dropped before the encoder; the visible patches are grouped, rebuilt from the
      centers through their assignment, and a small decoder (:class:`MaskedDecoder`)
      predicts the pixels; MSE on the masked patches only); ``loss_superpixel``, a
      symmetric KL between every patch's center assignment and the mean assignment over its
      Felzenszwalb superpixel (per-patch superpixel ids come from the data pipeline, view
      ``superpixels`` B,h,w, from the ``Superpixels`` transform).
    * **Segmentation** (``dense='groupvit'``, the authors' evaluator, GroupViT's rule):
      the soft assignment is upsampled (bilinear) to the window and every pixel takes its
      one strongest center (one-hot argmax); each center's class scores are the softmax
      over the classes of ``logit_scale`` x its cosine with them, restricted to the image's
      top-5 classes by the image embedding's affinity (a softmax over those five only),
      times the unrestricted softmax -> B,K,H,W group scores in [0, 1] at the window's
      resolution. The background (a score below the threshold) is the protocol's
      (``bg_rule='group_score'`` of the SegCLIP preset). ``dense='soft'``: each patch's
      soft assignment times the cosine of each center with each class, B,K,h,w.

    Choices where the paper leaves a detail open, following the authors' public code unless
    said otherwise:

    * ``split_layer`` defaults to the paper's 10/12 of the depth, rounded (3 of the tiny
      CLIP's 4 blocks).
    * The class token is dropped before the first block (the first stage sees the patches
      only) and is not used anywhere: the image embedding pools the centers.
    * Logits of the assignment are the plain dot product of the layer-normalised centers
      and keys (no 1/sqrt(d)); the grouped 1x1 projections use as many groups as heads.
    * Inference: the centers are pooled with the hard argmax assignment (no noise), as in
      the authors' code (``eval_pool='hard'``); ``eval_pool='soft'`` pools with the soft
      assignment instead. The dense assignment is the softmax one (argmax per pixel after
      upsampling with ``dense='groupvit'``). With synonyms, the top-5 restriction counts
      class-name embeddings, not classes (the authors' vocabularies have none).
    * Reconstruction branch: as in the authors' code, the visible patches' tokens are
      rebuilt from the centers (a learned M x M mix of each patch's hard assignment times
      the center tokens) and go through ``num_layers - split_layer`` *new* blocks (not the
      CLIP ones), then the decoder (3 blocks, width W/2, 8 heads or fewer when W/2 is not
      divisible). The target is each patch's pixels of the CLIP-normalised input; with
      ``norm_pix=True`` (default) every target patch is further normalised by its own mean
      and variance (MAE's normalised-pixel loss; the authors' code regresses the
      CLIP-normalised pixels directly, ``norm_pix=False``).
    * Superpixel KL: the training assignment is one-hot (straight-through), so, as in the
      authors' code, both the assignment and its superpixel mean go through a softmax
      before the KL (keeping both directions finite), the gradient flows through both sides,
      and the sum is divided by B*L*M. The authors average the *ids* of a patch's pixels to
      get its superpixel id; the ``Superpixels`` transform takes the majority id instead.
    * Captions: ``caption_tokens`` cuts every tokenized caption to that many tokens (the
      paper's 32, the authors' ``max_words``: start token, 30 words, end token); ``None``
      keeps the backbone's context length.
    * The ``superpixels`` view is required only while the superpixel loss is on
      (``train_views`` is emptied when its weight is 0).
    * The reconstruction uses its own masked forward (as the authors do); the contrastive
      and superpixel losses share the unmasked one.
    * Learning rates are the trainer's (``train.backbone_lr_mult``, ``custom_keys``,
      ``frozen``): the paper config sets the authors' groups (the new modules, CLIP's image
      blocks after the group module, ``ln_post`` and ``proj`` at 4e-3, the rest of CLIP at
      4e-6, ``conv1`` and the positional embedding frozen); the tiny config trains every CLIP
      weight at ``backbone_lr_mult`` = 1e-3. The fidelity card: docs/methods/segclip.md.
    """
    def __init__(self, backbone, split_layer=None, num_centers=8, cross_layers=2, tau=0.9,
                 eval_pool='hard', dense='groupvit', top_classes=5, pool='max',
                 mask_ratio=0.75, norm_pix=True,
                 decoder_layers=3, decoder_dim=None, decoder_heads=8, loss_weights=None,
                 gather=True, caption_tokens=None):
        super().__init__(backbone)
        self.gather = gather
        self.caption_tokens = caption_tokens
        n = backbone.num_layers
        if split_layer is None:
            split_layer = max(1, round(n * 10 / 12))   # the paper's 10 of 12, proportionally
        if not 0 < split_layer < n:
            raise ValueError(f'split_layer must lie in 1..{n - 1}, got {split_layer}')
        if dense not in ('groupvit', 'soft'):
            raise ValueError(f"dense must be 'groupvit' or 'soft', got {dense!r}")
        self.dense = dense
        self.top_classes = int(top_classes)
        if pool not in ('max', 'mean'):
            raise ValueError(f"pool must be 'max' or 'mean', got {pool!r}")
        if not 0 < mask_ratio < 1:
            raise ValueError(f'mask_ratio must lie in (0, 1), got {mask_ratio}')
        weights = dict.fromkeys(LOSSES, 1.0)
        unknown = set(loss_weights or {}) - set(LOSSES)
        if unknown:
            raise ValueError(f'unknown loss_weights {sorted(unknown)}; valid: {LOSSES}')
        weights.update(loss_weights or {})
        self.loss_weights = {k: float(v) for k, v in weights.items()}
        if not self.loss_weights['superpixel']:
            self.train_views = ()          # the superpixel ids are only read by that loss
        self.split_layer = split_layer
        self.pool = pool
        self.mask_ratio = float(mask_ratio)
        self.norm_pix = norm_pix
        self.group = SemanticGroup(backbone.width, num_centers, cross_layers=cross_layers,
                                   tau=tau, eval_pool=eval_pool)
        self.decoder = None
        if self.loss_weights['reconstruction']:
            self.decoder = MaskedDecoder(backbone.width, num_centers, backbone.patch_size,
                                         mid_layers=n - split_layer, decoder_dim=decoder_dim,
                                         decoder_layers=decoder_layers,
                                         decoder_heads=decoder_heads)
        for module in (self.group, self.decoder):
            if module is not None:
                _init_new(module)

    # ------------------------------------------------------------------ encoder
    def _first_stage(self, images, keep_ratio=None):
        """Patch tokens after the first ``split_layer`` blocks (class token dropped).

        With ``keep_ratio`` only a random subset of each image's patches is kept (MAE):
        returns (tokens B,Lv,W, grid, keep B,Lv raster indices sorted)."""
        x, grid = self.backbone.embed(images)
        x = x[:, 1:]
        keep = None
        if keep_ratio is not None:
            b, n, w = x.shape
            n_keep = max(1, int(round(n * keep_ratio)))
            keep = torch.rand(b, n, device=x.device).argsort(1)[:, :n_keep].sort(1).values
            x = x.gather(1, keep.unsqueeze(-1).expand(-1, -1, w))
        return self.backbone.run_blocks(x, 0, self.split_layer), grid, keep

    def encode_groups(self, images):
        """dict(centers B,M,D joint-space center embeddings, image B,D, plus the group module's
        hard/soft/logits assignments B,L,M and the grid (h, w))."""
        x, grid, _ = self._first_stage(images)
        out = self.group(x)
        tokens = self.backbone.run_blocks(out['centers'], self.split_layer, None)
        pooled = tokens.max(1).values if self.pool == 'max' else tokens.mean(1)
        out['image'] = self.backbone.project(pooled[:, None])[:, 0]
        out['centers'] = self.backbone.project(tokens)
        out['grid'] = grid
        return out

    def encode_image(self, images):
        return self.encode_groups(images)['image']

    # ------------------------------------------------------------------ losses
    def _contrastive(self, image, captions, device):
        tokens = self.backbone.tokenize(list(captions)).to(device)
        if self.caption_tokens:
            tokens = truncate_tokens(tokens, self.caption_tokens)
        text = F.normalize(self.backbone.encode_text(tokens), dim=-1)
        scale = self.backbone.logit_scale.clamp(max=100)
        out = info_nce(F.normalize(image, dim=-1), text, scale, gather=self.gather)
        return out.loss, dict(acc_i2t=out.accuracy()[0], logit_scale=scale.detach())

    @staticmethod
    def superpixel_kl(assign, ids):
        """Symmetric KL between each patch's assignment and its superpixel's mean assignment.

        ``assign`` B,L,M (rows: a patch's assignment over the centers), ``ids`` B,L superpixel
        ids (negative: ignored, e.g. padding). Both go through a softmax over the centers.
        """
        ids = ids.reshape(assign.shape[0], -1).to(assign.device)
        valid = (ids >= 0).to(assign.dtype)
        same = (ids[:, :, None] == ids[:, None, :]).to(assign.dtype) * valid[:, None, :]
        mean = same @ assign / same.sum(-1, keepdim=True).clamp_min(1.0)
        log_p, log_q = assign.log_softmax(-1), mean.log_softmax(-1)
        kl_pq = (log_p.exp() * (log_p - log_q)).sum(-1)
        kl_qp = (log_q.exp() * (log_q - log_p)).sum(-1)
        per_patch = (kl_pq + kl_qp) / 2 * valid
        return per_patch.sum() / (assign.shape[0] * assign.shape[1] * assign.shape[2])

    def reconstruction(self, images):
        """MAE loss of a masked forward: mean squared error over the masked patches' pixels."""
        x, grid, keep = self._first_stage(images, keep_ratio=1 - self.mask_ratio)
        out = self.group(x)
        pred = self.decoder(out['centers'], out['hard'], keep, grid)
        target = patchify(images, self.backbone.patch_size)
        if self.norm_pix:
            mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            target = (target - mean) / (var + 1e-6).sqrt()
        masked = torch.ones(target.shape[:2], device=images.device)
        masked.scatter_(1, keep, 0.0)
        err = ((pred - target) ** 2).mean(-1)
        return (err * masked).sum() / masked.sum().clamp_min(1.0)

    def forward_train(self, batch):
        images = batch['images']
        w = self.loss_weights
        out = {}
        if w['contrastive'] or w['superpixel']:
            enc = self.encode_groups(images)
            with torch.no_grad():
                used = (enc['hard'].sum(1) > 0).float().sum(-1).mean()
            out['centers_used'] = used
        if w['contrastive']:
            loss, logs = self._contrastive(enc['image'], batch['captions'], images.device)
            out['loss_contrastive'] = w['contrastive'] * loss
            out.update(logs)
        if w['superpixel']:
            if 'superpixels' not in batch:
                raise KeyError("SegCLIP's superpixel loss needs the 'superpixels' view (per-patch "
                               'ids B,h,w): add the Superpixels transform to the train pipeline, '
                               'or set loss_weights.superpixel=0')
            sp = torch.as_tensor(batch['superpixels'])
            h, w_ = enc['grid']
            if tuple(sp.shape[-2:]) != (h, w_):
                raise ValueError(f'superpixels are {tuple(sp.shape[-2:])} per image but the patch '
                                 f'grid is {(h, w_)}: set the transform\'s patch_size to '
                                 f'{self.backbone.patch_size}')
            out['loss_superpixel'] = w['superpixel'] * self.superpixel_kl(enc['hard'], sp)
        if w['reconstruction']:
            out['loss_reconstruction'] = w['reconstruction'] * self.reconstruction(images)
        return out

    # ------------------------------------------------------------------ inference
    def group_scores(self, centers, image, class_embeds):
        """B,M,K class scores of each center (GroupViT's rule, as the authors evaluate):
        ``softmax`` over the image's ``top_classes`` classes (by the image embedding's
        affinity) times the softmax over all classes, both at ``logit_scale`` (clamped to
        100). ``centers`` B,M,D and ``image`` B,D L2-normalised; ``class_embeds`` K,D."""
        scale = self.backbone.logit_scale.clamp(max=100)
        affinity = scale * centers @ class_embeds.t()                    # B,M,K
        image_top = (scale * image @ class_embeds.t()).topk(
            min(self.top_classes, len(class_embeds)), dim=-1).indices    # B,k
        keep = torch.zeros_like(affinity[:, 0], dtype=torch.bool).scatter_(1, image_top, True)
        restricted = affinity.masked_fill(~keep[:, None], float('-inf')).softmax(-1)
        return restricted * affinity.softmax(-1)

    def predict_dense(self, images, class_embeds):
        enc = self.encode_groups(images)
        centers = F.normalize(enc['centers'], dim=-1)                    # B,M,D
        embeds = class_embeds.to(centers.dtype)
        h, w = enc['grid']
        b, m = centers.shape[:2]
        if self.dense == 'soft':
            logits = enc['soft'] @ (centers @ embeds.t())                # B,L,K
            return logits.transpose(1, 2).reshape(b, -1, h, w)
        scores = self.group_scores(centers, F.normalize(enc['image'], dim=-1), embeds)
        assign = enc['soft'].transpose(1, 2).reshape(b, m, h, w)
        assign = F.interpolate(assign, size=images.shape[-2:], mode='bilinear',
                               align_corners=False)
        onehot = F.one_hot(assign.argmax(1), m).to(scores.dtype)        # B,H,W,M
        return torch.einsum('bhwm,bmk->bkhw', onehot, scores)
