"""Shared fixtures."""
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Real files in the official layouts, beside the project (absent in a fresh clone).
REAL_SAMPLES = REPO / '..' / 'shared' / 'real_samples'
# A tiny synthetic world: enough images for every layout and split, written in seconds.
TINY_SYNTH = dict(seed=0, n_val=6, n_seg_train=4, n_caption_train=8, n_caption_val=4)


def pytest_addoption(parser):
    parser.addoption('--plugin', action='append', default=[], metavar='FILE',
                     help='load a method plugin file first: the contract tests '
                          '(tests/methods/test_contract.py) then check it too')


def pytest_configure(config):
    from ovseg_bench.registry import load_plugin_file, load_plugins
    load_plugins()
    for path in config.getoption('--plugin'):
        load_plugin_file(path)


@pytest.fixture(scope='session')
def synth_root(tmp_path_factory):
    """A tiny synthetic world (``TINY_SYNTH``) written once per session; returns its root."""
    from ovseg_bench.data.synthetic import make_synthetic
    root = tmp_path_factory.mktemp('synth')
    make_synthetic(root, progress=False, **TINY_SYNTH)
    return root


@pytest.fixture
def real_samples():
    """``../shared/real_samples`` (real VOC and ADE20K files); skips when absent."""
    if not REAL_SAMPLES.is_dir():
        pytest.skip(f'no real samples at {REAL_SAMPLES}')
    return REAL_SAMPLES.resolve()


@pytest.fixture(scope='session')
def tiny_backbone():
    """The embedded default's tiny open_clip architecture with random weights (on purpose)."""
    import torch

    from ovseg_bench.backbones import OpenCLIPBackbone
    torch.manual_seed(0)
    return OpenCLIPBackbone('ovseg-tiny').eval()
