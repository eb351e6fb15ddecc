"""ViL-Seg (Liu et al., "Open-world Semantic Segmentation via Contrasting and Clustering
Vision-Language Embedding", ECCV 2022, arXiv 2207.08455)."""
import torch
import torch.nn.functional as F
from torch import nn

from ovseg_bench.head import MethodHead
from ovseg_bench.losses import info_nce
from ovseg_bench.registry import register_method


def mutual_information_loss(p, q, eps=1e-8):
    """Negative mutual information of paired soft cluster assignments (IIC).

    ``p``, ``q``: N,C probabilities of N paired samples (row i of ``p`` and of ``q`` are two
    views of the same patch). The joint distribution of the pair's clusters is estimated as
    ``P = p^T q / N``, symmetrised; the loss is ``-sum P log(P / (P_row P_col))``. Its minimum,
    ``-log C``, is reached when both views always agree and every cluster is used equally;
    it is 0 when the two assignments are independent (e.g. shuffled) or all in one cluster.
    """
    p, q = p.float(), q.float()
    joint = p.t() @ q / len(p)
    joint = ((joint + joint.t()) / 2).clamp_min(eps)
    joint = joint / joint.sum()
    row = joint.sum(1, keepdim=True)
    col = joint.sum(0, keepdim=True)
    return -(joint * (joint.log() - row.log() - col.log())).sum()


CLUSTER_AUGMENT = dict(jitter=(0.4, 0.4, 0.4, 0.1), jitter_p=0.8, grey_p=0.2, blur_p=0.5,
                       blur_sigma=(0.1, 2.0))


def photometric(images, mean, std, jitter=(0.4, 0.4, 0.4, 0.1), jitter_p=0.8, grey_p=0.2,
                blur_p=0.5, blur_sigma=(0.1, 2.0)):
    """SimCLR-style photometric augmentation of normalised images (B,3,H,W; ``mean``/``std``
    the normalisation on the 0..255 scale), each image with its own random draw: colour
    jitter (brightness, contrast, saturation factors in [1-s, 1+s], hue shift in [-h, h],
    in that order) with probability ``jitter_p``, greyscale with ``grey_p``, Gaussian blur
    (kernel ~1/10 of the side, sigma uniform in ``blur_sigma``) with ``blur_p``. Geometry is
    untouched, so pixel correspondences between views stay as the crop boxes say."""
    from torchvision.transforms.v2 import functional as TF
    mean = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(3, 1, 1) / 255
    std = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(3, 1, 1) / 255
    x = (images * std + mean).clamp(0, 1)
    b, _, h, w = x.shape
    kernel = max(3, int(0.1 * min(h, w)) // 2 * 2 + 1)
    u = torch.rand(b, 8)
    out = []
    for i in range(b):
        img = x[i]
        if u[i, 0] < jitter_p:
            br, co, sa, hu = jitter
            img = TF.adjust_brightness(img, 1 + br * (2 * float(u[i, 1]) - 1))
            img = TF.adjust_contrast(img, 1 + co * (2 * float(u[i, 2]) - 1))
            img = TF.adjust_saturation(img, 1 + sa * (2 * float(u[i, 3]) - 1))
            img = TF.adjust_hue(img, hu * (2 * float(u[i, 4]) - 1))
        if u[i, 5] < grey_p:
            img = TF.rgb_to_grayscale(img, num_output_channels=3)
        if u[i, 6] < blur_p:
            sigma = blur_sigma[0] + (blur_sigma[1] - blur_sigma[0]) * float(u[i, 7])
            img = TF.gaussian_blur(img, [kernel, kernel], [sigma, sigma])
        out.append(img)
    return (torch.stack(out) - mean) / std


def _mlp(dim_in, hidden, dim_out):
    return nn.Sequential(nn.Linear(dim_in, hidden), nn.GELU(), nn.Linear(hidden, dim_out))


@register_method(display_name='ViL-Seg',
                 train_views=('global_crops', 'local_crops', 'crop_boxes', 'crop_flips'),
                 config='vilseg/vilseg_tiny_synth.py')
class ViLSeg(MethodHead):
    """ViL-Seg: vision + cross-modal contrast, online clustering head; groups classified by text.

    The paper trains an image and a text encoder on image-caption pairs (CC12M) with two
    contrasts and adds an online clustering head, then segments by clustering:

    * **Vision-based contrast** (fine-grained semantics): every image gives global views and
      small local crops (multi-crop); the embedding of a local crop is pulled to the global
      embedding of its own image and pushed from those of the other images of the batch
      (InfoNCE, through a projection MLP), so that the embeddings of small regions keep the
      semantics of the objects they show.
    * **Cross-modal contrast** (high-level categories): CLIP's symmetric image-caption InfoNCE.
    * **Online clustering head**: an MLP with a softmax over ``num_clusters`` (the paper's
      C) on every dense visual embedding, trained without labels by maximising the mutual
      information between the cluster assignments of the same image location seen in two
      augmented views (IIC, Ji et al. 2019); the entropy term of the mutual information keeps
      every cluster in use, the conditional term makes the assignment view-invariant.
    * **Inference**: each patch goes to its most probable cluster; the mean embedding of
      every non-empty group of an image is compared with the class text embeddings (cosine)
      and the group's class scores are given to all its patches -> B,K,h,w logits.
    * Loss: the sum of the three, each weighted (``*_weight``; a weight of 0 switches that
      loss off and skips its computation).

    Choices where the paper leaves a detail open (or where this benchmark differs):

    * Initialisation: both encoders start from the shared CLIP backbone (the benchmark's
      rule; the paper trains from scratch) and are trained jointly with the heads (the
      backbone's learning rate is the trainer's ``backbone_lr_mult``).
    * Image embedding (``global_pool='cls'``): both contrasts use the class token, as CLIP
      pools. With the mean of the patch embeddings (``'mean'``) every patch of an image
      receives the same gradient towards its caption and its own image's global view, which
      makes the patches of an image alike and leaves the clustering fewer groups to find
      (docs/methods/vilseg.md).
    * Dense embeddings: the standard last block (``last_block='std'``), the plain encoder
      output the paper clusters; the backbone's other variants can be chosen.
    * Views: the global and local crops come from the data pipeline (``MultiCropViews``,
      ``ovseg_bench/data/views.py``) with their crop boxes and flips in image coordinates.
      The IIC pairs are the patches of the first global view and the same image point in the
      second global view (its assignment map bilinearly resampled there; points outside the
      overlap are dropped); if a batch carries a single global view, the pairs are each
      patch and its right/lower neighbour in that view (IIC's spatial-displacement pairs).
      The global views are also the image side of the cross-modal contrast (averaged over
      views); the vision contrast pairs every local crop with every global view. For the
      clustering, the second global view is also photometrically augmented
      (``cluster_augment``: colour jitter 0.4/0.4/0.4/0.1 with p 0.8, greyscale p 0.2, blur
      p 0.5, SimCLR's; None switches it off), so that the two views of a patch differ in
      colour as well as crop and a colour partition cannot satisfy the mutual information;
      the contrasts keep the clean views (the captions name colours). Resampling pads with
      the border value.
    * Clustering head input: L2-normalised patch embeddings (the cosine geometry the
      classification uses); the head's gradient also trains the encoder (``detach_cluster``
      stops it). Hidden width = the embedding width.
    * Temperatures: the cross-modal contrast uses the backbone's learned CLIP scale; the
      vision contrast a fixed ``vision_temperature`` (0.1, SimCLR's usual value).
    * Inference assignment is hard (argmax), as in the paper: one score vector per group.
    """
    def __init__(self, backbone, num_clusters=8, global_pool='cls', last_block='std',
                 proj_dim=128, proj_hidden=None, cluster_hidden=None, vision_temperature=0.1,
                 vision_weight=1.0, cross_weight=1.0, cluster_weight=1.0, detach_cluster=False,
                 cluster_augment=CLUSTER_AUGMENT):
        super().__init__(backbone)
        if global_pool not in ('mean', 'cls'):
            raise ValueError(f"global_pool must be 'mean' or 'cls', got {global_pool!r}")
        if last_block not in backbone.LAST_BLOCKS:
            raise ValueError(f'last_block must be one of {backbone.LAST_BLOCKS}, '
                             f'got {last_block!r}')
        if num_clusters < 2:
            raise ValueError(f'num_clusters must be >= 2, got {num_clusters}')
        dim = backbone.embed_dim
        self.num_clusters = num_clusters
        self.global_pool = global_pool
        self.last_block = last_block
        self.vision_temperature = vision_temperature
        self.vision_weight = vision_weight
        self.cross_weight = cross_weight
        self.cluster_weight = cluster_weight
        self.detach_cluster = detach_cluster
        self.cluster_augment = None if cluster_augment is None else {**CLUSTER_AUGMENT,
                                                                     **cluster_augment}
        self.vision_proj = _mlp(dim, proj_hidden or 2 * dim, proj_dim)
        self.cluster_head = _mlp(dim, cluster_hidden or dim, num_clusters)
        # the views this configuration trains on (a switched-off loss needs none of its own)
        self.train_views = (('global_crops',) + (('local_crops',) if vision_weight else ())
                            + (('crop_boxes', 'crop_flips') if cluster_weight else ()))

    # ------------------------------------------------------------------ embeddings
    def dense(self, images):
        """(B,h,w,D L2-normalised patch embeddings, B,D L2-normalised image embeddings)."""
        feats = self.backbone.forward_dense(images, last_block=self.last_block)
        patch = F.normalize(feats.patch, dim=-1)
        pooled = feats.patch.mean((1, 2)) if self.global_pool == 'mean' else feats.cls
        return patch, F.normalize(pooled, dim=-1)

    def cluster_logits(self, patch):
        """B,h,w,C cluster logits of L2-normalised patch embeddings (rescaled to unit
        variance per component, so that the head does not start at a uniform assignment,
        where the mutual information has no gradient)."""
        return self.cluster_head(patch * patch.shape[-1] ** 0.5)

    def cluster_probs(self, patch):
        """B,h,w,C soft assignments of L2-normalised patch embeddings."""
        return self.cluster_logits(patch).softmax(-1)

    # ------------------------------------------------------------------ training
    @staticmethod
    def _stack_views(views):
        """A view entry as B,N,3,H,W (a tensor, or a list of N tensors B,3,H,W)."""
        if torch.is_tensor(views):
            return views if views.dim() == 5 else views[:, None]
        return torch.stack(list(views), 1)

    def forward_train(self, batch):
        out = {}
        glob = self._stack_views(batch['global_crops'])            # B,G,3,H,W
        b, g = glob.shape[:2]
        patch, emb = self.dense(glob.flatten(0, 1))
        patch = patch.unflatten(0, (b, g))                         # B,G,h,w,D
        emb = emb.unflatten(0, (b, g))                             # B,G,D

        if self.cross_weight:
            tokens = self.backbone.tokenize(list(batch['captions'])).to(glob.device)
            text = F.normalize(self.backbone.encode_text(tokens), dim=-1)
            scale = self.backbone.logit_scale.clamp(max=100)
            loss = sum(info_nce(emb[:, i], text, scale, gather=False).loss
                       for i in range(g)) / g
            out['loss_cross'] = self.cross_weight * loss
            with torch.no_grad():
                sim = emb[:, 0] @ text.t()
                target = torch.arange(b, device=sim.device)
                out['acc_i2t'] = (sim.argmax(1) == target).float().mean()

        if self.vision_weight:
            local = self._stack_views(batch['local_crops'])        # B,L,3,h,w
            n_local = local.shape[1]
            _, local_emb = self.dense(local.flatten(0, 1))
            zl = F.normalize(self.vision_proj(local_emb), dim=-1).unflatten(0, (b, n_local))
            zg = F.normalize(self.vision_proj(emb.flatten(0, 1)), dim=-1).unflatten(0, (b, g))
            scale = 1.0 / self.vision_temperature
            loss = sum(info_nce(zg[:, i], zl[:, j], scale, gather=False).loss
                       for i in range(g) for j in range(n_local)) / (g * n_local)
            out['loss_vision'] = self.vision_weight * loss

        if self.cluster_weight:
            feats = patch
            if self.cluster_augment is not None and g >= 2:
                # the second view, photometrically augmented, for the clustering pairs only
                # (the contrasts keep the clean views: captions name the colours)
                aug = photometric(glob[:, 1], self.backbone.mean, self.backbone.std,
                                  **self.cluster_augment)
                feats = torch.cat([patch[:, :1], self.dense(aug)[0][:, None]], 1)
            feats = feats.detach() if self.detach_cluster else feats
            probs = self.cluster_probs(feats)                      # B,G,h,w,C
            p, q = self.cluster_pairs(probs, batch.get('crop_boxes'), batch.get('crop_flips'))
            out['loss_cluster'] = self.cluster_weight * mutual_information_loss(p, q)
            with torch.no_grad():
                used = probs.argmax(-1).flatten().bincount(minlength=self.num_clusters)
                out['clusters_used'] = (used > 0).sum().float()
                out['pair_agreement'] = (p.argmax(1) == q.argmax(1)).float().mean()
        return out

    def cluster_pairs(self, probs, boxes=None, flips=None):
        """Paired soft assignments (N,C each) of the same image points in two views.

        ``probs``: B,G,h,w,C. With two or more global views and their ``boxes`` (B,V,4
        x0,y0,x1,y1 in image pixels, global views first) and ``flips`` (B,V), patch centres
        of view 0 are mapped to view 1 and its assignments resampled there; otherwise each
        patch is paired with its right and lower neighbour in the same view.
        """
        b, g, h, w, c = probs.shape
        if g >= 2 and boxes is not None:
            boxes = torch.as_tensor(boxes, dtype=probs.dtype, device=probs.device)[:, :2]
            flips = (torch.zeros(b, 2, dtype=torch.bool, device=probs.device) if flips is None
                     else torch.as_tensor(flips, device=probs.device)[:, :2].bool())
            h1, w1 = probs.shape[2:4]
            # patch centres of view 0 as fractions of its crop, then image coordinates
            fy = (torch.arange(h, device=probs.device, dtype=probs.dtype) + 0.5) / h
            fx = (torch.arange(w, device=probs.device, dtype=probs.dtype) + 0.5) / w
            fx = fx.expand(b, w).clone()
            fx[flips[:, 0]] = 1 - fx[flips[:, 0]]
            b0, b1 = boxes[:, 0], boxes[:, 1]
            ys = b0[:, 1:2] + fy[None] * (b0[:, 3:4] - b0[:, 1:2])          # B,h
            xs = b0[:, 0:1] + fx * (b0[:, 2:3] - b0[:, 0:1])                # B,w
            # the same points as fractions of view 1's crop (flipped if it is)
            v = (ys - b1[:, 1:2]) / (b1[:, 3:4] - b1[:, 1:2])
            u = (xs - b1[:, 0:1]) / (b1[:, 2:3] - b1[:, 0:1])
            u = torch.where(flips[:, 1:2], 1 - u, u)
            grid = torch.stack(torch.broadcast_tensors(u[:, None, :], v[:, :, None]), -1)
            inside = ((grid >= 0) & (grid <= 1)).all(-1)                     # B,h,w
            sampled = F.grid_sample(probs[:, 1].permute(0, 3, 1, 2), grid * 2 - 1,
                                    mode='bilinear', padding_mode='border',
                                    align_corners=False)                     # B,C,h,w
            p = probs[:, 0][inside]
            q = sampled.permute(0, 2, 3, 1)[inside]
            if len(p) >= 1:
                return p, q
        # spatial-displacement pairs within each view
        right = (probs[:, :, :, :-1].reshape(-1, c), probs[:, :, :, 1:].reshape(-1, c))
        down = (probs[:, :, :-1].reshape(-1, c), probs[:, :, 1:].reshape(-1, c))
        return torch.cat([right[0], down[0]]), torch.cat([right[1], down[1]])

    # ------------------------------------------------------------------ inference
    def predict_dense(self, images, class_embeds):
        patch, _ = self.dense(images)                                  # B,h,w,D
        b, h, w, d = patch.shape
        assign = self.cluster_logits(patch).argmax(-1).flatten(1)         # B,hw
        onehot = F.one_hot(assign, self.num_clusters).to(patch.dtype)  # B,hw,C
        sums = onehot.transpose(1, 2) @ patch.flatten(1, 2)             # B,C,D
        centres = F.normalize(sums, dim=-1)                             # empty groups: 0
        scores = centres @ class_embeds.t().to(patch.dtype)             # B,C,K
        logits = torch.gather(scores, 1, assign[..., None].expand(-1, -1, scores.shape[-1]))
        return logits.transpose(1, 2).reshape(b, -1, h, w)
