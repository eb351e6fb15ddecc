"""The common trainer: any method head, one small config, mmengine's ``Runner`` underneath.

A training config has five keys (all checked: an unknown key fails before anything runs,
naming the nearest valid one)::

    backbone   = dict(type='OpenCLIPBackbone', model='ovseg-tiny', pretrained=None)
    method     = dict(type='CLIP')
    train_data = dict(type='CocoCaptionDataset', data_root='data/synth/coco',
                      ann_file='annotations/captions_train2017.json', img_dir='train2017',
                      pipeline=[dict(type='RandomResizedCropRGB', size=64),
                                dict(type='ToTensorRGB')])
    train      = dict(iters=1000, batch_size=64, lr=5e-4, ...)   # see TRAIN_DEFAULTS
    work_dir   = 'work_dirs/<config name>'
    zeroshot   = dict(ann_file=..., img_dir=...)   # optional, run at the end

:func:`train` turns it into Runner arguments: AdamW over the trainable parameters only (the
backbone's at ``lr * backbone_lr_mult``; parameters whose name contains a key of
``custom_keys`` at that key's ``lr_mult`` / ``decay_mult``; those matching ``frozen`` not
trained at all; 1-d tensors -- biases, norms, the temperature -- without weight decay),
linear warm-up then cosine to 0, gradient clipping, bf16 autocast when CUDA is available
(``precision``), an iteration-based loop, checkpoints every ``checkpoint_interval`` and at
the end, text and JSON logs with every loss term, a NaN/inf guard, and at the end
``work_dir/backbone.pt`` + ``work_dir/head.pt``. Data order and augmentation are functions of
(seed, sample number) alone, so a run is reproducible and a resumed run continues exactly.
"""
import copy
import itertools
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from mmengine.dataset.sampler import Sampler
from mmengine.dist import get_dist_info, sync_random_seed
from mmengine.model import BaseDataPreprocessor, BaseModel, is_model_wrapper
from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler
from mmengine.registry import (DATA_SAMPLERS, LOOPS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS,
                               OPTIM_WRAPPERS, OPTIMIZERS, PARAM_SCHEDULERS)
from mmengine.runner import IterBasedTrainLoop
from mmengine.runner.loops import _InfiniteDataloaderIterator
from mmseg.registry import DATASETS, TRANSFORMS

from .. import config as C
from ..checkpoint import load as load_checkpoint, trusted_types
from ..console import ConsoleRunner
from ..data import image_text
from ..registry import BACKBONES, METHODS, build, load_plugins
from . import hooks as H

# Every key of ``train``, with its default.
TRAIN_DEFAULTS = dict(
    iters=1000,             # optimiser steps
    batch_size=32,          # per process (the global batch is batch_size x processes)
    num_workers=2,          # dataloader workers per process
    lr=5e-4,                # AdamW learning rate of the head's own parameters
    weight_decay=0.1,       # decoupled; never on 1-d tensors (biases, norms, temperature)
    betas=(0.9, 0.98),
    eps=1e-6,
    warmup_iters=100,       # linear warm-up (lr/warmup_iters .. lr), then cosine to 0
    backbone_lr_mult=0.1,   # the backbone's trainable parameters learn at lr * this
    custom_keys=None,       # {name part: dict(lr_mult=, decay_mult=)}: parameters whose name
                            # (in the head, e.g. 'backbone.model.visual.ln_post.') contains the
                            # key learn at lr * lr_mult with weight decay * decay_mult (the
                            # longest matching key wins; overrides backbone_lr_mult)
    frozen=(),              # name parts: parameters whose name contains one are not trained
    grad_clip=1.0,          # max global gradient norm; None switches clipping off
    seed=0,                 # model init, data order and augmentations
    log_interval=50,        # iterations between log lines (losses averaged over them)
    checkpoint_interval=500,
    max_keep_ckpts=3,       # older periodic checkpoints are deleted; -1 keeps all
    precision='auto',       # 'fp32', or 'bf16' (autocast, CUDA); 'auto': bf16 on CUDA
    cpu_threads=None,       # torch CPU threads per process (None: torch's default); 1 avoids
                            # thread thrashing when several jobs share a few cores
)

_RUN_IDS = itertools.count()


# ------------------------------------------------------------------------- the model
class ViewNormalizer(BaseDataPreprocessor):
    """Moves a batch to the device and normalises its image tensors with the backbone's
    mean/std (0-255 scale): ``images`` and each listed view that is a batch of 3-channel
    images (``...,3,H,W`` with a batch dimension; e.g. ``global_crops`` B,G,3,H,W). Views
    such as ``gt_seg`` or ``superpixels`` pass unchanged; bookkeeping keys are dropped."""

    def __init__(self, mean, std, image_keys=('images',)):
        super().__init__()
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(3, 1, 1),
                             persistent=False)
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(3, 1, 1),
                             persistent=False)
        self.image_keys = tuple(dict.fromkeys(image_keys))

    def _normalise(self, x):
        if torch.is_tensor(x) and x.dim() >= 4 and x.shape[-3] == 3:
            return (x.float() - self.mean) / self.std
        if isinstance(x, (list, tuple)) and x and all(torch.is_tensor(v) for v in x):
            return [self._normalise(v[None])[0] if v.dim() == 3 else self._normalise(v)
                    for v in x]
        return x

    def forward(self, data, training=False):
        data = {k: v for k, v in data.items() if k not in image_text.META_KEYS}
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


# --------------------------------------------------------------------- the optimiser
def _matching(names, patterns, what):
    """``{pattern: [names containing it]}``; ``ValueError`` for a pattern matching none (a
    typo would otherwise silently train what it meant to rule)."""
    found = {p: [n for n in names if p in n] for p in patterns}
    empty = [p for p, hit in found.items() if not hit]
    if empty:
        raise ValueError(f'train.{what}: {empty} match no parameter name of the head (names '
                         f'look like {names[0]!r}, ..., {names[-1]!r}); give a part of a name')
    return found


def freeze(head, patterns):
    """``requires_grad_(False)`` on every parameter of ``head`` whose name contains one of
    ``patterns`` (``train.frozen``); returns the frozen names."""
    named = dict(head.named_parameters())
    hits = _matching(list(named), tuple(patterns), 'frozen')
    names = sorted({n for hit in hits.values() for n in hit})
    for n in names:
        named[n].requires_grad_(False)
    return names


def param_groups(head, lr, weight_decay, backbone_lr_mult=1.0, custom_keys=None):
    """AdamW parameter groups of ``head``: only parameters that require grad; backbone ones
    (``head.backbone``) at ``lr * backbone_lr_mult``; a parameter whose name contains a key
    of ``custom_keys`` (mmengine's ``paramwise_cfg`` rule: the longest matching key wins) at
    ``lr * lr_mult`` and ``weight_decay * decay_mult`` of that key instead; 1-d tensors
    without weight decay. Each group carries a ``name`` (head/backbone or the custom key,
    then decay/no_decay)."""
    custom_keys = dict(custom_keys or {})
    named = [(n, p) for n, p in head.named_parameters()]
    _matching([n for n, _ in named], custom_keys, 'custom_keys')
    for key, rule in custom_keys.items():
        unknown = set(rule) - {'lr_mult', 'decay_mult'}
        if unknown:
            raise ValueError(f'train.custom_keys[{key!r}]: unknown {sorted(unknown)}; valid: '
                             f'lr_mult, decay_mult')
    keys = sorted(custom_keys, key=lambda k: (-len(k), k))
    groups = {}
    for name, p in named:
        if not p.requires_grad:
            continue
        decay = 'decay' if p.ndim >= 2 else 'no_decay'
        key = next((k for k in keys if k in name), None)
        if key is not None:
            part, lr_mult = key, custom_keys[key].get('lr_mult', 1.0)
            wd = weight_decay * custom_keys[key].get('decay_mult', 1.0)
        elif name.startswith('backbone.'):
            part, lr_mult, wd = 'backbone', backbone_lr_mult, weight_decay
        else:
            part, lr_mult, wd = 'head', 1.0, weight_decay
        if (part, decay) not in groups:
            groups[part, decay] = dict(name=f"{part.rstrip('.')}.{decay}", params=[],
                                       lr=lr * lr_mult,
                                       weight_decay=wd if decay == 'decay' else 0.0)
        groups[part, decay]['params'].append(p)
    order = [(part, d) for part in ('head', 'backbone', *sorted(custom_keys))
             for d in ('decay', 'no_decay')]
    return [groups[k] for k in order if k in groups]


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class OVSegOptimConstructor:
    """Builds the optimiser over :func:`param_groups` (``paramwise_cfg`` holds
    ``backbone_lr_mult`` and ``custom_keys``), then the optimiser wrapper."""

    def __init__(self, optim_wrapper_cfg, paramwise_cfg=None):
        self.optim_wrapper_cfg = copy.deepcopy(dict(optim_wrapper_cfg))
        self.paramwise_cfg = dict(paramwise_cfg or {})

    def __call__(self, model):
        model = model.module if is_model_wrapper(model) else model
        wrapper_cfg = copy.deepcopy(self.optim_wrapper_cfg)
        optim_cfg = wrapper_cfg.pop('optimizer')
        groups = param_groups(model.head, optim_cfg['lr'], optim_cfg.get('weight_decay', 0.0),
                              self.paramwise_cfg.get('backbone_lr_mult', 1.0),
                              self.paramwise_cfg.get('custom_keys'))
        if not groups:
            raise ValueError(f'{type(model.head).__name__} has no parameter that requires grad: '
                             f'nothing to train')
        optimizer = OPTIMIZERS.build(dict(optim_cfg, params=groups))
        wrapper_cfg.setdefault('type', 'OptimWrapper')
        return OPTIM_WRAPPERS.build(wrapper_cfg, default_args=dict(optimizer=optimizer))


class WarmupCosineParamScheduler(_ParamScheduler):
    """Closed-form warm-up + cosine: at step t (0-based) the value is ``base * f(t)`` with
    ``f(t) = (t + 1) / warmup`` for ``t < warmup`` (reaching the base value exactly at the
    last warm-up step) and ``f(t) = (1 + cos(pi * (t - warmup) / (total - warmup))) / 2``
    after (cosine from the base value to ~0 at the last step)."""

    def __init__(self, optimizer, param_name, warmup_iters, total_iters, begin=0, end=INF,
                 last_step=-1, by_epoch=False, verbose=False):
        self.warmup_iters, self.total_iters = int(warmup_iters), int(total_iters)
        super().__init__(optimizer, param_name, begin=begin, end=end, last_step=last_step,
                         by_epoch=by_epoch, verbose=verbose)

    def factor(self, t):
        if t < self.warmup_iters:
            return (t + 1) / self.warmup_iters
        span = max(1, self.total_iters - self.warmup_iters)
        return 0.5 * (1 + math.cos(math.pi * min(t - self.warmup_iters, span) / span))

    def _get_value(self):
        f = self.factor(self.last_step)
        return [base * f for base in self.base_values]


@PARAM_SCHEDULERS.register_module()
class WarmupCosineLR(LRSchedulerMixin, WarmupCosineParamScheduler):
    """Learning rate: linear warm-up then cosine to 0 (:class:`WarmupCosineParamScheduler`)."""


# ---------------------------------------------------------------- data order and loop
@DATA_SAMPLERS.register_module()
class DrawSampler(Sampler):
    """Endless sampler yielding ``(index, draw)``: ``draw`` numbers the samples of the whole
    run over all ranks (rank r takes draws r, r + world, ...); epoch ``e`` of the data is a
    permutation seeded by (seed, e). With :class:`SeededDraws` every sample -- which image,
    which caption, which crop -- is a function of (seed, draw) alone, whatever the number of
    workers, and resuming at iteration i is ``set_start(i * batch_size)`` with nothing to
    replay."""

    def __init__(self, dataset, seed=None, shuffle=True):
        self.rank, self.world_size = get_dist_info()
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.size = len(dataset)
        self.shuffle = shuffle
        self.start = 0
        self._perm = (None, None)

    def set_start(self, start):
        """Begin at this rank's sample number ``start`` (``iteration * batch_size``)."""
        self.start = int(start)

    def _permutation(self, epoch):
        if self._perm[0] != epoch:
            if self.shuffle:
                s = int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0])
                perm = torch.randperm(self.size, generator=torch.Generator().manual_seed(s))
            else:
                perm = torch.arange(self.size)
            self._perm = (epoch, perm.tolist())
        return self._perm[1]

    def __iter__(self):
        for local in itertools.count(self.start):
            draw = local * self.world_size + self.rank
            epoch, pos = divmod(draw, self.size)
            yield self._permutation(epoch)[pos], draw

    def __len__(self):
        return self.size


class _ForkedRNG:
    """Seeds python's, numpy's and torch's global generators for one sample and restores
    them after, so the (mmcv/mmseg/own) transforms' randomness is a function of the seed."""

    def __init__(self, seed):
        self.seed = seed

    def __enter__(self):
        import random
        self.states = (random.getstate(), np.random.get_state(), torch.get_rng_state())
        random.seed(self.seed)
        np.random.seed(self.seed)
        # The CPU generator only (what transforms draw from): torch.manual_seed also queues
        # a lazy seeding of every accelerator, with a captured stack trace each time, which
        # was half of a data worker's time.
        torch.default_generator.manual_seed(self.seed)

    def __exit__(self, *exc):
        import random
        random.setstate(self.states[0])
        np.random.set_state(self.states[1])
        torch.set_rng_state(self.states[2])


@DATASETS.register_module()
class SeededDraws(torch.utils.data.Dataset):
    """Wraps any dataset: item ``(index, draw)`` is ``dataset[index]`` with the random
    generators seeded by (seed, draw) (see :class:`DrawSampler`)."""

    def __init__(self, dataset, seed=0):
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()
        self.seed = int(seed)

    @property
    def metainfo(self):
        return getattr(self.dataset, 'metainfo', {})

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, item):
        index, draw = item if isinstance(item, tuple) else (item, item)
        s = int(np.random.SeedSequence([self.seed, int(draw)]).generate_state(1)[0])
        with _ForkedRNG(s):
            return self.dataset[index]


@LOOPS.register_module()
class OVSegIterLoop(IterBasedTrainLoop):
    """``IterBasedTrainLoop`` that resumes by moving the sampler to the first sample not
    trained on (mmengine's loop replays the data loading of every finished iteration)."""

    def run(self):
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        if self._iter > 0:
            sampler = getattr(self.dataloader, 'sampler', None)
            if isinstance(sampler, DrawSampler):
                sampler.set_start(self._iter * self.dataloader.batch_size)
                self.dataloader_iterator = _InfiniteDataloaderIterator(self.dataloader)
                self.runner.logger.info(f'resumed at iteration {self._iter}: the data goes on '
                                        f'at sample {sampler.start} of this rank')
            else:
                for _ in range(self._iter):
                    next(self.dataloader_iterator)
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            self.run_iter(next(self.dataloader_iterator))
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model


class OVSegRunner(ConsoleRunner):
    """mmengine's Runner with a DDP wrapper that also works on CPU (no device ids, gloo) and
    tolerates trainable parameters a head leaves unused in some iterations."""

    def wrap_model(self, model_wrapper_cfg, model):
        if model_wrapper_cfg is None and self.distributed:
            model_wrapper_cfg = dict(type='MMDistributedDataParallel', broadcast_buffers=False,
                                     find_unused_parameters=True)
            if not torch.cuda.is_available():
                model_wrapper_cfg['device_ids'] = None
        return super().wrap_model(model_wrapper_cfg, model)

    def save_checkpoint(self, out_dir, filename, *args, **kwargs):
        """mmengine's checkpoint, written atomically: to a temporary file, flushed to disk,
        then renamed, so a kill mid-write never leaves a partial ``iter_N.pth``."""
        tmp = f'.{filename}.tmp'
        super().save_checkpoint(out_dir, tmp, *args, **kwargs)
        tmp, path = Path(out_dir) / tmp, Path(out_dir) / filename
        if tmp.is_file():                  # written by this (the main) process
            H.replace_durably(tmp, path)

    def load_or_resume(self):
        """Resume from the newest whole checkpoint (a damaged latest one is reported and the
        one before it used), reading it with ``weights_only`` (``ovseg_bench.checkpoint``)."""
        if self._resume and self._load_from is None and not self._has_loaded:
            self._load_from = resumable_checkpoint(self.work_dir, self.logger)
            self._resume = self._load_from is not None
        with torch.serialization.safe_globals(trusted_types()):
            return super().load_or_resume()


def resumable_checkpoint(work_dir, logger=None):
    """The newest readable checkpoint of ``work_dir`` (the one ``last_checkpoint`` names,
    then ``iter_N.pth`` newest first), or None. Each damaged one is skipped with a message."""
    work_dir = Path(work_dir)
    found = sorted(work_dir.glob('iter_*.pth'),
                   key=lambda p: int(p.stem[5:]) if p.stem[5:].isdigit() else -1, reverse=True)
    last = work_dir / 'last_checkpoint'
    if last.is_file():
        named = Path(last.read_text().strip())
        found = [named] + [p for p in found if p.name != named.name]
    for path in found:
        try:
            load_checkpoint(path, 'training checkpoint', mmap=True)
            return str(path)
        except (ValueError, FileNotFoundError) as err:
            msg = f'not resuming from {path}: {err}; trying the previous checkpoint'
            (logger or logging.getLogger(__name__)).warning(msg)
    return None


# --------------------------------------------------------------------- config checks
ZEROSHOT_PROVIDED = ('head',)


def check_train_config(cfg):
    """Every key of a training config, checked before anything is built (``KeyError`` with
    the nearest valid key), plus the required ones present."""
    load_plugins()
    C.check_keys(cfg, C.TOP_LEVEL_KEYS, '')
    for key in ('backbone', 'method', 'train_data'):
        if key not in cfg:
            raise KeyError(f'the training config has no {key!r} (see '
                           f'ovseg_bench.engine.trainer for the schema)')
    C.check_keys(cfg.get('train') or {}, TRAIN_DEFAULTS, 'train')
    C.check_types(cfg.get('train') or {}, TRAIN_DEFAULTS, 'train')
    C.check_typed(BACKBONES, cfg['backbone'], 'backbone')
    C.check_typed(METHODS, cfg['method'], 'method', provided=('backbone',))
    data = cfg['train_data']
    C.check_typed(DATASETS, data, 'train_data')
    for i, t in enumerate(data.get('pipeline') or ()):
        C.check_typed(TRANSFORMS, t, f'train_data.pipeline[{i}]')
    if cfg.get('zeroshot') is not None:
        from .zeroshot import zero_shot_classification
        zs = cfg['zeroshot']
        C.check_kwargs(zero_shot_classification, zs, 'zeroshot', provided=ZEROSHOT_PROVIDED)
        for key in ('ann_file', 'img_dir'):
            if key not in zs:
                raise KeyError(f'zeroshot needs {key!r}')
        if not Path(zs['ann_file']).is_file():
            raise FileNotFoundError(f"zeroshot.ann_file not found: {zs['ann_file']}")


def check_views(dataset, head):
    """``ValueError`` naming what is missing when a sample of ``dataset`` (through its
    pipeline) lacks ``images`` or one of the head's ``train_views``."""
    item = dataset[(0, 0)] if isinstance(dataset, SeededDraws) else dataset[0]
    if not isinstance(item, dict):
        raise ValueError(f'training items must be dicts (end the pipeline with ToTensorRGB), '
                         f'got {type(item).__name__}')
    need = ('images',) + tuple(head.train_views)
    missing = [k for k in need if k not in item]
    if missing:
        raise ValueError(
            f'{type(head).__name__} trains on the views {list(need)} but the train_data '
            f'pipeline gives no {missing} (it gives {sorted(item)}). Add the transform that '
            f'makes them to train_data.pipeline: MultiCropViews -> global_crops/local_crops, '
            f'Superpixels -> superpixels, PatchMask -> mask, LoadAnnotations -> gt_seg '
            f'(end the pipeline with ToTensorRGB)')


# ------------------------------------------------------------------------ the runner
def _init_cpu_distributed(launcher):
    """mmengine's pytorch launcher pins a CUDA device; without CUDA the process group is
    started here (gloo) so the Runner finds it ready."""
    if launcher == 'none' or torch.cuda.is_available():
        return
    import torch.distributed as dist
    if not dist.is_initialized():
        if launcher != 'pytorch':
            raise ValueError(f'launcher {launcher!r} needs CUDA here; on CPU use '
                             f"torchrun ... --launcher pytorch")
        dist.init_process_group(backend='gloo')


def runner_kwargs(cfg, resume=False, launcher='none'):
    """The ``Runner`` arguments of a checked training config (``work_dir`` set)."""
    t = dict(TRAIN_DEFAULTS, **(cfg.get('train') or {}))
    if 'seed' not in (cfg.get('train') or {}) and cfg.get('seed') is not None:
        t['seed'] = cfg['seed']
    iters, warmup = int(t['iters']), int(t['warmup_iters'])
    if iters < 1 or int(t['batch_size']) < 1:
        raise ValueError(f'train.iters and train.batch_size must be >= 1, got {iters} and '
                         f'{t["batch_size"]}')
    warmup = max(0, min(warmup, iters))
    cuda = torch.cuda.is_available()
    # fused: one kernel per step over all parameters instead of ~10 elementwise passes per
    # tensor; the single-tensor path spent 15-20% of a tiny-CLIP step on CPU in AdamW.
    optimizer = dict(type='AdamW', lr=t['lr'], weight_decay=t['weight_decay'],
                     betas=tuple(t['betas']), eps=t['eps'], fused=True)
    precision = t['precision']
    if precision not in ('auto', 'fp32', 'bf16'):
        raise ValueError(f"train.precision must be 'auto', 'fp32' or 'bf16', got {precision!r}")
    bf16 = precision == 'bf16' or (precision == 'auto' and cuda)
    optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16') if bf16 else \
        dict(type='OptimWrapper')
    optim_wrapper.update(optimizer=optimizer, constructor='OVSegOptimConstructor',
                         paramwise_cfg=dict(backbone_lr_mult=t['backbone_lr_mult'],
                                            custom_keys=t['custom_keys']))
    if t['grad_clip']:
        optim_wrapper['clip_grad'] = dict(max_norm=float(t['grad_clip']))
    schedulers = [dict(type='WarmupCosineLR', warmup_iters=warmup, total_iters=iters,
                       by_epoch=False)]
    workers = int(t['num_workers'])
    dataloader = dict(
        batch_size=int(t['batch_size']), num_workers=workers,
        persistent_workers=workers > 0, drop_last=True,
        dataset=dict(type='SeededDraws', dataset=copy.deepcopy(cfg['train_data']),
                     seed=t['seed']),
        sampler=dict(type='DrawSampler', shuffle=True),
        collate_fn=dict(type='image_text_collate'))
    log_interval = max(1, int(t['log_interval']))
    default_hooks = dict(
        runtime_info=dict(type='RuntimeInfoHook'),
        timer=dict(type='IterTimerHook'),
        logger=dict(type='LoggerHook', interval=log_interval, log_metric_by_epoch=False),
        param_scheduler=dict(type='ParamSchedulerHook'),
        checkpoint=dict(type='SafeCheckpointHook', by_epoch=False, save_last=True,
                        interval=int(t['checkpoint_interval']),
                        max_keep_ckpts=int(t['max_keep_ckpts'])),
        sampler_seed=dict(type='DistSamplerSeedHook'))
    custom_hooks = [dict(type='NonFiniteLossHook'), dict(type='SkippedImagesHook'),
                    dict(type='ExportHook'), dict(type='ProgressHook', label=cfg['method']['type'])]
    if cfg.get('zeroshot') is not None:
        custom_hooks.append(dict(type='ZeroShotHook', **cfg['zeroshot']))
    stem = Path(cfg.filename).stem if cfg.filename else 'train'
    return dict(
        model=dict(type='OVSegTrainModel', backbone=copy.deepcopy(cfg['backbone']),
                   method=copy.deepcopy(cfg['method']), frozen=tuple(t['frozen'] or ())),
        work_dir=cfg.work_dir,
        train_dataloader=dataloader,
        train_cfg=dict(type='OVSegIterLoop', max_iters=iters, val_interval=10 ** 9),
        optim_wrapper=optim_wrapper,
        param_scheduler=schedulers,
        default_hooks=default_hooks,
        custom_hooks=custom_hooks,
        launcher=launcher,
        env_cfg=dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork'),
                     dist_cfg=dict(backend='nccl' if cuda else 'gloo')),
        log_processor=dict(by_epoch=False, window_size=log_interval),
        visualizer=dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')]),
        default_scope='mmseg',
        randomness=dict(seed=int(t['seed']), diff_rank_seed=False),
        resume=resume,
        experiment_name=f'{stem}-{os.getpid()}-{next(_RUN_IDS)}',
        cfg=copy.deepcopy(cfg),
    )


def build_runner(cfg, cfg_options=None, resume=False, work_dir=None, launcher='none'):
    """A checked config -> a ready ``Runner`` (model built, train loop and data built, the
    head's views checked). Fails before training on any config or data problem."""
    cfg = C.load_config(cfg, cfg_options)
    check_train_config(cfg)
    if work_dir:
        cfg.work_dir = str(work_dir)
    elif not cfg.get('work_dir'):
        cfg.work_dir = str(Path('work_dirs') / (Path(cfg.filename).stem if cfg.filename
                                                else 'train'))
    threads = (cfg.get('train') or {}).get('cpu_threads')
    if threads:
        torch.set_num_threads(int(threads))
    _init_cpu_distributed(launcher)
    runner = OVSegRunner(**runner_kwargs(cfg, resume=resume, launcher=launcher))
    check_views(runner.train_loop.dataloader.dataset, H.unwrap(runner.model).head)
    return runner


def _stop_workers(runner):
    """Shut the persistent dataloader workers down now rather than at garbage collection
    (the bench runner trains many configs in one process)."""
    loop = runner._train_loop
    it = getattr(getattr(loop, 'dataloader_iterator', None), '_iterator', None)
    if hasattr(it, '_shutdown_workers'):
        it._shutdown_workers()


def train(cfg, cfg_options=None, resume=False, work_dir=None, launcher='none'):
    """Train a config (path, dict or ``Config``); returns a summary dict.

    ``resume``: continue from ``work_dir``'s latest checkpoint (from scratch if none).
    ``launcher``: ``'none'`` or ``'pytorch'`` (under ``torchrun``; gloo without CUDA).
    Summary keys: ``work_dir``, ``iters``, ``backbone`` and ``head`` (exported weights),
    ``skipped_images``, ``zeroshot`` (dict or None), ``train_time_s``, ``peak_mem_mb``.
    """
    from .evaluate import peak_memory_mb
    start = time.perf_counter()
    threads = torch.get_num_threads()       # train.cpu_threads applies to this run only
    try:
        runner = build_runner(cfg, cfg_options, resume, work_dir, launcher)
        try:
            runner.train()
        finally:
            _stop_workers(runner)
    finally:
        torch.set_num_threads(threads)
    hooks = {type(h).__name__: h for h in runner.hooks}
    zs = hooks.get('ZeroShotHook')
    summary = dict(work_dir=runner.work_dir, iters=runner.iter,
                   backbone=str(Path(runner.work_dir) / 'backbone.pt'),
                   head=str(Path(runner.work_dir) / 'head.pt'),
                   skipped_images=hooks['SkippedImagesHook'].count,
                   zeroshot=zs.result if zs is not None else None,
                   train_time_s=round(time.perf_counter() - start, 1),
                   peak_mem_mb=round(peak_memory_mb(), 1))
    logging.getLogger(__name__).info('training finished: %s', summary)
    return summary
