"""The method side of the plugin contract (see ``docs/plugin_contract.md``)."""
from abc import ABCMeta, abstractmethod

from torch import nn


class MethodHead(nn.Module, metaclass=ABCMeta):
    """Base of every method plugin.

    A head owns its CLIP ``backbone`` (built from the shared config) and whatever modules the
    method adds. It never tokenizes class names, resizes to the original image, thresholds
    background or computes metrics: the protocol does (``ovseg_bench.segmentor``).

    Class attributes a plugin may override:
      ``trainable``  False for training-free methods (the benchmark only evaluates them)
      ``setting``    'open_vocab' (annotation-free) or 'zero_shot' (seen-class pixel labels)
      ``train_views`` names of the per-method views its training batch needs (e.g.
                     ``('crops',)``); the data pipeline config must provide them
    """
    trainable = True
    setting = 'open_vocab'
    train_views = ()

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

    def text_fingerprint(self):
        """Changes whenever ``encode_text`` would give other embeddings (text-cache key)."""
        return self.backbone.fingerprint()

    @abstractmethod
    def predict_dense(self, images, class_embeds):
        """B,K,h,w class logits (cosine similarities) for K L2-normalised class embeddings."""
