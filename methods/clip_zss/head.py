"""The CLIP-ZSS method head (registered as ``CLIPZSS``); its fidelity card is
``docs/methods/clip_zss.md``."""
import torch
import torch.nn.functional as F

from ovseg_bench.backbones.base import MissingCapability
from ovseg_bench.data.zero_shot import IGNORE, dataset_classes, unseen_lut
from ovseg_bench.head import MethodHead
from ovseg_bench.losses import gather_rows_no_grad
from ovseg_bench.registry import register_method

from .glm import ClassTokenBank, class_token_attention, masked_info_nce
from .modules import PseudoWeightSynthesizer, SigmoidLogits, build_encoder, focal_dice_loss
from .plm import pseudo_regions

LOSS_WEIGHTS = dict(glm=1.0, ce=1.0, focal=100.0, dice=1.0, bce=1.0)


def label_fractions(labels, n, grid):
    """B,n,h,w share of each ``grid`` cell's pixels that carry label 0..n-1 (``labels``
    B,H,W; other values count for none): area pooling by counting, without a one-hot map."""
    b, H, W = labels.shape
    h, w = grid
    dev = labels.device
    cell = ((torch.arange(H, device=dev) * h // H)[:, None] * w
            + (torch.arange(W, device=dev) * w // W)[None, :])                   # H,W
    area = torch.bincount(cell.flatten(), minlength=h * w).float()
    keep = labels < n
    idx = (torch.arange(b, device=dev)[:, None, None] * n + labels.clamp(max=n - 1)) * (h * w)
    counts = torch.bincount((idx + cell)[keep], minlength=b * n * h * w).float()
    return counts.view(b, n, h, w) / area.view(1, 1, h, w)


@register_method(display_name='CLIP-ZSS', setting='zero_shot', train_views=('gt_seg', 'image_id'),
                 config='clip_zss/clip_zss_tiny_synth.py')
class CLIPZSS(MethodHead):
    """CLIP-ZSS: a closed-set segmentation encoder trained on seen-class masks with a frozen
    CLIP as teacher (Chen et al., arXiv 2310.02296).

    Setting: inductive generalized zero-shot. Training sees pixel labels of the seen classes
    only (unseen pixels are ignore, :class:`~ovseg_bench.data.zero_shot.IgnoreUnseenClasses`) and never the
    unseen names; the trained ``encoder`` alone, compared with class text embeddings, makes
    the prediction (:meth:`drop_teacher` removes CLIP's image tower).

    * GLM (``use_glm``): the teacher's class token S pools the encoder's dense features R
      with ``W = Softmax(S R / sqrt(C))``; the pooled feature is pulled to S and pushed from
      the class tokens of the other images of the (global) batch and of a memory bank
      (InfoNCE, temperature ``glm_temperature``); keys of the same image are never negatives.
    * PLM (``use_plm``): seeded multi-scale K-means over the teacher's dense tokens plus mask
      fusion give regions; those lying mostly in unannotated, unpadded pixels are pseudo
      classes, whose unannotated pixels join the label map (the fused labels). The
      synthesizer turns the centroids of the encoder's features under every fused label into
      prototypes by attending to CLIP's class token: seen prototypes are aligned with their
      text embeddings by a sigmoid BCE (``bce``), pseudo prototypes classify their regions.
    * Loss: ``glm + ce + focal + dice + bce`` (``loss_weights``): CE over the fused labels
      with [seen text; the image's pseudo prototypes] as classifier, and ZegCLIP's
      non-mutually-exclusive loss (sigmoid focal + dice) on the seen classes.
    """
    def __init__(self, backbone, train_dataset, unseen_classes, encoder=None,
                 templates='imagenet80', use_glm=True, use_plm=True, teacher_last_block='value',
                 queue_size=4096, glm_temperature=0.07, seed_windows=(4, 2), kmeans_iters=10,
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
        self.train_views = ('gt_seg',) + (('image_id',) if use_glm else ())
        self.teacher_last_block = teacher_last_block
        self.glm_temperature = glm_temperature
        self.seed_windows = tuple(seed_windows)
        self.kmeans_iters = kmeans_iters
        self.fusion_threshold = fusion_threshold
        self.pseudo_min_ignore = pseudo_min_ignore
        self.max_pseudo = max_pseudo
        self.detach_pseudo_weights = detach_pseudo_weights
        unknown = set(loss_weights or {}) - set(LOSS_WEIGHTS)
        if unknown:
            raise ValueError(f'unknown loss_weights keys {sorted(unknown)}; valid: '
                             f'{list(LOSS_WEIGHTS)}')
        self.loss_weights = {**LOSS_WEIGHTS, **(loss_weights or {})}
        dim = backbone.embed_dim
        self.nel_logits = SigmoidLogits.for_classes(len(self.seen))
        self.synthesizer = PseudoWeightSynthesizer(dim, synthesizer_heads) if use_plm else None
        self.bce_logits = SigmoidLogits.for_classes(len(self.seen)) if use_plm else None
        self.bank = ClassTokenBank(queue_size if use_glm else 0, dim)
        self._seen_text = None
        self.teacher_dropped = False

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
            raise MissingCapability(f'{type(self.backbone).__name__}: no known image tower '
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
        for name, value in self.bank.state_dict().items():   # a checkpoint without the bank
            state_dict.setdefault(f'{prefix}bank.{name}', value)
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
    @staticmethod
    def _valid(valid_hw, b, H, W, device):
        """B,H,W bool: False on padding (``valid_hw`` B,2 unpadded sizes; None: no padding)."""
        if valid_hw is None:
            return torch.ones(b, H, W, dtype=torch.bool, device=device)
        hw = torch.as_tensor(valid_hw, device=device).long().view(b, 2)
        ys = torch.arange(H, device=device)[None, :, None] < hw[:, 0, None, None]
        xs = torch.arange(W, device=device)[None, None, :] < hw[:, 1, None, None]
        return ys & xs

    def forward_train(self, batch):
        images = batch['images']
        b, _, H, W = images.shape
        gt = torch.as_tensor(batch['gt_seg'], device=images.device).long()
        if gt.dim() == 4:
            gt = gt[:, 0]
        valid = self._valid(batch.get('valid_hw'), b, H, W, images.device)
        target = torch.where(valid, self.seen_lut[gt.clamp(0, 255)], IGNORE)  # seen index
        embeds, owner = self.seen_text()
        n_seen = len(self.seen)
        raw = self.encoder(images)                                    # B,D,h,w
        feats = F.normalize(raw, dim=1)
        h, w = feats.shape[-2:]
        out = {}

        if self.use_glm or self.use_plm:
            with torch.no_grad():
                t = self.backbone.forward_dense(images, last_block=self.teacher_last_block)
                cls_raw = t.cls.float()
                tokens = F.normalize(t.patch.float(), dim=-1)        # B,h',w',D
        cos = self._class_scores(feats, embeds, owner)                # B,S,h,w

        # the non-mutually-exclusive loss on the seen classes
        nel = F.interpolate(self.nel_logits(cos), size=(H, W), mode='bilinear',
                            align_corners=False)
        focal, dice = focal_dice_loss(nel, target, valid)
        out['loss_focal'] = self.loss_weights['focal'] * focal
        out['loss_dice'] = self.loss_weights['dice'] * dice

        # CE over the fused labels: seen labels, plus the PLM's pseudo classes
        logits, fused = cos, target
        if self.use_plm:
            plm = self._pixel_learning(feats, target, valid, tokens,
                                       F.normalize(cls_raw, dim=-1), embeds, owner)
            out.update(plm['logs'])
            out['loss_bce'] = self.loss_weights['bce'] * plm['bce']
            if plm['weights'] is not None:
                weights = plm['weights'].detach() if self.detach_pseudo_weights \
                    else plm['weights']
                pseudo = torch.einsum('bdhw,bqd->bqhw', feats, weights)
                pseudo = pseudo.masked_fill(~plm['present'][:, :, None, None], -1e4)
                logits = torch.cat([logits, pseudo], 1)
                fused = plm['fused']
        logits = F.interpolate(logits * self.logit_scale, size=(H, W), mode='bilinear',
                               align_corners=False)
        labelled = fused != IGNORE
        out['loss_ce'] = self.loss_weights['ce'] * (
            F.cross_entropy(logits, fused, ignore_index=IGNORE) if labelled.any()
            else logits.sum() * 0)
        with torch.no_grad():
            seen_px = target != IGNORE
            out['acc_seen'] = ((logits.argmax(1) == target) & seen_px).sum() \
                / seen_px.sum().clamp_min(1)

        if self.use_glm:
            if 'image_id' not in batch:
                raise KeyError('CLIPZSS with use_glm needs the image_id view: add '
                               "dict(type='PackImageInfo') to train_data.pipeline (after the "
                               'crop, before Pad)')
            ids = torch.as_tensor(batch['image_id'], device=images.device).long().view(b)
            out.update(self._global_learning(raw, cls_raw, ids))
        return out

    def _global_learning(self, raw, cls_raw, ids):
        """GLM: the teacher's class token pools the dense features (the paper's attention on
        the features as they leave the networks); InfoNCE of the pooled feature against the
        class tokens of the global batch and the memory bank, same-image keys masked."""
        f = raw.flatten(2).transpose(1, 2)                            # B,N,D
        attn = class_token_attention(cls_raw.to(f.dtype), f)
        pooled = F.normalize(torch.einsum('bn,bnd->bd', attn, f), dim=-1)
        cls = F.normalize(cls_raw, dim=-1)
        batch_keys, offset = gather_rows_no_grad(cls)
        batch_ids, _ = gather_rows_no_grad(ids)
        bank_keys, bank_ids = self.bank.contents()
        keys = torch.cat([batch_keys, bank_keys.to(cls.dtype)])
        key_ids = torch.cat([batch_ids, bank_ids])
        positive = offset + torch.arange(len(cls), device=cls.device)
        loss, logits = masked_info_nce(pooled, keys, key_ids, ids, positive,
                                       self.glm_temperature)
        with torch.no_grad():
            acc = (logits.argmax(1) == positive).float().mean()
            negatives = torch.isfinite(logits).sum(1).float().mean() - 1
            self.bank.push(batch_keys, batch_ids)
        return dict(loss_glm=self.loss_weights['glm'] * loss, glm_acc=acc,
                    glm_negatives=negatives)

    def _pixel_learning(self, feats, target, valid, tokens, cls, embeds, owner):
        """PLM: pseudo classes in the unannotated pixels, the fused label map, and the
        synthesizer's prototypes (seen ones aligned with their text by the sigmoid BCE)."""
        b, H, W = target.shape
        n_seen = len(self.seen)
        with torch.no_grad():
            regions = pseudo_regions(target, valid, tokens, self.seed_windows,
                                     self.fusion_threshold, self.pseudo_min_ignore,
                                     self.max_pseudo, self.kmeans_iters)      # B,h',w'
            up = F.interpolate(regions[:, None].float(), size=(H, W),
                               mode='nearest')[:, 0].long()
            open_ = (target == IGNORE) & valid & (up >= 0)
            fused = torch.where(open_, n_seen + up, target)
        q = int(regions.max()) + 1 if (regions >= 0).any() else 0
        per_image = sum(len(torch.unique(r[r >= 0])) for r in regions) / b
        logs = dict(pseudo_regions=torch.tensor(float(per_image)),
                    pseudo_pixels=open_.float().mean())
        # centroids of the encoder's features under every fused label, then the synthesizer
        frac = label_fractions(fused, n_seen + q, feats.shape[-2:])          # B,L,h,w
        present = frac.flatten(2).sum(-1) > 0                                 # B,L
        centroids = F.normalize(torch.einsum('blhw,bdhw->bld', frac, feats), dim=-1)
        protos = self.synthesizer(centroids, cls[:, None])                   # B,L,D
        seen_present = present[:, :n_seen]
        if seen_present.any():
            cos = self._class_scores(protos[:, :n_seen].transpose(1, 2)[..., None],
                                     embeds, owner)[..., 0]                   # B,S(class),S
            logit = self.bce_logits(cos.transpose(1, 2))                      # B,S(proto),S
            onehot = torch.eye(n_seen, device=logit.device).expand_as(logit)
            bce = F.binary_cross_entropy_with_logits(logit[seen_present], onehot[seen_present])
            logs['bce_acc'] = (logit[seen_present].argmax(-1) == seen_present.nonzero()[:, 1]
                               ).float().mean().detach()
        else:
            bce = protos.sum() * 0
        return dict(logs=logs, bce=bce, fused=fused, present=present[:, n_seen:],
                    weights=protos[:, n_seen:] if q else None)
