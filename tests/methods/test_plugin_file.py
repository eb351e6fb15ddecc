"""A method plugin in one file outside the repository, with its config outside ``configs/``,
written exactly as ``docs/plugin_contract.md`` shows them: ``ovseg-bench check`` passes it and
``ovseg-bench --plugin FILE bench`` trains and scores it in a tiny matrix on the synthetic
world (a subprocess each, as a user runs them)."""
import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / 'docs' / 'plugin_contract.md'


def doc_files():
    """``{name: text}`` of the blocks the docs mark ``<!-- file: NAME -->``."""
    blocks = re.findall(r'<!-- file: (\S+) -->\n```\w*\n(.*?)```', DOC.read_text(), re.S)
    return dict(blocks)


@pytest.fixture
def plugin_dir(tmp_path, synth_root):
    """The docs' plugin and config in a folder of their own, beside the synthetic world."""
    files = doc_files()
    assert set(files) == {'kkclip.py', 'kkclip_tiny_synth.py'}, sorted(files)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / 'data').mkdir()
    os.symlink(synth_root, tmp_path / 'data' / 'synth')
    return tmp_path


def cli(args, cwd):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get('PYTHONPATH')])]))
    return subprocess.run([sys.executable, '-m', 'ovseg_bench.cli', *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_a_plugin_file_outside_the_repo_passes_check_and_runs_in_bench(plugin_dir):
    check = cli(['--plugin', 'kkclip.py', 'check', 'kkclip_tiny_synth.py',
                 '--dataset', 'synth_voc'], plugin_dir)
    assert check.returncode == 0, check.stdout + check.stderr
    for name in ('described', 'dense', 'training', 'evaluation'):
        assert f'ok    {name}' in check.stdout, check.stdout
    assert 'KKCLIP: meets the plugin contract' in check.stdout

    (plugin_dir / 'matrix.py').write_text(
        "methods = ['KKCLIP']\n"
        "backbones = [dict(type='OpenCLIPBackbone', model='ovseg-tiny', pretrained=None)]\n"
        "train = dict(iters=2, batch_size=2, num_workers=0, log_interval=1,\n"
        "             checkpoint_interval=2, warmup_iters=1)\n"
        "datasets = ['synth_voc']\n"
        "seeds = [0]\n"
        "train_workers = 1\n"
        "out_dir = 'bench'\n")
    bench = cli(['--plugin', 'kkclip.py', 'bench', 'matrix.py', '--no-leaderboard'], plugin_dir)
    assert bench.returncode == 0, bench.stdout + bench.stderr
    with open(plugin_dir / 'bench' / 'results.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    assert [(r['method'], r['dataset']) for r in rows] == [('KKCLIP', 'synth_voc')]
    row = rows[0]
    assert row['train_data'] != 'none'          # the matrix trained it before scoring
    assert 0.0 <= float(row['mIoU']) <= 100.0
    import hashlib
    assert row['method_source_sha'] == hashlib.sha256(
        (plugin_dir / 'kkclip.py').read_bytes()).hexdigest()


@pytest.mark.slow
def test_a_broken_plugin_fails_check_naming_the_rule(plugin_dir):
    """A parameter that forward_train never uses: the gradient check names it, exit 1."""
    text = (plugin_dir / 'kkclip.py').read_text().replace(
        "        self.log_temperature = nn.Parameter(",
        "        self.unused = nn.Linear(2, 2)\n        self.log_temperature = nn.Parameter(")
    (plugin_dir / 'kkclip.py').write_text(text)
    check = cli(['--plugin', 'kkclip.py', 'check', 'kkclip_tiny_synth.py',
                 '--dataset', 'synth_voc'], plugin_dir)
    assert check.returncode == 1, check.stdout + check.stderr
    assert 'FAIL  training: KKCLIP: 2 trainable parameters get no gradient' in check.stdout
    assert 'unused.weight' in check.stdout


@pytest.mark.slow
def test_the_contract_tests_check_a_plugin_file_given_to_pytest(plugin_dir):
    """``pytest tests/methods/test_contract.py --plugin FILE`` adds the plugin to every check."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get('PYTHONPATH')])]))
    out = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
         str(REPO / 'tests' / 'methods' / 'test_contract.py'),
         '--plugin', str(plugin_dir / 'kkclip.py'), '-k', 'KKCLIP and not evaluator', '-rA'],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    passed = re.findall(r'PASSED \S+\[KKCLIP\]', out.stdout)
    assert len(passed) == 4, out.stdout     # described, dense, gradient, trains


@pytest.mark.parametrize('text, message', [
    (None, 'config not found: '),
    ("backbone = dict(type='OpenCLIPBackbone', model='ovseg-tiny')\n",
     'has no method with a type'),
    ("_base_ = ['_base_/backbones/tiny_synth.py']\nmethod = dict(type='MaskClip')\n",
     "unknown method 'MaskClip'. Did you mean MaskCLIP?"),
    ("_base_ = ['_base_/backbones/tiny_synth.py']\nmethod = dict(type='MaskCLIP')\n",
     'names no `datasets`; pass --dataset NAME'),
])
def test_check_rejects_a_bad_config_in_one_line(tmp_path, capsys, text, message):
    """In this process: nothing is registered (a plugin would stay for the session)."""
    from ovseg_bench.cli import main
    config = tmp_path / 'bad.py'
    if text is not None:
        config.write_text(text)
    assert main(['check', str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('ovseg-bench: error: ') and message in err and '\n' not in err, err
