"""The model mmengine trains: a method head on its backbone, with the data preprocessor that
normalises the batch's image views."""
import torch
from mmengine.model import BaseDataPreprocessor, BaseModel
from mmengine.registry import MODELS

from ...data.image_text import META_KEYS
from ...normalise import Normalise
from ...registry import BACKBONES, METHODS, build, load_plugins
from .optim import freeze


class ViewNormalizer(BaseDataPreprocessor):
    """Moves a batch to the device and normalises its image tensors with the backbone's
    mean/std (0-255 scale): ``images`` and each listed view that is a batch of 3-channel
    images (``...,3,H,W`` with a batch dimension; e.g. ``global_crops`` B,G,3,H,W). Views
    such as ``gt_seg`` or ``superpixels`` pass unchanged; bookkeeping keys are dropped."""

    def __init__(self, mean, std, image_keys=('images',)):
        super().__init__()
        self.normalise = Normalise(mean, std)
        self.image_keys = tuple(dict.fromkeys(image_keys))

    def _normalise(self, x):
        if torch.is_tensor(x) and x.dim() >= 4 and x.shape[-3] == 3:
            return self.normalise(x)
        if isinstance(x, (list, tuple)) and x and all(torch.is_tensor(v) for v in x):
            return [self._normalise(v[None])[0] if v.dim() == 3 else self._normalise(v)
                    for v in x]
        return x

    def forward(self, data, training=False):
        data = {k: v for k, v in data.items() if k not in META_KEYS}
        data = self.cast_data(data)
        for key in self.image_keys:
            if key in data:
                data[key] = self._normalise(data[key])
        return data


@MODELS.register_module(name='OVSegTrainModel')
class TrainModel(BaseModel):
    """A method head on its backbone, as mmengine trains it.

    ``frozen``: name parts of parameters not to train (:func:`freeze`).
    ``forward(mode='loss')`` is the head's ``forward_train``; mmengine's ``parse_losses``
    sums the terms whose name contains ``loss`` and logs every term. ``loss_guard`` (set by
    :class:`NonFiniteLossHook`) sees the parsed losses before the backward pass.
    """

    def __init__(self, backbone, method, frozen=()):
        load_plugins()
        bb = build(BACKBONES, backbone)
        head = build(METHODS, method, backbone=bb)
        freeze(head, frozen)      # before any DDP wrapper sees the parameters
        if not getattr(head, 'trainable', True):
            raise ValueError(f'{type(head).__name__} is training-free: it has nothing to train '
                             f'(evaluate it with `ovseg-bench test`)')
        views = ('images',) + tuple(head.train_views)
        super().__init__(data_preprocessor=ViewNormalizer(bb.mean, bb.std, views))
        self.head = head
        self.loss_guard = None

    def forward(self, mode='loss', **batch):
        if mode != 'loss':
            raise ValueError(f"the training model only computes losses (mode='loss'), got "
                             f'{mode!r}; evaluation goes through ovseg_bench.segmentor')
        out = self.head.forward_train(batch)
        if not isinstance(out, dict):
            raise TypeError(f'{type(self.head).__name__}.forward_train must return a dict, '
                            f'got {type(out).__name__}')
        return {k: v if torch.is_tensor(v) or isinstance(v, (list, tuple))
                else torch.tensor(float(v)) for k, v in out.items()}

    def parse_losses(self, losses):
        if not any('loss' in k for k in losses):
            raise ValueError(f'{type(self.head).__name__}.forward_train returned no loss term '
                             f'(keys containing "loss"): {sorted(losses)}')
        total, log_vars = super().parse_losses(losses)
        if self.loss_guard is not None:
            self.loss_guard(losses, total)
        return total, log_vars
