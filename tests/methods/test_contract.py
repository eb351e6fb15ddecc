"""The plugin contract (``ovseg_bench.contract``), checked over every registered method on its
default config: described, ``B,K,h,w`` logits for any window, deterministic in eval mode, a
gradient to every trainable parameter, trains through the common trainer, and is scored end
to end by the shared evaluator. Random tiny backbones, the tiny synthetic world. Plugins are
registered methods too: installed ones (entry points) always, a plugin file with
``pytest tests/methods/test_contract.py --plugin FILE``."""
import json
import math
import os
from pathlib import Path

import pytest
import torch

from ovseg_bench import contract
from ovseg_bench.bench.matrix import plugin_config
from ovseg_bench.config import CONFIG_ROOT, read_config_file
from ovseg_bench.registry import BUILTIN_METHODS, METHODS, load_plugins, method_info, names

load_plugins()
METHOD_NAMES = names(METHODS)
TRAINABLE = [m for m in METHOD_NAMES if method_info(m).trainable]


@pytest.fixture
def in_world(tmp_path, synth_root, monkeypatch):
    """Run from a folder where the configs' ``data/synth`` is the tiny synthetic world."""
    (tmp_path / 'data').mkdir()
    os.symlink(synth_root, tmp_path / 'data' / 'synth')
    monkeypatch.chdir(tmp_path)
    return tmp_path


def tiny_config(method):
    """The method's default config (its ``MethodInfo.config``) on a random tiny CLIP; for a
    plugin that names none, the default benchmark's ``plugin_base`` configs, as a benchmark
    runs it."""
    config = method_info(method).config
    if config is None:
        matrix = read_config_file(CONFIG_ROOT / 'bench' / 'default.py')
        config = plugin_config(matrix.plugin_base, method, 'contract')
    return contract.contract_config(config)


@pytest.mark.parametrize('method', METHOD_NAMES)
def test_every_method_is_described_and_configured(method):
    contract.check_described(tiny_config(method))
    if METHODS.get(method).__module__.startswith(BUILTIN_METHODS + '.'):
        assert method_info(method).config, f'{method} names no default config'


@pytest.mark.parametrize('method', METHOD_NAMES)
def test_predict_dense_gives_deterministic_class_logits(method):
    contract.check_dense(tiny_config(method))


@pytest.mark.parametrize('method', METHOD_NAMES)
def test_every_trainable_parameter_gets_a_gradient(method, in_world):
    contract.check_training(tiny_config(method))


@pytest.mark.parametrize('method', METHOD_NAMES)
def test_shared_evaluator_scores_every_method(method, in_world):
    row = contract.check_evaluation(tiny_config(method), 'synth_coco', in_world / 'eval')
    assert row['params_total'] >= row['params_trainable'] >= 0


@pytest.mark.slow
@pytest.mark.parametrize('method', TRAINABLE)
def test_trainable_method_trains_from_its_own_config(method, in_world):
    from ovseg_bench.engine.trainer import train
    cfg = tiny_config(method)
    cfg.train.update(iters=2, batch_size=2, num_workers=0, log_interval=1,
                     checkpoint_interval=2, warmup_iters=1)
    cfg.pop('zeroshot', None)
    before = contract.build_head(cfg).state_dict()
    summary = train(cfg, work_dir=in_world / 'run')
    assert summary['iters'] == 2
    after = torch.load(summary['head'], map_location='cpu', weights_only=False)
    after = after.get('state_dict', after)
    changed = [k for k, v in before.items()
               if v.is_floating_point() and not torch.equal(v, after[k])]
    assert changed, f'{method}: two optimiser steps changed no weight'
    # Every loss term is logged as a finite number.
    logs = [json.loads(line) for p in Path(summary['work_dir']).rglob('*.json')
            if p.parent.name == 'vis_data' and p.name != 'config.json'
            for line in p.read_text().splitlines() if line.strip()]
    losses = {k: v for rec in logs for k, v in rec.items() if 'loss' in k}
    assert losses and all(math.isfinite(v) for v in losses.values())


def test_a_broken_head_fails_the_contract_with_a_message():
    """The checks fail, naming the problem, for a head that breaks each rule."""
    cfg = tiny_config('MaskCLIP')
    head = contract.build_head(cfg)
    cls = type(head)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cls, 'predict_dense', lambda self, images, embeds: torch.zeros(2, 3))
        with pytest.raises(contract.ContractError, match='must return B,K,h,w'):
            contract.check_dense(cfg)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cls, 'predict_dense',
                   lambda self, images, embeds: torch.rand(len(images), len(embeds), 4, 4))
        with pytest.raises(contract.ContractError, match='not deterministic'):
            contract.check_dense(cfg)
