"""The project works installed as a wheel: ``pip install .`` (non-editable) into a fresh venv,
then ``ovseg-bench list`` and ``ovseg-bench test`` on the synthetic world from a folder that is
not the repository (the configs come from the package; the built-in methods are
``ovseg_bench_methods``, no top-level ``methods``). Versions are pinned to this environment's
(``uv pip freeze``) so the install comes from the local uv cache, mmcv from its cached wheel."""
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WHEELS = Path(os.environ.get('WHEELS', Path.home() / '.cache' / 'ovseg_bench' / 'wheels'))


def run(cmd, cwd, env=None, timeout=900):
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=timeout)
    assert out.returncode == 0, f'{cmd}:\n{out.stdout}\n{out.stderr}'
    return out.stdout


@pytest.mark.slow
def test_wheel_install_lists_and_evaluates(tmp_path, synth_root):
    uv = [sys.executable, '-m', 'uv']
    if subprocess.run(uv + ['--version'], capture_output=True).returncode != 0:
        uv = ['python3', '-m', 'uv']           # where the Makefile installs it
    venv = tmp_path / 'venv'
    run(uv + ['venv', '-q', '--python', sys.executable, venv], tmp_path)
    py = venv / 'bin' / 'python'
    frozen = run(uv + ['pip', 'freeze', '--python', sys.executable], tmp_path)
    pins = []
    for line in frozen.splitlines():
        name = line.split('==')[0].split(' @ ')[0].strip()
        if line and not line.startswith('-e') and not name.startswith('ovseg'):
            # a wheel installed from a file (mmcv): its version, found in --find-links
            pins.append(f'{name}=={version(name)}' if ' @ ' in line else line)
    (tmp_path / 'pins.txt').write_text('\n'.join(pins) + '\n')
    run(uv + ['pip', 'install', '-q', '--python', py, '-c', tmp_path / 'pins.txt',
              '--find-links', WHEELS, REPO], tmp_path)

    work = tmp_path / 'elsewhere'
    (work / 'data').mkdir(parents=True)
    os.symlink(synth_root, work / 'data' / 'synth')
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    where = run([py, '-c', 'import ovseg_bench, ovseg_bench_methods, importlib.util;'
                 'print(ovseg_bench.__file__); print(importlib.util.find_spec("methods"))'],
                work, env)
    assert str(venv) in where.splitlines()[0] and where.splitlines()[1] == 'None', where
    listing = run([venv / 'bin' / 'ovseg-bench', 'list'], work, env)
    assert 'MaskCLIP' in listing and 'synth_voc' in listing
    out = run([venv / 'bin' / 'ovseg-bench', 'test', 'configs/maskclip/maskclip_tiny_synth.py',
               '--dataset', 'synth_voc', '--cfg-options', 'backbone.pretrained=None'],
              work, env)
    assert 'MaskCLIP' in out and 'mIoU' in out
    assert (work / 'work_dirs' / 'maskclip_tiny_synth' / 'results.csv').is_file()
