"""Weight files are read without running code: a crafted pickle is refused on every path that
reads one (backbone ``pretrained``, head ``--checkpoint``, the text cache), naming the file."""
import os
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from ovseg_bench.backbones import OpenCLIPBackbone
from ovseg_bench.checkpoint import CheckpointError, load
from ovseg_bench.engine.evaluate import load_head

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _CreatesFile:
    """Unpickled by a plain ``torch.load``, this would create the file ``path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, 'w'))


def crafted(tmp_path, name='evil.pt'):
    """A checkpoint that looks like weights but creates ``tmp_path/pwned`` when unpickled;
    returns (checkpoint, file it would create)."""
    target = tmp_path / 'pwned'
    path = tmp_path / name
    torch.save({'visual.proj': torch.zeros(2), 'payload': _CreatesFile(target)}, path)
    return path, target


def test_the_crafted_file_does_create_the_file_when_unpickled_unsafely(tmp_path):
    path, target = crafted(tmp_path)      # the control: what the refusal prevents
    torch.load(path, weights_only=False)
    assert target.exists()


def test_crafted_pickle_as_backbone_pretrained_is_refused_without_running(tmp_path):
    path, target = crafted(tmp_path)
    with pytest.raises(CheckpointError, match=rf'refusing to load CLIP checkpoint '
                                              rf'\(backbone.pretrained\) {path}: .*io.open'):
        OpenCLIPBackbone('ovseg-tiny', pretrained=str(path))
    assert not target.exists()


def test_crafted_pickle_as_head_checkpoint_is_refused_without_running(tmp_path):
    path, target = crafted(tmp_path, 'head.pt')
    cfg = Config(dict(backbone=dict(type='OpenCLIPBackbone', model='ovseg-tiny'),
                      method=dict(type='CLIP')))
    with pytest.raises(CheckpointError, match='refusing to load head checkpoint'):
        load_head(cfg, path)
    assert not target.exists()
    # ... and through the CLI: one line, exit code 2, no traceback
    out = subprocess.run([sys.executable, '-m', 'ovseg_bench.cli', 'test',
                          os.path.join(REPO, 'configs/clip/clip_tiny_synth.py'),
                          '--checkpoint', str(path), '--dataset', 'synth_voc',
                          '--work-dir', str(tmp_path / 'w')],
                         capture_output=True, text=True, cwd=tmp_path,
                         env=dict(os.environ, PYTHONPATH=REPO))
    assert out.returncode == 2, out.stderr
    assert not target.exists()
    err = out.stderr.strip().splitlines()
    assert err[-1].startswith(f'ovseg-bench: error: refusing to load head checkpoint '
                              f'(--checkpoint) {path}')
    assert 'Traceback' not in out.stderr


def test_damaged_files_fail_naming_the_file(tmp_path):
    good = tmp_path / 'good.pt'
    torch.save({'w': torch.arange(1000.)}, good)
    data = good.read_bytes()
    (tmp_path / 'cut.pt').write_bytes(data[:len(data) // 2])
    (tmp_path / 'garbage.pt').write_bytes(os.urandom(512))
    for name in ('cut.pt', 'garbage.pt'):
        with pytest.raises(CheckpointError, match=rf'cannot read weights {tmp_path / name}: '):
            load(tmp_path / name, 'weights')
    assert torch.equal(load(good)['w'], torch.arange(1000.))
    with pytest.raises(CheckpointError, match='cannot read CLIP checkpoint'):
        OpenCLIPBackbone('ovseg-tiny', pretrained=str(tmp_path / 'garbage.pt'))


def test_head_checkpoint_of_another_method_names_the_keys(tmp_path):
    cfg = Config(dict(backbone=dict(type='OpenCLIPBackbone', model='ovseg-tiny'),
                      method=dict(type='PACL')))
    torch.save(load_head(Config(dict(cfg, method=dict(type='CLIP')))).state_dict(),
               tmp_path / 'clip_head.pt')
    with pytest.raises(CheckpointError, match=r'does not fit PACL on this backbone: \d+ missing '
                                              r'keys \(.*another method'):
        load_head(cfg, tmp_path / 'clip_head.pt')


def test_crafted_training_checkpoint_is_skipped_by_resume_without_running(tmp_path):
    from ovseg_bench.engine.trainer import resumable_checkpoint
    torch.save({'state_dict': {'w': torch.zeros(1)}}, tmp_path / 'iter_2.pth')
    path, target = crafted(tmp_path, 'iter_4.pth')
    assert resumable_checkpoint(tmp_path) == str(tmp_path / 'iter_2.pth')
    assert not target.exists()


def test_crafted_pickle_in_a_transformers_folder_is_refused_without_running(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'hf_helpers', os.path.join(REPO, 'tests/backbones/test_backbones.py'))
    helpers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helpers)
    from ovseg_bench.backbones import HFCLIPBackbone
    folder = helpers.make_hf_folder(tmp_path / 'hf')
    (folder / 'model.safetensors').unlink()
    path, target = crafted(tmp_path)
    path.rename(folder / 'pytorch_model.bin')
    with pytest.raises(CheckpointError, match=rf'refusing to load the weights in {folder}'):
        HFCLIPBackbone(str(folder))
    assert not target.exists()
