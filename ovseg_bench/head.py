"""The method side of the plugin contract (see ``docs/plugin_contract.md``)."""
from abc import ABCMeta, abstractmethod

import torch.nn.functional as F
from torch import nn


class MethodHead(nn.Module, metaclass=ABCMeta):
    """Base of every method plugin.

    A head owns its CLIP ``backbone`` (built from the shared config) and whatever modules the
    method adds. It never tokenizes class names, resizes to the original image, thresholds
    background or computes metrics: the protocol does (``ovseg_bench.segmentor``).

    A method is registered with :func:`ovseg_bench.registry.register_method`, which records
    its :class:`~ovseg_bench.registry.MethodInfo` (display name, setting, trainable, training
    views, default config) and sets the three class attributes below from it; a head built with
    options that need fewer views narrows ``self.train_views`` in its ``__init__``.

    ``classes``: the names of the training label space of a method trained on pixel labels
    (the zero-shot setting), in label order; empty for the others.
    """
    trainable = True
    setting = 'open_vocab'
    train_views = ()
    classes = ()

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def forward_train(self, batch):
        """Dict of tensors; every key containing ``loss`` is summed, the others are logged.

        ``batch`` holds ``images`` (B,3,H,W normalised) and ``captions`` (list of str) for
        image-text data, plus the views the method asked for.
        """
        raise RuntimeError(f'{type(self).__name__} is training-free: it has no forward_train')

    def encode_text(self, tokens):
        """Class/caption embeddings in the space ``predict_dense`` compares with.

        Defaults to the backbone's text encoder; a method with its own text embedder overrides.
        """
        return self.backbone.encode_text(tokens)

    def encode_image(self, images):
        """B,D image embeddings in the text space (not normalised), for zero-shot image
        classification. Defaults to the backbone's (CLIP's class token)."""
        return self.backbone.encode_image(images)

    def classify(self, images, class_embeds):
        """B,K zero-shot image classification logits for K L2-normalised class embeddings:
        cosine similarity of :meth:`encode_image` by default; a method with its own image-level
        score (PACL's patch-weighted pooling) overrides."""
        return F.normalize(self.encode_image(images).float(), dim=-1) @ class_embeds.t()

    def text_fingerprint(self):
        """Changes whenever ``encode_text`` would give other embeddings (text-cache key)."""
        return self.backbone.fingerprint()

    @abstractmethod
    def predict_dense(self, images, class_embeds):
        """B,K,h,w class logits (cosine similarities) for K L2-normalised class embeddings."""
