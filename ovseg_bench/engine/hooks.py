"""mmengine hooks of the common trainer (registered in mmengine's ``HOOKS``)."""
import json
import os
import time
from collections import deque
from pathlib import Path

import torch
from mmengine.dist import all_reduce, get_world_size, is_main_process
from mmengine.hooks import CheckpointHook, Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from ..fileio import atomic_path


class NonFiniteLossError(RuntimeError):
    """Training stopped because a loss became NaN or infinite."""


def unwrap(model):
    return model.module if is_model_wrapper(model) else model


def _any_rank(flag, device):
    """True on every rank when ``flag`` is True on any rank."""
    if get_world_size() == 1:
        return bool(flag)
    t = torch.tensor(float(flag), device=device)
    all_reduce(t, op='max')
    return bool(t.item())


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stops training at the first NaN/inf loss, before that iteration's update.

    At ``before_train`` the hook installs itself as the model's loss guard: the model calls
    :meth:`check` on the parsed losses before the backward pass, so a non-finite loss never
    reaches the weights or the optimiser state. On one it saves a checkpoint
    (``nonfinite_iter_<i>.pth``: the weights and optimiser state *before* iteration ``i``, so
    the failure can be replayed) and raises :class:`NonFiniteLossError` naming the iteration
    and the non-finite loss terms. In distributed training the verdict is shared by all ranks
    (one all-reduce per iteration), so they stop together.
    """
    priority = 'VERY_HIGH'

    def __init__(self):
        self.runner = None

    def before_train(self, runner):
        self.runner = runner
        unwrap(runner.model).loss_guard = self.check

    def check(self, losses, total):
        bad = {}
        for name, value in losses.items():
            if 'loss' not in name:
                continue
            values = value if isinstance(value, (list, tuple)) else [value]
            if not all(bool(torch.isfinite(v.detach()).all()) for v in values):
                bad[name] = ', '.join(f'{float(v.detach().float().mean()):g}' for v in values)
        local = bool(bad) or not bool(torch.isfinite(total.detach()).all())
        if not _any_rank(local, total.device):
            return
        runner = self.runner
        it = runner.iter + 1
        filename = f'nonfinite_iter_{it}.pth'
        runner.save_checkpoint(runner.work_dir, filename, by_epoch=False,
                               meta=dict(nonfinite_iter=it, nonfinite_terms=sorted(bad)))
        if bad:
            terms = ', '.join(f'{k}={v}' for k, v in bad.items())
        elif local:
            terms = f'the total loss ({float(total.detach()):g}; each term is finite)'
        else:
            terms = 'on another rank'
        msg = (f'loss became non-finite at iteration {it}: {terms}. Training stopped before '
               f'this update; the weights before it are saved in '
               f'{os.path.join(runner.work_dir, filename)}')
        runner.logger.error(msg)
        raise NonFiniteLossError(msg)


@HOOKS.register_module()
class SkippedImagesHook(Hook):
    """Counts the unreadable images the datasets skipped (``skipped_images`` of each batch,
    so images skipped in dataloader workers count too) and logs the total at the end.
    ``count`` holds it (summed over ranks); ``paths`` the ones this rank saw."""
    priority = 'LOW'

    def __init__(self):
        self.paths = set()
        self.count = 0

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if isinstance(data_batch, dict) and data_batch.get('skipped_images'):
            self.paths.update(data_batch['skipped_images'])

    def after_train(self, runner):
        count = torch.tensor(float(len(self.paths)))
        if get_world_size() > 1:
            all_reduce(count, op='sum')
        self.count = int(count.item())
        runner.message_hub.update_info('skipped_images', self.count)
        if self.count:
            shown = ', '.join(sorted(self.paths)[:5])
            runner.logger.warning(f'{self.count} unreadable images were skipped during training '
                                  f'(e.g. {shown}); see the warnings above for the reasons')
        else:
            runner.logger.info('no unreadable images were met during training')


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook``, deleting the checkpoints beyond ``max_keep_ckpts``
    only after the new one is written (mmengine deletes first: with one kept, a kill during
    the write left nothing to resume from)."""

    def _save_checkpoint_with_step(self, runner, step, meta):
        keep = self.max_keep_ckpts
        if keep <= 0:
            return super()._save_checkpoint_with_step(runner, step, meta)
        kept = list(self.keep_ckpt_ids)
        if not kept or kept[-1] != step:
            kept.append(step)
        stale, kept = kept[:-keep], kept[-keep:]
        runner.message_hub.update_info('keep_ckpt_ids', kept)   # saved in the checkpoint
        self.max_keep_ckpts = 0           # mmengine's save without its early deletion
        try:
            super()._save_checkpoint_with_step(runner, step, meta)
        finally:
            self.max_keep_ckpts = keep
        self.keep_ckpt_ids = deque(kept, keep)
        if is_main_process():
            for old in stale:
                Path(self.out_dir, self.filename_tmpl.format(old)).unlink(missing_ok=True)


def export_weights(head, work_dir):
    """Write ``backbone.pt`` (a plain state dict of the backbone's own model, loadable as
    ``backbone.pretrained``) and then ``head.pt`` (the whole head's state dict, loadable by
    ``ovseg-bench test --checkpoint``) into ``work_dir``; returns both paths."""
    backbone = head.backbone
    sd = backbone.state_dict_for_export()
    bb_path = Path(work_dir) / 'backbone.pt'
    head_path = Path(work_dir) / 'head.pt'
    for state, path in ((sd, bb_path), (head.state_dict(), head_path)):
        with atomic_path(path) as tmp:
            torch.save({k: v.detach().cpu() for k, v in state.items()}, tmp)
    return bb_path, head_path


@HOOKS.register_module()
class ExportHook(Hook):
    """At the end of training, the main process exports the weights (:func:`export_weights`):
    ``work_dir/backbone.pt`` and ``work_dir/head.pt`` (written last: its presence means a
    finished run)."""
    priority = 'VERY_LOW'

    def after_train(self, runner):
        if not is_main_process():
            return
        bb, head = export_weights(unwrap(runner.model).head, runner.work_dir)
        runner.logger.info(f'exported the backbone to {bb} and the head to {head}')


@HOOKS.register_module()
class ZeroShotHook(Hook):
    """At the end of training, zero-shot classification of held-out captioned images
    (:func:`ovseg_bench.engine.zeroshot.zero_shot_classification`, its arguments here),
    on the main process: logged, added to the JSON scalars (``zeroshot/accuracy``,
    ``zeroshot/chance``) and written to ``work_dir/zeroshot.json``. With the synthetic
    world's default classes (the things), the stuff classes are scored too (``stuff``;
    ``zeroshot/stuff_accuracy``, ``zeroshot/stuff_chance``)."""
    priority = 'LOWEST'

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.result = None

    def after_train(self, runner):
        if not is_main_process():
            return
        from .zeroshot import zero_shot_classification
        head = unwrap(runner.model).head
        start = time.perf_counter()
        res = zero_shot_classification(head, **self.kwargs)
        scalars = {'zeroshot/accuracy': res['accuracy'], 'zeroshot/chance': res['chance']}
        lines = [self._line('things' if self.kwargs.get('classes') in (None, 'things')
                            else 'classes', res)]
        if self.kwargs.get('classes') in (None, 'things'):
            stuff = zero_shot_classification(head, **dict(self.kwargs, classes='stuff'))
            res['stuff'] = {k: stuff[k] for k in ('accuracy', 'chance', 'n_images',
                                                  'n_classes')}
            scalars.update({'zeroshot/stuff_accuracy': stuff['accuracy'],
                            'zeroshot/stuff_chance': stuff['chance']})
            lines.append(self._line('stuff', stuff))
        res['seconds'] = round(time.perf_counter() - start, 2)
        self.result = res
        for line in lines:
            runner.logger.info(line)
        runner.visualizer.add_scalars(scalars, step=runner.iter)
        (Path(runner.work_dir) / 'zeroshot.json').write_text(json.dumps(res, indent=1) + '\n')

    @staticmethod
    def _line(what, res):
        return (f'zero-shot classification ({what}) of {res["n_images"]} held-out images over '
                f'{res["n_classes"]} classes ({res["templates"]} templates): accuracy '
                f'{res["accuracy"]:.2f}% vs chance {res["chance"]:.2f}%')
