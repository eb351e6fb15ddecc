"""configs/_base_/backbones: each names a model the adapter knows and a local checkpoint file."""
from pathlib import Path

import open_clip
import pytest
from mmengine.config import Config

import ovseg_bench.backbones  # noqa: F401  (registers the project's model configs)

CONFIGS = sorted((Path(__file__).resolve().parents[2] / 'configs' / '_base_' / 'backbones')
                 .glob('*.py'))


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_backbone_config_names_a_known_model_and_a_local_file(path):
    bb = Config.fromfile(str(path)).backbone
    assert bb.type == 'OpenCLIPBackbone'
    assert bb.model in open_clip.list_models(), bb.model
    assert not str(bb.pretrained).startswith(('http', 'hf-hub:')), 'weights are local files'
    assert 'pretrained' in path.read_text()
