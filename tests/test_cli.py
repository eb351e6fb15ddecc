import subprocess
import sys

import pytest

from ovseg_bench.cli import main


def test_list_prints_methods_backbones_datasets(capsys):
    assert main(['list']) == 0
    out = capsys.readouterr().out
    for expected in ['methods:', 'MaskCLIP', 'backbones:', 'OpenCLIPBackbone', 'datasets:',
                     'synth_voc', 'voc21', 'ade150', 'imagenet80 (80)']:
        assert expected in out


def test_bad_input_is_one_clear_line(capsys, tmp_path):
    assert main(['test', str(tmp_path / 'missing.py')]) == 2
    assert 'config not found' in capsys.readouterr().err


def test_console_entry_point_runs():
    out = subprocess.run([sys.executable, '-m', 'ovseg_bench.cli', '-h'], capture_output=True,
                         text=True, check=True).stdout
    assert 'make-synthetic' in out and 'train' in out


REPO = __import__('pathlib').Path(__file__).resolve().parents[1]
MASKCLIP = str(REPO / 'configs/maskclip/maskclip_tiny_synth.py')
OPTIONS = ['--cfg-options', 'backbone.pretrained=None', 'protocol.text_cache=None',
           'protocol.templates=single']


def error_line(capsys, argv):
    """Run the CLI in-process: exit code 2 and one error line (no traceback); the line."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith('ovseg-bench: error: '), err
    assert not any('Traceback' in line for line in err)
    return err[-1][len('ovseg-bench: error: '):]


def test_config_and_option_errors_name_the_file_and_key(capsys, tmp_path):
    bad = tmp_path / 'bad.py'
    bad.write_text('method = dict(type="MaskCLIP"\n')
    assert error_line(capsys, ['test', str(bad)]) == \
        f"config {bad} has a syntax error: '(' was never closed (line 1)"
    assert error_line(capsys, ['test', MASKCLIP, *OPTIONS, 'protocol.short_side=abc']) == (
        "config key protocol.short_side must be a number (like 96), got 'abc'; fix the value "
        'given for it (--cfg-options protocol.short_side=...)')
    line = error_line(capsys, ['train', str(REPO / 'configs/clip/clip_tiny_synth.py'),
                               '--cfg-options', 'train.max_keep_ckpts=all'])
    assert line.startswith("config key train.max_keep_ckpts must be a number (like 3), got 'all'")
    assert error_line(capsys, ['test', MASKCLIP, *OPTIONS, 'method.type=SegClip']).startswith(
        "unknown method 'SegClip'. Did you mean SegCLIP? Valid: ")
    with pytest.raises(FileNotFoundError):           # --debug: the traceback, not the line
        main(['--debug', 'test', str(tmp_path / 'missing.py')])


def test_plugin_errors_are_one_line(capsys, tmp_path):
    assert error_line(capsys, ['--plugin', str(tmp_path / 'nope.py'), 'list']) == \
        f'plugin file not found: {tmp_path / "nope.py"}'
    boom = tmp_path / 'boom.py'
    boom.write_text('raise RuntimeError("boom")\n')
    assert error_line(capsys, ['--plugin', str(boom), 'list']) == \
        f'plugin {boom} failed to import: RuntimeError: boom (--debug shows the traceback)'
    dup = tmp_path / 'dup.py'
    dup.write_text('from ovseg_bench.registry import METHODS\n'
                   'from ovseg_bench.head import MethodHead\n'
                   '@METHODS.register_module()\nclass SegCLIP(MethodHead):\n    pass\n')
    assert error_line(capsys, ['--plugin', str(dup), 'list']).startswith(
        f'plugin {dup}: SegCLIP is already registered in method')


def test_output_data_and_worker_errors_are_one_line(capsys, tmp_path, synth_root):
    import shutil
    (tmp_path / 'file').write_text('')
    line = error_line(capsys, ['test', MASKCLIP, '--dataset', 'synth_voc', '--data-root',
                               str(synth_root), '--out', str(tmp_path / 'file' / 'r.csv'),
                               *OPTIONS])
    assert line.startswith(f'cannot write results into {tmp_path / "file"} (')
    real = tmp_path / 'real'
    (real / 'VOCdevkit' / 'VOC2012').mkdir(parents=True)
    assert error_line(capsys, ['make-synthetic', '--out', str(real)]) == (
        f'{real} already holds VOCdevkit/VOC2012 but no synth_world.json: not overwriting what '
        f'may be real data; choose another --out')
    # An image listed in the split but missing, met in a DataLoader worker process: the
    # worker's traceback is reduced to its message.
    root = tmp_path / 'data'
    shutil.copytree(synth_root / 'VOCdevkit', root / 'VOCdevkit')
    split = root / 'VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt'
    missing = root / f'VOCdevkit/VOC2012/JPEGImages/{split.read_text().split()[1]}.jpg'
    missing.unlink()
    assert error_line(capsys, ['test', MASKCLIP, '--dataset', 'synth_voc', '--data-root',
                               str(root), '--work-dir', str(tmp_path / 'w'), *OPTIONS,
                               'protocol.num_workers=2']) == (
        f'image {missing} not found (listed in the split); check the data root with '
        f'`ovseg-bench check-data ROOT`')
