"""The training run: the resumable iteration loop, mmengine's Runner with CPU-capable DDP and
atomic checkpoints, the Runner arguments of a training config, and :func:`train`."""
import copy
import itertools
import logging
import os
import time
from pathlib import Path

import torch
from mmengine.registry import LOOPS
from mmengine.runner import IterBasedTrainLoop
from mmengine.runner.loops import _InfiniteDataloaderIterator

from ... import config as C
from ...checkpoint import load as load_checkpoint, trusted_types
from ...console import ConsoleRunner
from ...fileio import replace_durably
from .. import hooks as H
from ..runtime import init_cpu_distributed, peak_memory_mb
from .model import TrainModel  # noqa: F401  (registers OVSegTrainModel)
from .optim import OVSegOptimConstructor, WarmupCosineLR  # noqa: F401  (register)
from .sampling import DrawSampler
from .schema import TRAIN_DEFAULTS, check_train_config, check_views

_RUN_IDS = itertools.count()


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
            replace_durably(tmp, path)

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


def runner_kwargs(cfg, resume=False, launcher='none'):
    """The ``Runner`` arguments of a checked training config (``work_dir`` set)."""
    t = dict(TRAIN_DEFAULTS, **(cfg.get('train') or {}))
    t['seed'] = C.config_seed(cfg)
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
    init_cpu_distributed(launcher)
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
