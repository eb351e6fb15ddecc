"""The training config's schema: every key of ``train`` with its default, and the checks run
before anything is built (unknown keys with the nearest valid one, the types, the registered
names, and that the pipeline gives the views the head trains on)."""
from pathlib import Path

from mmseg.registry import DATASETS, TRANSFORMS

from ... import config as C
from ...registry import BACKBONES, METHODS, load_plugins
from ..zeroshot import zero_shot_classification
from .sampling import SeededDraws

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
