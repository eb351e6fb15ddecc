"""One evaluation model around any method head: the protocol (``protocol.py``) is applied
here, not in methods.

``OVSegmentor`` owns the text side (templates, vocabulary, synonyms merged by max), dense
inference (whole or slide), resizing to the original image, the background policy and the
final argmax. The head only turns images into B,K,h,w logits.
"""
import os

import torch
import torch.nn.functional as F
from mmengine.model import BaseDataPreprocessor, BaseModel
from mmengine.structures import PixelData

from .inference import dense_inference, precision_context
from .normalise import Normalise
from .pamr import pamr
from .protocol import Protocol
from .text import class_embeddings, merge_synonyms


def drop_small_classes(probs, threshold, first=1):
    """Zero the probabilities of classes ``first..`` whose argmax area is at most
    ``threshold`` of the pixels predicted as any of them (background, class 0 when
    ``first=1``, is never dropped), so those pixels go to the next best class."""
    area = torch.bincount(probs.argmax(0).flatten(), minlength=probs.shape[0]).float()
    area[:first] = 0
    small = area <= threshold * area.sum()
    small[:first] = False
    return probs.masked_fill(small[:, None, None], 0.0)


def group_score_background(scores, threshold):
    """GroupViT's background, on one batch of windows' B,K,h,w scores (class 0 the
    background, with no text): 1 where a pixel's best class score is below
    ``min(threshold, the window's best score)``, else 0."""
    best = scores[:, 1:].amax(1)                                         # B,h,w
    cap = best.flatten(1).amax(1).clamp(max=threshold)[:, None, None]
    scores = scores.clone()
    scores[:, 0] = (best < cap).to(scores.dtype)
    return scores


class OVSegDataPreprocessor(BaseDataPreprocessor):
    """uint8 BGR CHW images (mmcv's loading) -> normalised RGB float, stacked when same-sized."""

    def __init__(self, mean, std):
        super().__init__()
        self.normalise = Normalise(mean, std)

    def forward(self, data, training=False):
        data = self.cast_data(data)
        images = [self.normalise(img[[2, 1, 0]]) for img in data['inputs']]
        if len({tuple(i.shape) for i in images}) == 1:
            images = torch.stack(images)
        return dict(inputs=images, data_samples=data.get('data_samples'))


class OVSegmentor(BaseModel):
    """Evaluates any registered method head under the configured protocol."""

    def __init__(self, head, vocabulary, has_background, protocol=None):
        backbone = head.backbone
        super().__init__(data_preprocessor=OVSegDataPreprocessor(backbone.mean, backbone.std))
        self.head = head
        self.vocabulary = vocabulary
        self.has_background = has_background
        self.protocol = Protocol.from_dict(protocol)
        self._embeds = None

    @property
    def num_classes(self):
        return len(self.vocabulary)

    def class_embeds(self):
        if self._embeds is None:
            cache = self.protocol.text_cache
            embeds, owner = class_embeddings(
                self.head, self.vocabulary, self.protocol.templates,
                cache_dir=cache and os.path.expanduser(cache))
            device = next(self.head.parameters()).device
            self._embeds = embeds.to(device), owner.to(device)
        return self._embeds

    @property
    def merge_late(self):
        """True when synonyms are merged after the softmax over names (``prob_max``)."""
        return self.protocol.synonym_merge == 'prob_max'

    def dense_logits(self, images):
        """B,N,H,W logits at the input resolution: per class (synonyms merged by max in
        each window, ``logit_max``) or per name (``prob_max``, merged in
        :meth:`to_prediction`)."""
        embeds, owner = self.class_embeds()
        p = self.protocol

        def dense_fn(x):
            logits = self.head.predict_dense(x, embeds)
            if self.merge_late:
                return logits
            out = merge_synonyms(logits, owner, self.num_classes)
            if p.bg_rule == 'group_score' and self.has_background:
                out = group_score_background(out, p.bg_threshold)
            return out

        with precision_context(p.precision, images.device.type):
            return dense_inference(dense_fn, images, p.mode, p.crop, p.stride,
                                   multiple=p.pad_multiple or self.head.backbone.patch_size,
                                   window_batch=p.window_batch,
                                   batched=p.batched_windows, pad=p.window_pad)

    def to_prediction(self, logits, ori_shape, image=None):
        """N,H,W logits -> H0,W0 labels: resize to the original image, PAMR, softmax at
        ``logit_scale`` (over classes, or over names then max per class), area rule,
        background threshold. ``image`` (3,H,W, normalised) is what PAMR reads."""
        p = self.protocol
        logits = F.interpolate(logits[None], size=ori_shape, mode='bilinear',
                               align_corners=False)
        if p.postprocess == 'pamr':
            image = F.interpolate(image[None].float(), size=ori_shape, mode='bilinear',
                                  align_corners=False)
            logits = pamr(image, logits, p.pamr_steps, tuple(p.pamr_dilations))
        if p.bg_rule == 'group_score':
            return logits[0].argmax(0)    # background already decided per window
        probs = (logits[0] * p.logit_scale).softmax(0)
        if self.merge_late:
            owner = self.class_embeds()[1]
            probs = merge_synonyms(probs[None], owner, self.num_classes, fill=0.0)[0]
        if p.area_threshold > 0:
            probs = drop_small_classes(probs, p.area_threshold,
                                       first=1 if self.has_background else 0)
        conf, pred = probs.max(0)
        if self.has_background and p.bg_threshold > 0:
            pred[conf < p.bg_threshold] = 0
        return pred

    @torch.no_grad()
    def predict(self, inputs, data_samples):
        batches = [inputs] if torch.is_tensor(inputs) else [i[None] for i in inputs]
        logits = [lg for b in batches for lg in self.dense_logits(b)]
        images = [im for b in batches for im in b]
        for sample, lg, image in zip(data_samples, logits, images):
            pred = self.to_prediction(lg, sample.ori_shape, image)
            sample.pred_sem_seg = PixelData(data=pred[None])
        return data_samples

    def forward(self, inputs, data_samples=None, mode='predict'):
        if mode != 'predict':
            raise ValueError(f'OVSegmentor only predicts (mode={mode!r}); train with the trainer')
        return self.predict(inputs, data_samples)
