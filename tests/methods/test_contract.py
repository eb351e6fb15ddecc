"""The plugin contract, checked over every registered method (plugins included): each has a
description and a tiny-synthetic config, predicts ``B,K,h,w`` logits for any window size,
trains a step through the common trainer from its own config, and is scored end to end by
the shared evaluator. Random tiny backbones, the session's tiny synthetic world (seconds each).
"""
import math
import os
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from ovseg_bench.bench.runner import method_configs
from ovseg_bench.registry import BACKBONES, METHODS, build, load_plugins, names

REPO = Path(__file__).resolve().parents[2]
load_plugins()
CONFIGS = {m: paths[0] for m, paths in
           method_configs(str(REPO / 'configs' / '*' / '*_tiny_synth.py')).items()}
METHOD_NAMES = names(METHODS)


@pytest.fixture
def in_world(tmp_path, synth_root, monkeypatch):
    """Run from a folder where the configs' ``data/synth`` is the tiny synthetic world."""
    (tmp_path / 'data').mkdir()
    os.symlink(synth_root, tmp_path / 'data' / 'synth')
    monkeypatch.chdir(tmp_path)
    return tmp_path


def tiny_config(method):
    """The method's own tiny-synthetic config on a random tiny CLIP."""
    cfg = Config.fromfile(CONFIGS[method])
    cfg.backbone.pretrained = None
    return cfg


def build_head(cfg, seed=0):
    torch.manual_seed(seed)
    backbone = build(BACKBONES, cfg.backbone)
    return build(METHODS, cfg.method, backbone=backbone)


def class_embeds(k, dim, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(k, dim, generator=g), dim=-1)


@pytest.mark.parametrize('method', METHOD_NAMES)
def test_every_method_is_described_and_configured(method):
    cls = METHODS.get(method)
    assert (cls.__doc__ or '').strip(), f'{method} has no docstring (`ovseg-bench list`)'
    assert cls.setting in ('open_vocab', 'zero_shot')
    assert method in CONFIGS, f'{method} has no configs/<name>/*_tiny_synth.py'


@pytest.mark.parametrize('method', METHOD_NAMES)
@pytest.mark.parametrize('size', [(64, 64), (48, 80)])
def test_predict_dense_gives_finite_class_logits(method, size):
    head = build_head(tiny_config(method)).eval()
    images = torch.randn(2, 3, *size)
    with torch.no_grad():
        embeds = class_embeds(5, head.backbone.embed_dim)
        logits = head.predict_dense(images, embeds)
        again = head.predict_dense(images, embeds)
    assert logits.dim() == 4 and logits.shape[:2] == (2, 5)
    assert torch.isfinite(logits).all()
    assert torch.equal(logits, again), 'inference must be deterministic in eval mode'
    # The logits of an image do not depend on the other images of the batch.
    with torch.no_grad():
        alone = head.predict_dense(images[:1], embeds)
    torch.testing.assert_close(alone, logits[:1], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize('method', [m for m in METHOD_NAMES if METHODS.get(m).trainable])
def test_trainable_method_trains_from_its_own_config(method, in_world):
    from ovseg_bench.engine.trainer import train
    cfg = tiny_config(method)
    cfg.train.update(iters=2, batch_size=2, num_workers=0, log_interval=1,
                     checkpoint_interval=2, warmup_iters=1)
    cfg.pop('zeroshot', None)
    before = build_head(cfg).state_dict()
    summary = train(cfg, work_dir=in_world / 'run')
    assert summary['iters'] == 2
    after = torch.load(summary['head'], map_location='cpu', weights_only=False)
    after = after.get('state_dict', after)
    changed = [k for k, v in before.items()
               if v.is_floating_point() and not torch.equal(v, after[k])]
    assert changed, f'{method}: two optimiser steps changed no weight'
    # Every loss term is logged as a finite number.
    import json
    logs = [json.loads(line) for p in Path(summary['work_dir']).rglob('*.json')
            if p.parent.name == 'vis_data' and p.name != 'config.json'
            for line in p.read_text().splitlines() if line.strip()]
    losses = {k: v for rec in logs for k, v in rec.items() if 'loss' in k}
    assert losses and all(math.isfinite(v) for v in losses.values())


@pytest.mark.parametrize('method', [m for m in METHOD_NAMES if not METHODS.get(m).trainable])
def test_training_free_method_refuses_to_train(method):
    head = build_head(tiny_config(method))
    with pytest.raises(RuntimeError, match='training-free'):
        head.forward_train(dict(images=torch.randn(1, 3, 64, 64), captions=['x']))


@pytest.mark.parametrize('method', METHOD_NAMES)
def test_shared_evaluator_scores_every_method(method, in_world):
    from ovseg_bench.bench.record import evaluate_row
    cfg = tiny_config(method)
    head = build_head(cfg).eval()
    row = evaluate_row(cfg, 'synth_coco', in_world / 'eval', head=head)
    assert row['method'] == method and row['dataset'] == 'synth_coco'
    for key in ('mIoU', 'mAcc', 'aAcc'):
        assert 0.0 <= row[key] <= 100.0
    assert row['params_total'] >= row['params_trainable'] >= 0
