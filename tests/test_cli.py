import subprocess
import sys

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
