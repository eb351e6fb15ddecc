"""The matrix runner: atomic rows, resume after a kill, slices, failures, plugins."""
import csv
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from mmengine.config import Config

from ovseg_bench.bench import matrix as M
from ovseg_bench.bench import results
from ovseg_bench.bench import runner
from ovseg_bench.bench import trainings as T
from ovseg_bench.bench.matrix import cell_configs, parse_only
from ovseg_bench.bench.runner import Progress, run_matrix
from ovseg_bench.bench.trainings import fingerprint, is_cached
from ovseg_bench.registry import load_plugin_file

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLUGIN = '''
import torch.nn.functional as F
from ovseg_bench.head import MethodHead
from ovseg_bench.registry import METHODS


@METHODS.register_module(force=True)
class OutsidePlugin(MethodHead):
    """A training-free plugin that lives outside methods/ (std patch tokens vs text)."""
    trainable = False

    def predict_dense(self, images, class_embeds):
        patch = F.normalize(self.backbone.forward_dense(images).patch, dim=-1)
        return (patch @ class_embeds.t()).permute(0, 3, 1, 2)
'''


def write_matrix(tmp_path, synth_root, methods, datasets):
    path = tmp_path / 'matrix.py'
    path.write_text(f'''
methods = {methods!r}
method_configs = {REPO!r} + '/configs/*/*_tiny_synth.py'
plugin_base = [{REPO!r} + '/configs/maskclip/maskclip_tiny_synth.py']
backbones = [dict(type='OpenCLIPBackbone', model='ovseg-tiny', pretrained=None)]
protocol = dict(templates='single', num_workers=0, text_cache={str(tmp_path / 'text')!r})
datasets = {datasets!r}
data_root = {str(synth_root)!r}
seeds = [0]
save_predictions = 2
out_dir = {str(tmp_path / 'bench')!r}
''')
    return path


def test_kill_mid_matrix_keeps_rows_and_rerun_completes_only_missing(tmp_path, synth_root):
    datasets = ['synth_voc', 'synth_context', 'synth_coco', 'synth_ade']
    matrix = write_matrix(tmp_path, synth_root, ['MaskCLIP'], datasets)
    csv_path = tmp_path / 'bench' / 'results.csv'
    cmd = [sys.executable, '-m', 'ovseg_bench.cli', 'bench', str(matrix), '--no-leaderboard']
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while time.time() < deadline and len(results.read_rows(csv_path)) < 1:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rows = results.read_rows(csv_path)  # a valid CSV with every finished row
    assert 1 <= len(rows) < len(datasets), 'kill came too late to test resuming'
    first = rows[0]
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    after = results.read_rows(csv_path)
    assert sorted(r['dataset'] for r in after) == sorted(datasets)
    assert [r for r in after if r['dataset'] == first['dataset']][0]['timestamp'] == \
        first['timestamp'], 'a finished cell was run again'
    assert out.count(': mIoU ') == len(datasets) - len(rows)     # one line per evaluated cell
    # And once everything is there, nothing is left to do.
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert 'nothing to do' in out


def test_only_slice_and_force(tmp_path, synth_root, capsys):
    matrix = write_matrix(tmp_path, synth_root, ['MaskCLIP'], ['synth_voc', 'synth_ade'])
    assert run_matrix(matrix, only='dataset=synth_ade') == []
    rows = results.read_rows(tmp_path / 'bench' / 'results.csv')
    assert [r['dataset'] for r in rows] == ['synth_ade']
    stamp = rows[0]['timestamp']
    time.sleep(1.1)
    run_matrix(matrix, only='dataset=synth_ade', force=True)
    rows = results.read_rows(tmp_path / 'bench' / 'results.csv')
    assert rows[0]['timestamp'] != stamp
    assert run_matrix(matrix, only='dataset=synth_ade') == []      # same config: nothing to do
    assert results.read_rows(tmp_path / 'bench' / 'results.csv') == rows
    # A changed protocol is another config: the cell reruns and its row is replaced.
    matrix.write_text(matrix.read_text() + "protocol['short_side'] = 48\n")
    run_matrix(matrix, only='dataset=synth_ade')
    after = results.read_rows(tmp_path / 'bench' / 'results.csv')
    assert len(after) == 1 and after[0]['short_side'] == '48'
    with pytest.raises(KeyError, match='method, backbone'):
        parse_only('methd=MaskCLIP')


def test_failing_cell_is_reported_and_the_rest_go_on(tmp_path, synth_root):
    # coco_object has no instance masks in the synthetic world: that cell fails alone
    matrix = write_matrix(tmp_path, synth_root, ['MaskCLIP'], ['synth_voc', 'coco_object'])
    failures = run_matrix(matrix)
    assert [(m, d) for m, d, _ in failures] == [('MaskCLIP', 'coco_object')]
    assert [r['dataset'] for r in results.read_rows(tmp_path / 'bench' / 'results.csv')] == \
        ['synth_voc']


def test_plugin_file_joins_default_matrix_and_leaderboard(tmp_path, synth_root):
    plugin = tmp_path / 'outside_plugin.py'
    plugin.write_text(PLUGIN)
    load_plugin_file(plugin)
    default = Config.fromfile(os.path.join(REPO, 'configs/bench/default.py'))
    default.plugin_base = [os.path.join(REPO, p) for p in default.plugin_base]
    assert 'OutsidePlugin' in {c.method.type for c in cell_configs(default)}
    # Through the CLI, as a user would: --plugin, then the leaderboard shows it.
    matrix = write_matrix(tmp_path, synth_root, 'all', ['synth_voc'])
    subprocess.run([sys.executable, '-m', 'ovseg_bench.cli', '--plugin', str(plugin), 'bench',
                    str(matrix), '--only', 'method=OutsidePlugin'], cwd=tmp_path, check=True,
                   capture_output=True)
    board = (tmp_path / 'bench' / 'leaderboard.md').read_text()
    assert 'OutsidePlugin' in board
    with open(tmp_path / 'bench' / 'leaderboard.csv') as f:
        assert any(r['method'].startswith('OutsidePlugin') for r in csv.DictReader(f))


def test_cached_run_is_reused_only_for_same_config_and_starting_weights(tmp_path):
    weights = tmp_path / 'backbone.pt'
    weights.write_bytes(b'pretrained v1')
    cfg = Config(dict(backbone=dict(type='OpenCLIPBackbone', pretrained=str(weights)),
                      method=dict(type='SegCLIP'), train=dict(iters=10, seed=0),
                      protocol=dict(short_side=64), work_dir=str(tmp_path / 'run')))
    (tmp_path / 'run').mkdir()
    (tmp_path / 'run' / 'head.pt').write_bytes(b'head')
    assert not is_cached(cfg, 'head.pt')                    # no fingerprint: unknown origin
    (tmp_path / 'run' / 'fingerprint.txt').write_text(fingerprint(cfg))
    assert is_cached(cfg, 'head.pt')
    assert not is_cached(cfg, 'missing.pt')
    cfg.protocol.short_side = 128                           # evaluation only: same run
    assert is_cached(cfg, 'head.pt')
    cfg.train.iters = 20                                    # another schedule: stale
    assert not is_cached(cfg, 'head.pt')
    cfg.train.iters = 10
    weights.write_bytes(b'pretrained v2')                   # the backbone was retrained: stale
    assert not is_cached(cfg, 'head.pt')


def test_cached_run_is_stale_when_its_method_code_changes(tmp_path, monkeypatch):
    cfg = Config(dict(backbone=dict(type='OpenCLIPBackbone', model='ovseg-tiny'),
                      method=dict(type='SegCLIP'), train=dict(iters=10), work_dir=str(tmp_path)))
    (tmp_path / 'head.pt').write_bytes(b'head')
    (tmp_path / 'fingerprint.txt').write_text(fingerprint(cfg))
    assert is_cached(cfg, 'head.pt')
    edited = SimpleNamespace(source_sha='0' * 64)           # methods/segclip.py edited
    monkeypatch.setattr(T, 'method_info', lambda name: edited)
    assert not is_cached(cfg, 'head.pt')


def test_cached_run_is_stale_when_its_model_config_file_changes(tmp_path):
    arch = tmp_path / 'tiny.json'
    arch.write_text('{"embed_dim": 128}')
    cfg = Config(dict(backbone=dict(type='OpenCLIPBackbone', model=str(arch)),
                      method=dict(type='CLIP'), train=dict(iters=10), work_dir=str(tmp_path)))
    (tmp_path / 'backbone.pt').write_bytes(b'weights')
    (tmp_path / 'fingerprint.txt').write_text(fingerprint(cfg))
    assert is_cached(cfg, 'backbone.pt')
    arch.write_text('{"embed_dim": 64}')                    # same name, another architecture
    assert not is_cached(cfg, 'backbone.pt')
    # the project's own configs are found by name
    assert T.model_config_file(dict(model='ovseg-tiny')).name == 'ovseg-tiny.json'
    assert T.model_config_file(dict(model='ViT-B-16')) is None


def test_progress_estimates_evaluation_apart_from_training(monkeypatch, capsys):
    clock = iter([0.0, 0.0, 660.0])    # start; first line; after a 600 s training and a 60 s eval
    monkeypatch.setattr(runner.time, 'perf_counter', lambda: next(clock))
    progress = Progress(total=4, trainings=2)
    progress.say('A: training')
    progress.trained()
    progress.evaluated(60.0)                # one evaluation took 60 s of the 660
    progress.say('A x d1: mIoU 1.00')
    first, second = capsys.readouterr().out.splitlines()
    assert first == '[0/4 | 0.0 min | estimating + 2 training run(s)] A: training'
    # 3 evaluations of 60 s left, not 3 x 660 s; one training still ahead
    assert second == ('[1/4 | 11.0 min | 3.0 min of evaluation left + 1 training run(s)] '
                      'A x d1: mIoU 1.00')


def test_warm_starts_every_worker_beside_a_busy_one():
    with T.Trainings(workers=2) as trainings:
        busy = trainings._pool().submit(time.sleep, 2)   # as a pretraining would be
        pids = {f.result() for f in trainings.warm()}
        assert len(trainings.pool._processes) == 2, 'the idle worker was not started'
        assert os.getpid() not in pids
        busy.result()


def test_trainings_run_side_by_side_and_cells_are_evaluated(tmp_path, synth_root):
    (tmp_path / 'data').mkdir()
    (tmp_path / 'data' / 'synth').symlink_to(synth_root)   # the configs' own training data
    matrix = write_matrix(tmp_path, synth_root, ['PACL', 'ViLSeg', 'MaskCLIP'], ['synth_voc'])
    matrix.write_text(matrix.read_text() + '''
train = dict(iters=2, batch_size=4, num_workers=0, log_interval=1, checkpoint_interval=2)
train_workers = 2
''')
    cmd = [sys.executable, '-m', 'ovseg_bench.cli', 'bench', str(matrix), '--no-leaderboard',
           '-v']
    plan = subprocess.run(cmd + ['--dry-run'], cwd=tmp_path, capture_output=True, text=True,
                          check=True).stdout
    assert 'PACL-ovseg-tiny-s0_' in plan and 'to train' in plan
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    rows = {r['method']: r for r in results.read_rows(tmp_path / 'bench' / 'results.csv')}
    assert sorted(rows) == ['MaskCLIP', 'PACL', 'ViLSeg']
    for method, work_dir in (('PACL', 'pacl_tiny_synth'), ('ViLSeg', 'vilseg_tiny_synth')):
        # Another backbone and schedule make another run: its own work_dir beside the config's.
        run = next((tmp_path / 'work_dirs').glob(f'{work_dir}_ovseg-tiny-*_train-*'))
        assert (run / 'head.pt').is_file() and float(rows[method]['train_time_s']) > 0
        # -v: each worker's log lines, streamed, carry its run's name.
        assert f'[{run.name}] ' in out and 'Iter(train) [2/2]' in out
    plan = subprocess.run(cmd + ['--dry-run'], cwd=tmp_path, capture_output=True, text=True,
                          check=True).stdout
    assert '0 evaluation(s) planned' in plan


def test_a_selector_or_name_matching_nothing_fails_before_any_run(tmp_path, synth_root):
    matrix = write_matrix(tmp_path, synth_root, ['MaskCLIP'], ['synth_voc'])
    with pytest.raises(KeyError, match=r'--only method=Nope matches no cell of the matrix. '
                                       r'Valid method values: MaskCLIP'):
        run_matrix(matrix, only='method=Nope')
    with pytest.raises(KeyError, match=r'--only dataset=synth_vocc matches no cell.* Did you '
                                       r'mean synth_voc\? Valid dataset values: synth_voc'):
        run_matrix(matrix, only='dataset=synth_vocc')
    for methods, datasets, expected in ((['SegClip'], ['synth_voc'], 'Did you mean SegCLIP?'),
                                        (['MaskCLIP'], ['synth_vocc'], 'Did you mean synth_voc')):
        with pytest.raises(KeyError, match=expected):
            run_matrix(write_matrix(tmp_path, synth_root, methods, datasets))
    assert not (tmp_path / 'bench' / 'results.csv').exists()


MICRO = dict(embed_dim=32,
             vision_cfg=dict(image_size=32, patch_size=8, width=32, layers=1, head_width=16),
             text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=2, layers=1))


class _Interrupt(Exception):
    pass


def test_interrupted_training_is_resumed_by_the_bench(tmp_path, synth_root, capsys):
    import json

    from mmengine.hooks import Hook

    from ovseg_bench.engine.trainer import build_runner

    class InterruptAfter(Hook):
        priority = 'LOWEST'

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            if runner.iter >= 2:
                raise _Interrupt
    model = tmp_path / 'micro.json'
    model.write_text(json.dumps(MICRO))
    cfg = Config(dict(
        backbone=dict(type='OpenCLIPBackbone', model=str(model)), method=dict(type='CLIP'),
        train_data=dict(type='CocoCaptionDataset', data_root=str(synth_root / 'coco'),
                        pipeline=[dict(type='RandomResizedCropRGB', size=32),
                                  dict(type='ToTensorRGB')]),
        train=dict(iters=4, batch_size=4, num_workers=0, warmup_iters=1, log_interval=1,
                   checkpoint_interval=2), work_dir=str(tmp_path / 'run')))
    # A stale run of another config in the same folder: its outputs are not taken for ours.
    (tmp_path / 'run').mkdir()
    (tmp_path / 'run' / 'iter_8.pth').write_bytes(b'another run')
    assert T.start_or_resume(cfg) is False            # a fresh run: stamped at its start
    assert (tmp_path / 'run' / 'fingerprint.txt').read_text() == fingerprint(cfg)
    assert not (tmp_path / 'run' / 'iter_8.pth').exists()
    interrupted = build_runner(cfg)
    interrupted.register_hook(InterruptAfter())
    with pytest.raises(_Interrupt):                        # killed after iteration 2
        interrupted.train()
    assert not is_cached(cfg, 'head.pt')
    capsys.readouterr()
    T.train_and_stamp(cfg)                            # the bench's rerun
    out = capsys.readouterr().out
    assert f'resuming the interrupted training in {tmp_path / "run"} from ' \
           f'{tmp_path / "run" / "iter_2.pth"}' in out
    assert is_cached(cfg, 'head.pt')
    logs = ''.join(p.read_text() for p in (tmp_path / 'run').glob('*/*.log'))
    assert 'resumed at iteration 2' in logs and 'Iter(train) [3/4]' in logs


def test_a_row_without_its_per_class_rows_is_redone(tmp_path, synth_root, monkeypatch):
    matrix = write_matrix(tmp_path, synth_root, ['MaskCLIP'], ['synth_voc'])
    csv_path = tmp_path / 'bench' / 'results.csv'
    calls = []

    def killed_before_the_row(path, rows, *args, **kwargs):   # a kill between the two files
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return append(path, rows, *args, **kwargs)
    append = results.append_rows
    monkeypatch.setattr(results, 'append_rows', killed_before_the_row)
    with pytest.raises(KeyboardInterrupt):
        run_matrix(matrix, out_dir=tmp_path / 'bench')
    assert [p.name for p in calls] == ['per_class.csv', 'results.csv']   # the row comes last
    assert results.read_rows(csv_path) == []
    monkeypatch.setattr(results, 'append_rows', append)
    run_matrix(matrix)
    assert len(results.read_rows(csv_path)) == 1
    # A row whose per-class rows are gone (older files) counts as unfinished too.
    (tmp_path / 'bench' / 'per_class.csv').unlink()
    cfgs = runner.plan_cells(Config.fromfile(matrix), csv_path, {}, False)
    assert [todo for _, todo in cfgs] == [['synth_voc']]


VARYING = ('eval_time_s', 'images_per_s', 'peak_mem_mb', 'timestamp')


def stable(rows):
    """Rows without the columns that differ between two runs of the same cell, by key."""
    return sorted(({k: v for k, v in r.items() if k not in VARYING} for r in rows),
                  key=results.row_key)


def test_shards_together_give_the_rows_of_the_unsharded_matrix(tmp_path, synth_root):
    matrix = write_matrix(tmp_path, synth_root, ['MaskCLIP', 'SCLIP', 'NACLIP'],
                          ['synth_voc', 'synth_ade'])
    env = dict(os.environ, PYTHONPATH=REPO)
    cmd = [sys.executable, '-m', 'ovseg_bench.cli', 'bench', str(matrix), '--no-leaderboard']
    plans = [subprocess.run(cmd + ['--dry-run', '--shard', s], cwd=tmp_path, env=env,
                            capture_output=True, text=True, check=True).stdout
             for s in ('1/2', '2/2')]
    cells = [[line.split('-')[0] for line in plan.splitlines()[1:-1]] for plan in plans]
    assert plans[0].startswith('shard 1/2:') and cells == [['MaskCLIP', 'NACLIP'], ['SCLIP']]
    # the two shards at once, as two tasks of a job array, into one results.csv
    shards = [subprocess.Popen(cmd + ['--shard', s], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
              for s in ('1/2', '2/2')]
    for proc in shards:
        out = proc.communicate(timeout=600)[0]
        assert proc.returncode == 0, out[-3000:]
        assert 'once every shard is done, `ovseg-bench leaderboard' in out
    sharded = results.read_rows(tmp_path / 'bench' / 'results.csv')
    assert run_matrix(matrix, out_dir=tmp_path / 'whole') == []
    whole = results.read_rows(tmp_path / 'whole' / 'results.csv')
    assert len(whole) == 6 and stable(sharded) == stable(whole)
    assert stable(results.read_rows(tmp_path / 'bench' / 'per_class.csv')) == \
        stable(results.read_rows(tmp_path / 'whole' / 'per_class.csv'))
    assert len(list((tmp_path / 'bench' / 'results').glob('*.json'))) == 6


def test_a_training_run_and_all_its_cells_stay_in_one_shard():
    def cfg(method, work_dir, cell, train=True):
        return Config(dict(method=dict(type=method), work_dir=work_dir, cell_name=cell,
                           train_data=dict(type='CocoCaptionDataset') if train else None))
    cells = [cfg('MaskCLIP', 'w/maskclip', 'maskclip', train=False),
             cfg('PACL', 'w/pacl_s0', 'pacl-a'), cfg('SCLIP', 'w/sclip', 'sclip', train=False),
             cfg('PACL', 'w/pacl_s1', 'pacl-s1'),
             cfg('PACL', 'w/pacl_s0', 'pacl-b'),     # another config training in the same run
             cfg('NACLIP', 'w/naclip', 'naclip', train=False)]
    parts = [M.shard_cells(cells, (k, 3)) for k in (1, 2, 3)]
    names = [[c.cell_name for c in part] for part in parts]
    assert sorted(sum(names, [])) == sorted(c.cell_name for c in cells)     # each exactly once
    assert ['pacl-a', 'pacl-b'] in [[n for n in part if n in ('pacl-a', 'pacl-b')]
                                    for part in names]
    # trainings dealt first: the two runs go to two shards
    assert [sum(T.needs_training(c) for c in part) > 0 for part in parts] == \
        [True, True, False]
    assert names == [[c.cell_name for c in M.shard_cells(cells, (k, 3))]
                     for k in (1, 2, 3)]                                    # deterministic
    assert M.shard_cells(cells, None) == cells


@pytest.mark.parametrize('value', ['3/2', 'x', '0/2', '1/', '1/2/3'])
def test_a_bad_shard_is_one_line(tmp_path, synth_root, capsys, value):
    from ovseg_bench.cli import main
    matrix = write_matrix(tmp_path, synth_root, ['MaskCLIP'], ['synth_voc'])
    assert main(['bench', str(matrix), '--shard', value]) == 2
    err = capsys.readouterr().err
    assert err == (f'ovseg-bench: error: --shard must be K/N with 1 <= K <= N, e.g. 2/4 for '
                   f'the second of four shards; got {value!r}\n')


APPENDER = '''
import sys
from ovseg_bench.bench import results
name, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    results.append_rows(sys.argv[3], [dict(method=name, dataset=f'd{i}', seed=0, mIoU=i)])
'''


def test_shards_appending_at_once_lose_no_row(tmp_path):
    """Processes racing to append to one results.csv (each append reads the file, adds its
    row and renames a new file over it): the lock makes every append see the others'."""
    csv_path = tmp_path / 'results.csv'
    env = dict(os.environ, PYTHONPATH=REPO)
    procs = [subprocess.Popen([sys.executable, '-c', APPENDER, f'shard{k}', '40',
                               str(csv_path)], env=env) for k in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    rows = results.read_rows(csv_path)
    assert sorted((r['method'], r['dataset']) for r in rows) == sorted(
        (f'shard{k}', f'd{i}') for k in range(3) for i in range(40))
