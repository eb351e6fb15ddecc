"""The plugin contract as runnable checks (``ovseg-bench check``, ``tests/methods/test_contract``).

Each check takes a method config (random backbone weights: the contract is about shapes,
gradients and determinism, not accuracy) and raises :class:`ContractError` naming what is
wrong. ``docs/plugin_contract.md`` says what a method must do; this module is its executable
form, so a plugin anywhere (a file, an installed package) is checked the way the built-ins are.
"""
import copy
import math
from pathlib import Path

import torch

from .bench.record import evaluate_row
from .bench.results import read_rows
from .config import TOP_LEVEL_KEYS, load_config
from .registry import BACKBONES, METHODS, SETTINGS, build, method_info

WINDOWS = ((64, 64), (48, 80))   # square and not: a method may not assume either


class ContractError(AssertionError):
    """A method breaks the plugin contract (the message says how)."""


def _require(ok, message):
    if not ok:
        raise ContractError(message)


def contract_config(cfg):
    """``cfg`` (a path or a Config) with random backbone weights."""
    cfg = load_config(cfg)
    where = f'config {cfg.filename}' if cfg.filename else 'the config'
    for key in ('backbone', 'method'):
        if not isinstance(cfg.get(key), dict) or 'type' not in cfg[key]:
            raise KeyError(f'{where} has no {key} with a type ({TOP_LEVEL_KEYS[key]})')
    method_info(cfg.method.type)        # an unknown method: KeyError with the valid names
    cfg.backbone.pretrained = None
    return cfg


def build_head(cfg, seed=0):
    """The config's head on its backbone, built after seeding torch with ``seed``."""
    torch.manual_seed(seed)
    backbone = build(BACKBONES, cfg.backbone)
    return build(METHODS, cfg.method, backbone=backbone)


def class_embeds(k, dim, seed=1):
    """``k`` random L2-normalised class embeddings of size ``dim``, from a fixed seed."""
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(k, dim, generator=g), dim=-1)


def check_described(cfg):
    """Registered with a docstring (``ovseg-bench list``) and a valid record."""
    name = cfg.method.type
    info = method_info(name)
    doc = (METHODS.get(name).__doc__ or '').strip()
    _require(doc, f'{name} has no docstring (its first line is what `ovseg-bench list` prints)')
    _require(info.setting in SETTINGS, f'{name}: setting {info.setting!r} is not one of '
             f'{SETTINGS}')


def check_dense(cfg, windows=WINDOWS, k=5):
    """``predict_dense`` gives finite B,K,h,w logits for any window, the same twice in eval
    mode, and an image's logits do not depend on the other images of its batch."""
    name = cfg.method.type
    head = build_head(cfg).eval()
    embeds = class_embeds(k, head.backbone.embed_dim)
    for size in windows:
        images = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            logits = head.predict_dense(images, embeds)
            again = head.predict_dense(images, embeds)
            alone = head.predict_dense(images[:1], embeds)
        _require(torch.is_tensor(logits) and logits.dim() == 4 and
                 tuple(logits.shape[:2]) == (2, k) and min(logits.shape[2:]) > 0,
                 f'{name}.predict_dense on 2 images of {size[0]}x{size[1]} and {k} classes '
                 f'must return B,K,h,w = 2,{k},h,w; got '
                 f'{tuple(logits.shape) if torch.is_tensor(logits) else type(logits).__name__}')
        _require(torch.isfinite(logits).all(), f'{name}.predict_dense gave non-finite logits')
        _require(torch.equal(logits, again), f'{name}.predict_dense is not deterministic in '
                 f'eval mode (two calls on the same input differ)')
        _require(torch.allclose(alone, logits[:1], atol=1e-4, rtol=1e-4),
                 f"{name}.predict_dense: an image's logits change with the other images of "
                 f'its batch')


def training_batch(cfg, n=2):
    """``n`` items of the config's own training data, collated as the trainer collates them."""
    from mmengine.registry import DefaultScope
    from mmseg.registry import DATASETS

    from .data.image_text import image_text_collate
    _require(cfg.get('train_data'), f'{cfg.method.type} is trainable but the config has no '
             f'train_data')
    with DefaultScope.overwrite_default_scope('mmseg'):     # as the trainer's runner builds it
        dataset = DATASETS.build(copy.deepcopy(cfg.train_data))
    _require(len(dataset) >= n, f'train_data has {len(dataset)} items; the check needs {n}')
    return image_text_collate([dataset[i] for i in range(n)])


def check_training(cfg):
    """A trainable method: one forward/backward on its own training data gives finite losses
    and a gradient to every trainable parameter (timm's ``test_model_backward``). A
    training-free method refuses ``forward_train``."""
    from .engine.trainer import TrainModel
    name = cfg.method.type
    if not method_info(name).trainable:
        head = build_head(cfg)
        try:
            head.forward_train(dict(images=torch.randn(1, 3, 64, 64), captions=['x']))
        except RuntimeError as err:
            _require('training-free' in str(err), f'{name}.forward_train raised {err!r}, '
                     f"not MethodHead's training-free error")
            return
        raise ContractError(f'{name} is registered training-free but forward_train ran')
    torch.manual_seed(0)
    frozen = tuple((cfg.get('train') or {}).get('frozen') or ())
    model = TrainModel(cfg.backbone, cfg.method, frozen=frozen).train()
    data = model.data_preprocessor(training_batch(cfg), True)
    losses = model(**data, mode='loss')
    total, _ = model.parse_losses(losses)
    loss = float(total.detach())
    _require(math.isfinite(loss), f'{name}: the summed loss is {loss}')
    total.backward()
    params = [(n, p) for n, p in model.head.named_parameters() if p.requires_grad]
    _require(params, f'{name} is trainable but has no trainable parameter')
    missing = [n for n, p in params if p.grad is None]
    _require(not missing, f'{name}: {len(missing)} trainable parameters get no gradient from '
             f'forward_train (freeze them or use them): {", ".join(missing[:8])}')
    bad = [n for n, p in params if not torch.isfinite(p.grad).all()]
    _require(not bad, f'{name}: non-finite gradients in {", ".join(bad[:8])}')


def check_evaluation(cfg, dataset, work_dir, data_root=None):
    """The shared evaluator scores the method: metrics in 0..100 and consistent with the
    per-class results (mIoU is their mean), the row names the method and its source hash."""
    name = cfg.method.type
    head = build_head(cfg).eval()
    out = Path(work_dir) / 'results.csv'
    row = evaluate_row(cfg, dataset, Path(work_dir) / dataset, data_root=data_root, head=head,
                       results_csv=out)
    _require(row['method'] == name and row['dataset'] == dataset,
             f'the result row names {row["method"]}/{row["dataset"]}, not {name}/{dataset}')
    for key in ('mIoU', 'mAcc', 'aAcc'):
        _require(0.0 <= row[key] <= 100.0, f'{key} = {row[key]} is outside 0..100')
    ious = [float(r['IoU']) for r in read_rows(out.with_name('per_class.csv'))
            if r['dataset'] == dataset and r['method'] == name]
    ious = [v for v in ious if not math.isnan(v)]
    _require(ious and abs(sum(ious) / len(ious) - row['mIoU']) < 0.01,
             f'mIoU {row["mIoU"]} is not the mean of the per-class IoUs')
    _require(row.get('method_source_sha') == method_info(name).source_sha,
             f'the row does not record the source hash of {method_info(name).source}')
    return row


CHECKS = ('described', 'dense', 'training', 'evaluation')


def run_checks(cfg, dataset, work_dir, data_root=None, report=print):
    """Every check on ``cfg`` (a path or Config); ``report(line)`` per check. Returns the
    number of failed checks."""
    cfg = contract_config(cfg)
    steps = [('described', lambda: check_described(cfg)),
             ('dense', lambda: check_dense(cfg)),
             ('training', lambda: check_training(cfg)),
             ('evaluation', lambda: check_evaluation(cfg, dataset, work_dir, data_root))]
    failed = 0
    for label, step in steps:
        try:
            step()
        except ContractError as err:
            failed += 1
            report(f'FAIL  {label}: {err}')
        else:
            report(f'ok    {label}')
    return failed
