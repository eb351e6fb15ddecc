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

:func:`train` turns it into Runner arguments (:mod:`.runner`): AdamW over the trainable
parameters only (the backbone's at ``lr * backbone_lr_mult``; parameters whose name contains a
key of ``custom_keys`` at that key's ``lr_mult`` / ``decay_mult``; those matching ``frozen``
not trained at all; 1-d tensors -- biases, norms, the temperature -- without weight decay),
linear warm-up then cosine to 0, gradient clipping, bf16 autocast when CUDA is available
(``precision``), an iteration-based loop, checkpoints every ``checkpoint_interval`` and at
the end, text and JSON logs with every loss term, a NaN/inf guard, and at the end
``work_dir/backbone.pt`` + ``work_dir/head.pt``. Data order and augmentation are functions of
(seed, sample number) alone, so a run is reproducible and a resumed run continues exactly.

Modules: :mod:`.schema` (the ``train`` keys and the checks run before anything is built),
:mod:`.model` (the head on its backbone, as mmengine trains it), :mod:`.optim` (parameter
groups, optimiser, schedule), :mod:`.sampling` (data order) and :mod:`.runner` (the loop, the
Runner and :func:`train`). Each registers its parts in mmengine's registries on import, and
:mod:`.runner` imports the others, so the type names the Runner arguments use resolve.
"""
from .model import TrainModel, ViewNormalizer
from .optim import OVSegOptimConstructor, WarmupCosineLR, freeze, param_groups
from .runner import (OVSegIterLoop, OVSegRunner, build_runner, resumable_checkpoint,
                     runner_kwargs, train)
from .sampling import DrawSampler, SeededDraws
from .schema import TRAIN_DEFAULTS, check_train_config, check_views

__all__ = ['DrawSampler', 'OVSegIterLoop', 'OVSegOptimConstructor', 'OVSegRunner',
           'SeededDraws', 'TRAIN_DEFAULTS', 'TrainModel', 'ViewNormalizer', 'WarmupCosineLR',
           'build_runner', 'check_train_config', 'check_views', 'freeze', 'param_groups',
           'resumable_checkpoint', 'runner_kwargs', 'train']
