"""The trainer's own optimiser step on a method built for speed: the training model and the
optimiser wrapper come from :func:`ovseg_bench.engine.trainer.runner_kwargs`, the config the
trainer hands mmengine's Runner, so the timed step is the one ``ovseg-bench train`` takes:
the views normalised on the device, ``forward_train``, the loss terms summed, backward (under
bf16 autocast with ``precision='bf16'``, which the trainer supports on CUDA only), gradient
clipping and fused AdamW over the trainable parameter groups of the method's config
(learning rates, weight decay, ``frozen``, ``custom_keys``)."""
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS

from ...backbones.base import RANDOM_WEIGHTS, drop_log_records
from ...engine.trainer import runner_kwargs
from .inputs import backbone_cfg, method_settings


class TrainerStep:
    """``step(batch)`` takes one optimiser step of ``method`` on a random ``backbone``
    (built with ``seed``); ``step.head`` is the method head being trained."""

    def __init__(self, method, backbone, device, precision='fp32', seed=0):
        settings = method_settings(method, backbone)
        cfg = Config(dict(backbone=backbone_cfg(backbone), method=settings.method,
                          train_data={}, train={**settings.train, 'precision': precision},
                          work_dir=''))
        kwargs = runner_kwargs(cfg)
        torch.manual_seed(seed)
        with drop_log_records(RANDOM_WEIGHTS):      # random on purpose
            self.model = MODELS.build(kwargs['model']).to(device)
        self.optim_wrapper = build_optim_wrapper(self.model, kwargs['optim_wrapper'])
        self.model.train()
        self.head = self.model.head

    def __call__(self, batch):
        return self.model.train_step(dict(batch), self.optim_wrapper)
