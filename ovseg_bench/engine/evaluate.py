"""The common evaluator: any method config x any named dataset -> one result row.

Runs mmengine's test loop over an mmseg dataset with the protocol's pipeline, scores with
:class:`OVIoUMetric` and writes the summary row and the per-class rows (schema in
``ovseg_bench.bench.results``).
"""
import contextlib
import logging
import resource
import time
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.runner import Runner

from ..backbones.base import RANDOM_WEIGHTS, drop_log_records
from ..bench import results
from ..checkpoint import CheckpointError, load as load_checkpoint
from ..config import TOP_LEVEL_KEYS, check_keys, load_config
from ..data.catalog import load_dataset_cfg, split_cfg
from ..registry import BACKBONES, METHODS, build, load_plugins, method_info
from ..segmentor import OVSegmentor, resolve_protocol
from ..text import select_vocabulary
from .hooks import EvalProgressHook  # noqa: F401  (registers the hook)
from .metrics import OVIoUMetric  # noqa: F401  (registers the metric)


def peak_memory_mb():
    """CUDA peak allocation, or on CPU the process's maximum resident set (a high-water
    mark over the process's life, so give a measurement its own process)."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_pipeline(protocol):
    return [
        dict(type='LoadImageChecked'),    # mmcv's, with one-line errors naming the file
        # mmseg's keep-ratio resize: short side to ``short_side``, long side at most
        # ``max_long_side``, whichever binds first (the official harnesses' (2048, S)).
        dict(type='Resize', scale=(protocol['max_long_side'], protocol['short_side']),
             keep_ratio=True),
        dict(type='LoadAnnotationsChecked'),  # after Resize: the ground truth keeps its size
        dict(type='PackSegInputs'),
    ]


def pin_memory_enabled(protocol):
    """The protocol's ``pin_memory``: ``'auto'`` pins batches when CUDA is available (page-
    locked host memory only pays off for host-to-GPU copies)."""
    pin = protocol.get('pin_memory', 'auto')
    return torch.cuda.is_available() if pin == 'auto' else bool(pin)


def eval_dataloader_cfg(ds, protocol):
    """The evaluation DataLoader config: images are decoded and resized in ``num_workers``
    worker processes (the pipeline runs in ``Dataset.__getitem__``), batches pinned per
    :func:`pin_memory_enabled`. Workers are not persistent: a loader makes exactly one pass
    over its dataset and is then dropped, so keeping its workers alive would only hold
    processes (the bench builds one loader per dataset)."""
    return dict(
        batch_size=protocol['batch_size'], num_workers=protocol['num_workers'],
        pin_memory=pin_memory_enabled(protocol), persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=split_cfg(ds, 'eval', with_mask_loader(test_pipeline(protocol), ds)))


def with_mask_loader(pipeline, ds):
    """The pipeline with the dataset config's mask loader (``load_annotations``: the 16-bit
    loader of the 459/847-class layouts) in place of the 8-bit ``LoadAnnotationsChecked``."""
    loader = ds.get('load_annotations')
    return [dict(loader) if loader and t['type'] == 'LoadAnnotationsChecked' else t
            for t in pipeline]


def load_head(cfg, checkpoint=None):
    """The method head of ``cfg`` on its backbone, with trained weights if given."""
    load_plugins()
    # Seeded like training, so an untrained head (the "before training" row) is reproducible.
    torch.manual_seed(cfg.get('train', {}).get('seed', cfg.get('seed', 0)))
    path = Path(checkpoint) if checkpoint else None
    if path is not None and not path.is_file():
        raise FileNotFoundError(f'head checkpoint not found: {path}')
    # A backbone built without weights warns that they are random; not when the checkpoint
    # (the whole head, backbone included) is loaded right after.
    quiet = drop_log_records(RANDOM_WEIGHTS) if path else contextlib.nullcontext()
    with quiet:
        backbone = build(BACKBONES, cfg['backbone'])
    head = build(METHODS, cfg['method'], backbone=backbone)
    if path is not None:
        load_head_weights(head, path)
    return head


def load_head_weights(head, path):
    """Load a head checkpoint (``head.pt``, or an mmengine ``iter_N.pth`` of the same method)
    into ``head``; one-line errors for an unsafe, damaged or foreign file."""
    what = 'head checkpoint (--checkpoint)'
    state = load_checkpoint(path, what)
    if isinstance(state, dict) and isinstance(state.get('state_dict'), dict):
        state = state['state_dict']      # an mmengine checkpoint: the TrainModel's keys
        state = {k[len('head.'):] if k.startswith('head.') else k: v for k, v in state.items()}
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f'{what} {path} holds no state dict of tensors '
                              f'({type(state).__name__})')
    own = head.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = [f'{len(v)} {t} ({", ".join(v[:3])}{", ..." if len(v) > 3 else ""})'
                 for t, v in (('missing keys', missing), ('unexpected keys', unexpected),
                              ('shape mismatches', shapes)) if v]
        hint = ('Is it the head.pt of another method or config?' if any(
            k.startswith('backbone.') for k in state) else 'It holds no backbone.* keys: a '
            'backbone.pt or CLIP checkpoint? Give that as backbone.pretrained instead.')
        raise CheckpointError(f'{what} {path} does not fit {type(head).__name__} on this '
                              f'backbone: {"; ".join(parts)}. {hint}')
    head.load_state_dict(state)
    logging.getLogger(__name__).info('%s: weights from %s', type(head).__name__, path)


def untrained_row(cfg, head_given=False, checkpoint=None):
    """Whether ``cfg`` trains its head (a trainable method with ``train_data``) but it is
    evaluated without trained weights: its row is then keyed ``train_data=none``."""
    from ..registry import check_name
    check_name(METHODS, cfg['method']['type'], 'method')
    trainable = METHODS.get(cfg['method']['type']).trainable
    return trainable and bool(cfg.get('train_data')) and not head_given and not checkpoint


def count_params(module):
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return trainable, total


def evaluate(cfg, dataset, work_dir, data_root=None, checkpoint=None, head=None,
             results_csv=None, extra=None, save_first=0, save_pred=None):
    """Evaluate ``cfg``'s method on the named ``dataset``; returns the result row (a dict).

    ``head`` may be passed to reuse an already built (e.g. just trained) head. With
    ``results_csv`` the row is appended there and the per-class rows beside it
    (``per_class.csv``); ``save_first`` predictions are kept in ``work_dir/predictions``, or
    with ``save_pred`` every prediction in ``save_pred/<dataset>/<image stem>.png``.
    """
    cfg = cfg if isinstance(cfg, Config) else load_config(cfg)
    check_keys(cfg, TOP_LEVEL_KEYS)
    if results_csv:
        results.check_writable(results_csv)
    protocol = resolve_protocol(cfg.get('protocol'), dataset)
    ds = load_dataset_cfg(dataset, data_root)
    vocab_label, vocabulary = select_vocabulary(ds['vocabulary'], dataset,
                                                protocol['vocabularies'])
    untrained = untrained_row(cfg, head_given=head is not None, checkpoint=checkpoint)
    head = head if head is not None else load_head(cfg, checkpoint)
    model = OVSegmentor(head, vocabulary, ds['has_background'], protocol)
    loader = eval_dataloader_cfg(ds, protocol)
    unseen = (cfg.get('unseen_classes') or {}).get(dataset, ())
    runner = Runner(
        model=model, work_dir=str(work_dir), test_dataloader=loader,
        test_evaluator=dict(
            type='OVIoUMetric', unseen_classes=unseen, ignore_index=ds.get('ignore_index', 255),
            save_first=float('inf') if save_pred else save_first,
            save_dir=str(Path(save_pred) / dataset if save_pred
                         else Path(work_dir) / 'predictions')),
        test_cfg=dict(type='TestLoop'), default_scope='mmseg', log_level='WARNING',
        experiment_name=f'eval_{dataset}_{time.strftime("%Y%m%d_%H%M%S")}_{id(head):x}',
        default_hooks=dict(logger=dict(type='LoggerHook', interval=50)),
        custom_hooks=[dict(type='EvalProgressHook', label=dataset)],
        env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo')))
    n_classes = len(runner.test_dataloader.dataset.metainfo['classes'])
    if n_classes != len(vocabulary):
        raise ValueError(f'vocabulary {vocab_label} has {len(vocabulary)} classes but '
                         f'dataset {dataset!r} has {n_classes}')
    if torch.cuda.is_available():
        model.cuda()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    metrics = runner.test()
    seconds = time.perf_counter() - start
    metric = runner.test_evaluator.metrics[0]
    n_images = len(runner.test_dataloader.dataset)
    trainable, total = count_params(head)
    peak = peak_memory_mb()
    key = results.cell_key(cfg, dataset)
    if untrained:
        key['train_data'] = 'none'      # not the trained cell's row: these weights saw none
    row = dict(
        **key,
        **{k: round(v, 2) for k, v in metrics.items()},
        protocol=protocol['name'], vocabulary=vocab_label,
        **{k: protocol[k] for k in results.PROTOCOL_FIELDS if k in protocol},
        params_trainable=trainable, params_total=total, eval_time_s=round(seconds, 2),
        images_per_s=round(n_images / seconds, 2), peak_mem_mb=round(peak, 1),
        device=torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu',
        git_commit=results.git_commit(), config_hash=results.config_hash(cfg.to_dict()),
        timestamp=results.now(), config=cfg.filename or '',
        method_source_sha=method_info(cfg.method.type).source_sha, **(extra or {}))
    if results_csv:
        # Per-class rows first: the summary row, written last, marks a finished cell (a kill
        # in between leaves no row, so the runner redoes the cell and replaces these).
        keys = {k: row[k] for k in results.KEY_FIELDS}
        per_class = [dict(keys, class_index=c['index'], class_name=c['name'], split=c['split'],
                          IoU=round(c['IoU'], 2), Acc=round(c['Acc'], 2),
                          gt_pixels=c['gt_pixels'], pred_pixels=c['pred_pixels'])
                     for c in metric.per_class]
        results.append_rows(Path(results_csv).with_name('per_class.csv'), per_class,
                            results.PER_CLASS_FIELDS)
        results.append_rows(results_csv, [row])
        logging.getLogger(__name__).info('wrote %s', results_csv)
    return row
