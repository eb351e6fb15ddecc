"""The console: stage lines, progress bars (plain lines off a terminal), warnings once, and a
bench whose console stays short while every run's full log is in its work dir."""
import logging
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from ovseg_bench import console

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def plain(monkeypatch):
    """The console as in a CI log (not a terminal), a plain line at every update."""
    monkeypatch.setattr(console, 'live', lambda: False)
    monkeypatch.setattr(console, 'PLAIN_INTERVAL_S', 0.0)
    monkeypatch.delenv(console.VERBOSE_ENV, raising=False)
    console._BARS.apply(('close_all', ''))      # none left by earlier tests in this process


def test_eval_bar_off_a_terminal_is_plain_lines_of_images_rate_and_time_left(plain, capsys):
    hook = console.ProgressHook('MaskCLIP x voc21')
    runner = SimpleNamespace(test_dataloader=SimpleNamespace(dataset=[0] * 4))
    hook.before_test(runner)
    for i in range(4):
        hook.after_test_iter(runner, i, outputs=[object()])
    hook.after_test(runner)
    out = capsys.readouterr()
    lines = out.out.splitlines()
    # every image but the last (the stage line that follows says it is done), no \r frames
    assert [line.split(' [')[0] for line in lines] == [
        'MaskCLIP x voc21: 1/4 img', 'MaskCLIP x voc21: 2/4 img', 'MaskCLIP x voc21: 3/4 img']
    assert all('img/s' in line and '<' in line for line in lines)
    assert '\r' not in out.out + out.err and not console._BARS.bars


def test_a_run_that_raises_closes_its_bars(plain):
    hook = console.ProgressHook('MaskCLIP x voc21')
    hook.before_test(SimpleNamespace(test_dataloader=SimpleNamespace(dataset=[0] * 4)))
    assert len(console._BARS.bars) == 1
    console.ConsoleRunner._close_bars(SimpleNamespace(hooks=[hook]))   # the runner's finally
    assert not console._BARS.bars and hook.bar is None


def test_plain_lines_are_periodic_not_one_per_step(monkeypatch, capsys):
    monkeypatch.setattr(console, 'live', lambda: False)
    bar = console.Bar('SegCLIP train', 1000)
    for n in range(1, 1001):
        bar.update(n, 'loss 1.5')
    bar.close()
    assert capsys.readouterr().out == ''       # all within the first 30 s: no line at all


def _record(level, text, path):
    return logging.LogRecord('x', level, path, 1, text, None, None)


def test_framework_chatter_hidden_project_warnings_and_errors_shown_once(monkeypatch):
    monkeypatch.delenv(console.VERBOSE_ENV, raising=False)
    monkeypatch.setattr(console, '_said', set())
    mmengine = os.path.join(console._FRAMEWORK_DIRS[0], 'runner', 'runner.py')
    ours = os.path.join(REPO, 'ovseg_bench', 'backbones', 'open_clip.py')
    shown = console._SHOWN.filter
    assert not shown(_record(logging.INFO, 'System environment: ...', mmengine))
    assert not shown(_record(logging.WARNING, '"FileClient" will be deprecated', mmengine))
    assert not shown(_record(logging.INFO, 'loaded the weights', ours))
    assert shown(_record(logging.WARNING, 'the weights are RANDOM', ours))
    assert not shown(_record(logging.WARNING, 'the weights are RANDOM', ours))   # once
    assert shown(_record(logging.ERROR, 'loss became non-finite', mmengine))
    monkeypatch.setenv(console.VERBOSE_ENV, '1')
    assert shown(_record(logging.INFO, 'System environment: ...', mmengine))


MATRIX = '''
methods = ['CLIP', 'MaskCLIP']
method_configs = {repo!r} + '/configs/*/*_tiny_synth.py'
backbones = [dict(type='OpenCLIPBackbone', model='ovseg-tiny', pretrained=None)]
protocol = dict(templates='single', num_workers=0, text_cache={text!r})
train = dict(iters=2, batch_size=4, num_workers=0, log_interval=1, checkpoint_interval=2)
datasets = ['synth_voc']
data_root = {data!r}
seeds = [0]
train_workers = 1
save_predictions = 0
out_dir = {out!r}
'''


def test_bench_console_is_short_and_the_full_logs_are_in_the_work_dirs(tmp_path, synth_root):
    """A matrix with a training and two evaluations: a screenful at most, no mmengine dump
    (environment, config, hooks) on the console, all of it in the runs' log files."""
    (tmp_path / 'data').mkdir()
    (tmp_path / 'data' / 'synth').symlink_to(synth_root)   # the configs' own training data
    matrix = tmp_path / 'matrix.py'
    matrix.write_text(MATRIX.format(repo=REPO, text=str(tmp_path / 'text'),
                                    data=str(synth_root), out=str(tmp_path / 'bench')))
    env = dict(os.environ, PYTHONPATH=REPO)
    out = subprocess.run([sys.executable, '-m', 'ovseg_bench.cli', 'bench', str(matrix)],
                         cwd=tmp_path, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout + out.stderr
    lines = text.splitlines()
    assert len(lines) <= 20, text
    for dump in ('System environment', 'Config:', 'Hooks will be executed', 'Iter(train)',
                 'FileClient', 'UserWarning'):
        assert dump not in text
    assert '\r' not in text
    assert 'CLIP: trained in' in text and 'MaskCLIP x synth_voc: mIoU' in text
    # the warning that matters, once, though the training and both evaluations build it
    assert sum('weights are RANDOM' in line for line in lines) == 1
    train_log, = [p.read_text() for p in (tmp_path / 'work_dirs').glob('*/*/*.log')]
    assert 'System environment' in train_log and 'Iter(train) [2/2]' in train_log
    eval_logs = list((tmp_path / 'bench' / 'eval').glob('*/synth_voc/*/*.log'))
    assert len(eval_logs) == 2 and all('System environment' in p.read_text() for p in eval_logs)
