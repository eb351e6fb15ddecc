"""CLIP-ZSS (Chen et al., "CLIP Is Also a Good Teacher: A New Learning Framework for Inductive
Zero-shot Semantic Segmentation", arXiv 2310.02296; v1 titled the framework CLIPTeacher).

Also home of the inductive generalized zero-shot *training* protocol piece,
:class:`IgnoreUnseenClasses` (a pipeline transform: unseen-class pixels become ignore).
"""
import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS
from torch import nn

from ovseg_bench.head import MethodHead
from ovseg_bench.registry import METHODS

IGNORE = 255


# ---------------------------------------------------------------------------- protocol
def dataset_classes(name):
    """Class names, in label order, of the named dataset config (``configs/_base_/datasets``),
    as its mmseg dataset class reports them (after ``reduce_zero_label``)."""
    from mmseg.registry import DATASETS

    import ovseg_bench.data  # noqa: F401  (registers the project's dataset classes)
    from ovseg_bench.data.catalog import load_dataset_cfg
    ds = load_dataset_cfg(name)
    split = ds.get('train') or ds['eval']
    cls = DATASETS.get(split['type'])
    if cls is None:
        raise KeyError(f'dataset type {split["type"]!r} of {name!r} is not registered')
    return tuple(cls.METAINFO['classes'])


def unseen_lut(classes, unseen, ignore_index=IGNORE):
    """uint8/long lookup table over label values 0..255: unseen classes -> ``ignore_index``."""
    unknown = sorted(set(unseen) - set(classes))
    if unknown:
        raise ValueError(f'unseen classes not in the dataset: {unknown}; classes: {classes}')
    lut = np.arange(256, dtype=np.int64)
    for i, name in enumerate(classes):
        if name in unseen:
            lut[i] = ignore_index
    return lut


@TRANSFORMS.register_module()
class IgnoreUnseenClasses(BaseTransform):
    """Inductive zero-shot training: every pixel of an unseen class becomes ``ignore_index``.

    Place it right after ``LoadAnnotations``. ``unseen``: class names (as the dataset class
    reports them); ``dataset``: a dataset config name whose classes give the label order, or
    ``classes``: the names in label order. Images are kept (the inductive setting of
    ZegCLIP / CLIP-ZSS: unseen objects may appear in training images, unlabelled).
    """

    def __init__(self, unseen, dataset=None, classes=None, ignore_index=IGNORE):
        if (dataset is None) == (classes is None):
            raise ValueError('give exactly one of dataset= or classes=')
        classes = tuple(classes) if classes is not None else dataset_classes(dataset)
        self.unseen = tuple(unseen)
        self.ignore_index = ignore_index
        self.lut = unseen_lut(classes, self.unseen, ignore_index)

    def transform(self, results):
        gt = results['gt_seg_map']
        results['gt_seg_map'] = self.lut[gt.astype(np.int64)].astype(gt.dtype)
        return results

    def __repr__(self):
        return f'{type(self).__name__}(unseen={self.unseen}, ignore_index={self.ignore_index})'


# ---------------------------------------------------------------------------- clustering
def spherical_kmeans(x, k, iters=10):
    """K-means of L2-normalised rows under cosine similarity, for one image or a batch.

    ``x``: N,D rows, or B,N,D (B independent problems solved together: one matmul per step
    for the whole batch instead of a Python loop per image). Deterministic farthest-point
    initialisation (first centre: the row closest to the mean direction; then, repeatedly,
    the row least similar to every centre chosen so far). Returns ``(assign, centres)``,
    N / B,N long and k,D / B,k,D; ``k`` is capped at N.
    """
    single = x.dim() == 2
    if single:
        x = x[None]
    b, n, _ = x.shape
    k = max(1, min(int(k), n))
    rows = torch.arange(b, device=x.device)
    mean_dir = F.normalize(x.mean(1), dim=-1)
    idx = [torch.einsum('bnd,bd->bn', x, mean_dir).argmax(1)]
    nearest = torch.einsum('bnd,bd->bn', x, x[rows, idx[0]])
    for _ in range(1, k):
        idx.append(nearest.argmin(1))
        nearest = torch.maximum(nearest, torch.einsum('bnd,bd->bn', x, x[rows, idx[-1]]))
    centres = x[rows[:, None], torch.stack(idx, 1)]                           # B,k,D
    for _ in range(iters):
        member = F.one_hot((x @ centres.transpose(1, 2)).argmax(2), k).to(x.dtype)  # B,N,k
        sums = member.transpose(1, 2) @ x
        counts = member.sum(1)[..., None]
        centres = torch.where(counts > 0, F.normalize(sums, dim=-1), centres)
    assign = (x @ centres.transpose(1, 2)).argmax(2)
    return (assign[0], centres[0]) if single else (assign, centres)


def connected_components(adj):
    """Component id (0..G-1, in order of first member) of every node of a symmetric bool
    adjacency matrix (M,M)."""
    m = adj.shape[0]
    label = torch.arange(m, device=adj.device)
    adj = adj | torch.eye(m, dtype=torch.bool, device=adj.device)
    while True:
        spread = torch.where(adj, label[None, :], m).min(1).values
        if torch.equal(spread, label):
            break
        label = spread
    return torch.unique(label, return_inverse=True)[1]


def multiscale_kmeans_fusion(x, ks=(2, 4, 8), threshold=0.9, iters=10):
    """Regions of one image from multi-scale K-means with mask fusion.

    ``x``: N,D L2-normalised dense tokens. K-means is run once per K in ``ks``; every mask of
    every scale gets its mean token; masks whose mean tokens have cosine similarity above
    ``threshold`` are fused (transitively: connected components), a fused region covering
    the union of its masks. Every token belongs to one mask per scale, hence to one or more
    fused regions; it is given the one whose prototype (normalised mean token over the
    region) it is most similar to. Returns ``(label N long in 0..G-1, prototypes G,D)``.
    A batch B,N,D gives a list of B such pairs (K-means batched, fusion per image).
    """
    if x.dim() == 2:
        return multiscale_kmeans_fusion(x[None], ks, threshold, iters)[0]
    assigns = [spherical_kmeans(x, k, iters)[0] for k in ks]                  # each B,N
    return [fuse_masks(x[i], [a[i] for a in assigns], threshold) for i in range(len(x))]


def fuse_masks(x, assigns, threshold):
    """The fusion step of :func:`multiscale_kmeans_fusion` for one image: ``x`` N,D tokens,
    ``assigns`` one N-long cluster assignment per scale."""
    masks = []
    for assign in assigns:
        one_hot = F.one_hot(assign, max(int(assign.max()) + 1, 1)).t().bool()   # k,N
        masks.append(one_hot[one_hot.any(1)])
    masks = torch.cat(masks)                                                  # M,N
    means = F.normalize(masks.float() @ x, dim=-1)
    groups = connected_components(means @ means.t() > threshold)              # M
    member = (F.one_hot(groups).t().float() @ masks.float()) > 0              # G,N union
    protos = F.normalize(member.float() @ x, dim=-1)                          # G,D
    score = (x @ protos.t()).masked_fill(~member.t(), -2.0)
    label = score.argmax(1)
    # regions that lost every token to a better-matching region are dropped
    used = torch.unique(label)
    remap = torch.full((protos.shape[0],), -1, dtype=torch.long, device=x.device)
    remap[used] = torch.arange(len(used), device=x.device)
    label = remap[label]
    protos = F.normalize(F.one_hot(label, len(used)).t().float() @ x, dim=-1)
    return label, protos


# ---------------------------------------------------------------------------- modules
class PseudoWeightSynthesizer(nn.Module):
    """Region features -> classifier weights in the text-embedding space.

    One cross-attention block: each region feature (query) attends to the image's CLIP
    class token and dense tokens (keys/values), then an MLP; both residual, with their last
    layers zero-initialised so that a fresh synthesizer returns the region feature itself.
    Output L2-normalised.
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
        """``queries`` B,Q,D region features; ``context`` B,T,D (class token first)."""
        kv = self.norm_kv(context)
        x = queries + self.attn(self.norm_q(queries), kv, kv, need_weights=False)[0]
        x = x + self.mlp(self.norm_mlp(x))
        return F.normalize(x, dim=-1)


def _strip_text_tower(backbone):
    """Delete the text tower's parameters from a backbone copy used as an image encoder."""
    if not hasattr(backbone, '_text_named_tensors') or not hasattr(backbone, 'model'):
        return
    for name, _ in backbone._text_named_tensors():
        if name in ('logit_scale', 'logit_bias'):
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
        _strip_text_tower(vit)
        if hasattr(vit, 'frozen'):
            vit.frozen = False
        vit.requires_grad_(True)
        self.vit = vit
        self.last_block = last_block
        self.out_dim = backbone.embed_dim

    def forward(self, images):
        patch = self.vit.forward_dense(images, last_block=self.last_block).patch
        return patch.permute(0, 3, 1, 2)                                      # B,D,h,w


class MMSegEncoder(nn.Module):
    """An mmseg backbone + decode head as the segmentation encoder (e.g. DeepLabV3+ with
    ResNet-101, SegFormer with MiT); the decode head's classifier is resized to output the
    joint-space dimension, so its output is the dense feature map. Pretrained weights come
    from the configs' ``init_cfg`` (``init_weights`` is called here)."""

    def __init__(self, out_dim, backbone, decode_head, neck=None):
        super().__init__()
        import mmseg.models  # noqa: F401  (registers mmseg's modules)
        from mmseg.registry import MODELS
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
        return MMSegEncoder(backbone.embed_dim, **cfg)
    raise ValueError(f"encoder type must be 'clip_vit' or 'mmseg', got {kind!r}")


# ---------------------------------------------------------------------------- the method
@METHODS.register_module()
class CLIPZSS(MethodHead):
    """CLIP-ZSS: a segmentation encoder trained on seen-class masks with CLIP as teacher (GLM+PLM).

    Setting: inductive generalized zero-shot. Training sees pixel labels of the seen classes
    only (unseen-class pixels are ignore, :class:`IgnoreUnseenClasses`) and never the unseen
    class names; testing segments seen and unseen classes. The CLIP model (``backbone``) is
    a frozen teacher: its text tower gives the class embeddings, its image tower only
    supervises training. The trained segmentation encoder (``encoder``) alone, compared with
    class text embeddings, makes the prediction: no CLIP image encoder at inference
    (:meth:`drop_teacher` removes it; ``predict_dense`` never touches it).

    The paper's two modules, on top of per-pixel cross-entropy of the seen classes against
    their text embeddings (cosine logits):

    * **Global Learning Module (GLM)**: CLIP's class token is the only token CLIP trained
      against text, so it is distilled into the dense features. The frozen teacher's class
      token of each image queries the encoder's dense features (attention pooling); the
      pooled feature is pulled to the class token of the same image and pushed from the class
      tokens of the other images (InfoNCE), with a memory bank (FIFO queue) of class tokens of
      earlier batches as extra negatives.
    * **Pixel Learning Module (PLM)**: the unannotated regions (ignore pixels, which include
      every unseen object) get pseudo labels. K-means at several K over the teacher's dense
      tokens gives masks at several granularities; masks whose mean tokens are more similar
      than a threshold are fused. A fused region that lies mostly in unannotated pixels
      becomes a pseudo class of its image. A **pseudo weight synthesizer** turns each region
      feature (mask-pooled teacher tokens; the query) into a classifier weight by attending
      to CLIP's class token (and the image's dense tokens); it learns this mapping on the
      seen regions, whose synthesized weights are aligned with their classes' text
      embeddings. Pixels are classified over [seen text embeddings; the image's pseudo
      weights], with cross-entropy on the seen labels and on the pseudo labels, so that
      unseen-looking regions stop being absorbed into seen classes.

    Choices where the paper leaves a detail open (or where this benchmark differs):

    * Encoder (``encoder``): ``dict(type='clip_vit')`` (default) is a trainable copy of the
      shared CLIP ViT's image tower whose patch tokens after ln_post+proj are the dense
      features (the benchmark's rule: every method starts from the same CLIP);
      ``dict(type='mmseg', backbone=..., decode_head=..., neck=None)`` builds any mmseg
      backbone + decode head (the paper's DeepLabV3+/ResNet-101 or SegFormer/MiT: mmseg's
      ``ResNetV1c`` + ``DepthwiseSeparableASPPHead``, ``MixVisionTransformer`` +
      ``SegformerHead``), its classifier resized to the joint-space width. mmseg encoders
      see CLIP-normalised pixels (the benchmark normalises for the backbone).
    * Teacher dense tokens for K-means and region features: the last block's value path
      (``teacher_last_block='value'``, MaskCLIP's observation that CLIP's standard last-block
      patch tokens are spatially uninformative while the value embeddings keep each patch's
      semantics), L2-normalised, at patch resolution.
    * GLM: parameter-free attention, softmax over patches of the cosine between the class
      token and each dense feature times CLIP's own logit scale (the scale CLIP uses to turn
      cosines into probabilities); the pooled feature is the weighted mean of the normalised
      dense features. InfoNCE temperature 0.07 (MoCo's) over [batch class tokens; queue].
      The teacher is frozen, so the queue holds exact class tokens (no momentum encoder);
      ``queue_size`` 4096 (paper configs) / 256 (tiny default: a 300-image train set).
    * K-means: spherical (cosine), deterministic farthest-point initialisation, 10
      iterations; ``kmeans_ks`` (2, 4, 8) for the tiny default's 8x8 token grid, (8, 16, 32)
      for 512-px crops of ViT-B/16 (32x32 tokens). Fusion threshold 0.9 (cosine of mask
      mean tokens), transitive. A region is a pseudo class when at least half of its
      patches are unannotated (``pseudo_min_ignore``); only its unannotated pixels take the
      pseudo label (annotated pixels keep their seen label); at most ``max_pseudo`` regions
      per image (the largest).
    * Synthesizer: one pre-norm cross-attention + MLP block, residual and zero-initialised
      (a fresh synthesizer returns the region feature, already near the text space); keys
      and values are the image's teacher class token and dense tokens. Seen regions are the
      seen-class masks pooled at patch resolution (soft: patch fractions). Alignment loss:
      1 - cosine to the class's text embedding (max over the class's synonyms). The pixel
      loss also trains the synthesizer (``detach_pseudo_weights=False``): trained by the
      alignment alone, it learned to map every region onto a seen text embedding (measured
      on the tiny default: pseudo weights had cosine 0.945 to the nearest seen text, 0.06
      to their own region feature), so the pseudo classes were copies of seen classes and
      the unseen pixels were trained towards them (unseen mIoU 4-5 with PLM, 18-35
      without). ``detach_pseudo_weights=True`` restores the alignment-only synthesizer.
    * Pixel logits: cosine x CLIP's logit scale, computed at patch resolution and upsampled
      bilinearly to the label resolution; class scores are the max over a class's synonyms
      (as at test time); text embeddings use the protocol's templates (``templates``).
      Only the seen classes' names are ever embedded during training.
    * Loss: ``seg + pseudo + glm + align``, each weight 1 (``loss_weights``); ``use_glm`` /
      ``use_plm`` switch the modules off (both off = the plain supervised baseline: seen
      classes only, text-embedding classifier).
    """
    setting = 'zero_shot'
    train_views = ('gt_seg',)

    def __init__(self, backbone, train_dataset, unseen_classes, encoder=None,
                 templates='imagenet80', use_glm=True, use_plm=True, teacher_last_block='value',
                 queue_size=4096, glm_temperature=0.07, kmeans_ks=(2, 4, 8), kmeans_iters=10,
                 fusion_threshold=0.9, pseudo_min_ignore=0.5, max_pseudo=16,
                 synthesizer_heads=4, detach_pseudo_weights=False, loss_weights=None,
                 text_cache=None):
        super().__init__(backbone)
        if teacher_last_block not in backbone.LAST_BLOCKS:
            raise ValueError(f'teacher_last_block must be one of {backbone.LAST_BLOCKS}, '
                             f'got {teacher_last_block!r}')
        self.encoder = build_encoder(encoder, backbone)
        self.backbone.requires_grad_(False)
        self.backbone.eval()
        self.train_dataset = train_dataset
        self.classes = dataset_classes(train_dataset)
        self.unseen_classes = tuple(unseen_classes)
        lut = torch.as_tensor(unseen_lut(self.classes, self.unseen_classes))
        self.seen = [i for i, c in enumerate(self.classes) if c not in self.unseen_classes]
        seen_lut = torch.full((256,), IGNORE, dtype=torch.long)
        seen_lut[torch.tensor(self.seen)] = torch.arange(len(self.seen))
        seen_lut[lut == IGNORE] = IGNORE
        self.register_buffer('seen_lut', seen_lut, persistent=False)
        self.templates = templates
        self.text_cache = text_cache
        self.use_glm, self.use_plm = use_glm, use_plm
        self.teacher_last_block = teacher_last_block
        self.glm_temperature = glm_temperature
        self.kmeans_ks = tuple(kmeans_ks)
        self.kmeans_iters = kmeans_iters
        self.fusion_threshold = fusion_threshold
        self.pseudo_min_ignore = pseudo_min_ignore
        self.max_pseudo = max_pseudo
        self.detach_pseudo_weights = detach_pseudo_weights
        weights = dict(seg=1.0, pseudo=1.0, glm=1.0, align=1.0)
        unknown = set(loss_weights or {}) - set(weights)
        if unknown:
            raise ValueError(f'unknown loss_weights keys {sorted(unknown)}; valid: {list(weights)}')
        weights.update(loss_weights or {})
        self.loss_weights = weights
        dim = backbone.embed_dim
        self.synthesizer = PseudoWeightSynthesizer(dim, synthesizer_heads) if use_plm else None
        self.register_buffer('queue', torch.zeros(queue_size if use_glm else 0, dim),
                             persistent=False)
        self.register_buffer('queue_ptr', torch.zeros((), dtype=torch.long), persistent=False)
        self.register_buffer('queue_len', torch.zeros((), dtype=torch.long), persistent=False)
        self._seen_text = None
        self.teacher_dropped = False

    # ------------------------------------------------------------------ teacher
    def train(self, mode=True):
        super().train(mode)
        self.backbone.eval()            # the teacher is frozen, always in eval mode
        return self

    def drop_teacher(self):
        """Remove the CLIP image tower (inference needs only the encoder and the text tower)."""
        model = getattr(self.backbone, 'model', None)
        dropped = False
        if model is not None:
            for attr in ('visual', 'vision_model', 'visual_projection'):
                if getattr(model, attr, None) is not None:
                    setattr(model, attr, None)
                    dropped = True
        if not dropped:
            raise NotImplementedError(f'{type(self.backbone).__name__}: no known image tower '
                                      f'attribute to drop')
        self.teacher_dropped = True
        return self

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if self.teacher_dropped:   # a full checkpoint into a head without its image tower
            model = getattr(self.backbone, 'model', None)
            for attr in ('visual', 'vision_model', 'visual_projection'):
                if model is not None and hasattr(model, attr) and getattr(model, attr) is None:
                    drop = f'{prefix}backbone.model.{attr}.'
                    for key in [k for k in state_dict if k.startswith(drop)]:
                        del state_dict[key]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def logit_scale(self):
        return float(self.backbone.logit_scale.detach().clamp(max=100))

    # ------------------------------------------------------------------ text
    def seen_text(self):
        """(N,D L2-normalised name embeddings of the seen classes, N owner: seen index)."""
        if self._seen_text is None:
            from ovseg_bench.text import class_embeddings, load_vocabulary
            from ovseg_bench.data.catalog import load_dataset_cfg
            vocab = load_vocabulary(load_dataset_cfg(self.train_dataset)['vocabulary'])
            if len(vocab) != len(self.classes):
                raise ValueError(f'vocabulary of {self.train_dataset!r} has {len(vocab)} lines '
                                 f'but the dataset has {len(self.classes)} classes')
            seen_vocab = [vocab[i] for i in self.seen]
            embeds, owner = class_embeddings(self, seen_vocab, self.templates,
                                             cache_dir=self.text_cache)
            self._seen_text = (embeds, owner)
        device = self.seen_lut.device
        return tuple(t.to(device) for t in self._seen_text)

    def _class_scores(self, feats, embeds, owner):
        """B,D,h,w normalised features -> B,S,h,w cosine, max over each class's names."""
        from ovseg_bench.text import merge_synonyms
        logits = torch.einsum('bdhw,nd->bnhw', feats, embeds)
        return merge_synonyms(logits, owner, int(owner.max()) + 1)

    # ------------------------------------------------------------------ inference
    def encode_dense(self, images):
        """B,D,h,w L2-normalised dense features of the segmentation encoder."""
        return F.normalize(self.encoder(images), dim=1)

    def predict_dense(self, images, class_embeds):
        return torch.einsum('bdhw,kd->bkhw', self.encode_dense(images), class_embeds)

    # ------------------------------------------------------------------ training
    def forward_train(self, batch):
        images = batch['images']
        gt = torch.as_tensor(batch['gt_seg'], device=images.device).long()
        if gt.dim() == 4:
            gt = gt[:, 0]
        target = self.seen_lut[gt.clamp(0, 255)]              # seen index or 255
        b, _, H, W = images.shape
        embeds, owner = self.seen_text()
        n_seen = len(self.seen)
        scale = self.logit_scale
        feats = self.encode_dense(images)                     # B,D,h,w
        h, w = feats.shape[-2:]
        out = {}

        teacher = None
        if self.use_glm or self.use_plm:
            with torch.no_grad():
                t = self.backbone.forward_dense(images, last_block=self.teacher_last_block)
                teacher = (F.normalize(t.cls.float(), dim=-1),
                           F.normalize(t.patch.float(), dim=-1))          # B,D / B,h',w',D
                if t.patch.shape[1:3] != (h, w):
                    tp = F.interpolate(teacher[1].permute(0, 3, 1, 2), size=(h, w),
                                       mode='bilinear', align_corners=False)
                    teacher = (teacher[0], F.normalize(tp, dim=1).permute(0, 2, 3, 1))

        logits = self._class_scores(feats, embeds, owner)    # B,S,h,w
        if self.use_plm:
            plm = self._pixel_learning(target, teacher, embeds, owner, (h, w))
            out.update(plm['logs'])
            out['loss_align'] = self.loss_weights['align'] * plm['align']
            if plm['weights'] is not None:
                weights = plm['weights']
                if self.detach_pseudo_weights:
                    weights = weights.detach()
                pseudo = torch.einsum('bdhw,bqd->bqhw', feats, weights)
                pseudo = pseudo.masked_fill(~plm['valid'][:, :, None, None], -1e4)
                logits = torch.cat([logits, pseudo], 1)
                target = torch.where(plm['target'] >= 0, n_seen + plm['target'], target)

        logits = F.interpolate(logits * scale, size=(H, W), mode='bilinear',
                               align_corners=False)
        ce = F.cross_entropy(logits, target, ignore_index=IGNORE, reduction='none')
        seen_px = target < n_seen
        pseudo_px = (target >= n_seen) & (target != IGNORE)
        zero = logits.sum() * 0
        out['loss_seg'] = self.loss_weights['seg'] * (
            ce[seen_px].mean() if seen_px.any() else zero)
        if self.use_plm:
            out['loss_pseudo'] = self.loss_weights['pseudo'] * (
                ce[pseudo_px].mean() if pseudo_px.any() else zero)
        with torch.no_grad():
            pred = logits.argmax(1)
            out['acc_seen'] = ((pred == target) & seen_px).sum() / seen_px.sum().clamp_min(1)

        if self.use_glm:
            out.update(self._global_learning(feats, teacher[0]))
        return out

    def _global_learning(self, feats, cls):
        """GLM: class-token attention pooling of the dense features, InfoNCE vs class tokens."""
        f = feats.flatten(2).transpose(1, 2)                  # B,N,D normalised
        attn = (torch.einsum('bnd,bd->bn', f, cls) * self.logit_scale).softmax(1)
        pooled = F.normalize(torch.einsum('bn,bnd->bd', attn, f), dim=-1)
        n_queue = int(self.queue_len)
        keys = torch.cat([cls, self.queue[:n_queue]]) if n_queue else cls
        logits = pooled @ keys.t() / self.glm_temperature
        target = torch.arange(len(cls), device=cls.device)
        loss = F.cross_entropy(logits, target)
        with torch.no_grad():
            acc = (logits.argmax(1) == target).float().mean()
            self._enqueue(cls)
        return dict(loss_glm=self.loss_weights['glm'] * loss, glm_acc=acc,
                    glm_negatives=torch.tensor(float(keys.shape[0] - 1)))

    @torch.no_grad()
    def _enqueue(self, keys):
        size = self.queue.shape[0]
        if size == 0:
            return
        keys = keys[-size:]
        idx = (int(self.queue_ptr) + torch.arange(len(keys), device=keys.device)) % size
        self.queue[idx] = keys.to(self.queue.dtype)
        self.queue_ptr.fill_((int(self.queue_ptr) + len(keys)) % size)
        self.queue_len.fill_(min(size, int(self.queue_len) + len(keys)))

    def pseudo_regions(self, target, tokens, grid):
        """PLM pseudo labels of a batch.

        ``target`` B,H,W seen index or 255; ``tokens`` B,h,w,D normalised teacher tokens.
        Returns ``(regions B,h,w long: pseudo region index or -1, features list of Q_b,D)``.
        """
        b = target.shape[0]
        h, w = grid
        unlabelled = F.adaptive_avg_pool2d((target == IGNORE).float()[:, None], (h, w))[:, 0]
        regions = torch.full((b, h, w), -1, dtype=torch.long, device=target.device)
        features = []
        fused = multiscale_kmeans_fusion(tokens.reshape(b, h * w, -1), self.kmeans_ks,
                                         self.fusion_threshold, self.kmeans_iters)
        for i, (label, protos) in enumerate(fused):
            g = protos.shape[0]
            size = torch.bincount(label, minlength=g).float()
            share = torch.zeros(g, device=tokens.device).index_add_(
                0, label, unlabelled[i].flatten()) / size.clamp_min(1)
            keep = (share >= self.pseudo_min_ignore).nonzero()[:, 0]
            keep = keep[size[keep].argsort(descending=True)][:self.max_pseudo]
            remap = torch.full((g,), -1, dtype=torch.long, device=tokens.device)
            remap[keep] = torch.arange(len(keep), device=tokens.device)
            regions[i] = remap[label].view(h, w)
            features.append(protos[keep])
        return regions, features

    def _pixel_learning(self, target, teacher, embeds, owner, grid):
        cls, tokens = teacher
        b, H, W = target.shape
        h, w = grid
        n_seen = len(self.seen)
        context = torch.cat([cls[:, None], tokens.flatten(1, 2)], 1)          # B,1+hw,D
        out = dict(logs={})

        # seen regions: seen masks pooled at patch resolution -> synthesizer -> text alignment
        onehot = F.one_hot(torch.where(target == IGNORE, n_seen, target), n_seen + 1)
        frac = F.adaptive_avg_pool2d(onehot.permute(0, 3, 1, 2).float(), (h, w))[:, :n_seen]
        mass = frac.flatten(2).sum(-1)                                          # B,S
        present = mass >= 0.5
        if present.any():
            region = F.normalize(torch.einsum('bshw,bhwd->bsd', frac, tokens), dim=-1)
            synth = self.synthesizer(region, context)                          # B,S,D
            cos = self._class_scores(synth.transpose(1, 2)[..., None], embeds, owner)[..., 0]
            own = torch.diagonal(cos, dim1=1, dim2=2)          # B,S: region s vs class s
            out['align'] = (1 - own[present]).mean()
            out['logs']['align_cos'] = own[present].mean().detach()
        else:
            out['align'] = tokens.new_zeros(())

        # pseudo regions in the unannotated pixels
        with torch.no_grad():
            regions, feats = self.pseudo_regions(target, tokens, grid)
        q = max(len(f) for f in feats)
        out['logs']['pseudo_regions'] = torch.tensor(sum(len(f) for f in feats) / b)
        if q == 0:
            out['weights'] = None
            return out
        queries = torch.zeros(b, q, tokens.shape[-1], device=tokens.device)
        valid = torch.zeros(b, q, dtype=torch.bool, device=tokens.device)
        for i, f in enumerate(feats):
            queries[i, :len(f)] = f
            valid[i, :len(f)] = True
        out['weights'] = self.synthesizer(queries, context)                    # B,Q,D
        out['valid'] = valid
        up = F.interpolate(regions[:, None].float(), size=(H, W), mode='nearest')[:, 0].long()
        out['target'] = torch.where(target == IGNORE, up, torch.full_like(up, -1))
        out['logs']['pseudo_pixels'] = (out['target'] >= 0).float().mean()
        return out
