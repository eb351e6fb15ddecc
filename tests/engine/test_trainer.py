"""The common trainer on a micro CLIP and the tiny synthetic captions: loss terms, parameter
groups, the NaN guard, exact resume, config key checks, view checks, export, data order."""
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.hooks import Hook
from torch import nn

from ovseg_bench.engine import trainer as T
from ovseg_bench.engine.hooks import NonFiniteLossError, unwrap
from ovseg_bench.head import MethodHead
from ovseg_bench.registry import METHODS, load_plugins

MICRO = dict(embed_dim=32,
             vision_cfg=dict(image_size=32, patch_size=8, width=32, layers=1, head_width=16),
             text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=2, layers=1))


@pytest.fixture(scope='session')
def micro_model(tmp_path_factory):
    """An open_clip JSON config of a micro CLIP (1+1 layers, width 32, 32 px)."""
    path = tmp_path_factory.mktemp('models') / 'ovseg-micro-test.json'
    path.write_text(json.dumps(MICRO))
    return str(path)


def tiny_cfg(synth_root, micro_model, work_dir, method=None, pipeline=None, **train):
    t = dict(iters=4, batch_size=4, num_workers=0, lr=1e-3, warmup_iters=1, log_interval=1,
             checkpoint_interval=2, seed=0)
    t.update(train)
    return dict(
        backbone=dict(type='OpenCLIPBackbone', model=micro_model),
        method=method or dict(type='CLIP'),
        train_data=dict(type='CocoCaptionDataset', data_root=str(Path(synth_root) / 'coco'),
                        ann_file='annotations/captions_train2017.json', img_dir='train2017',
                        pipeline=pipeline or [dict(type='RandomResizedCropRGB', size=32,
                                                   scale=(0.5, 1.0), flip_prob=0.5),
                                              dict(type='ToTensorRGB')]),
        train=t, work_dir=str(work_dir))


class TwoLosses(MethodHead):
    """Test head: two loss terms and a logged metric; NaN from call ``nan_at`` on."""

    def __init__(self, backbone, nan_at=None, freeze_text=False):
        super().__init__(backbone)
        self.proj = nn.Linear(backbone.embed_dim, 4)
        self.nan_at = nan_at
        self.calls = 0
        if freeze_text:
            for name, p in backbone.named_parameters():
                if not name.startswith('model.visual.'):
                    p.requires_grad_(False)

    def forward_train(self, batch):
        self.calls += 1
        feats = self.backbone.encode_image(batch['images'])
        a = self.proj(feats).pow(2).mean()
        b = 0.1 * feats.pow(2).mean()
        if self.nan_at is not None and self.calls >= self.nan_at:
            a = a * float('nan')
        return dict(loss_a=a, loss_b=b, metric_m=torch.tensor(3.0))

    def predict_dense(self, images, class_embeds):
        raise NotImplementedError


class NeedsSuperpixels(TwoLosses):
    train_views = ('superpixels',)


@pytest.fixture
def test_methods():
    load_plugins()
    added = []
    for cls in (TwoLosses, NeedsSuperpixels):
        METHODS.register_module(module=cls, force=True)
        added.append(cls.__name__)
    yield
    for name in added:               # keep the registry clean for the contract tests
        METHODS.module_dict.pop(name, None)


def scalars(work_dir):
    files = sorted(Path(work_dir).glob('*/vis_data/scalars.json'))
    assert files, f'no scalars.json under {work_dir}'
    return [json.loads(line) for line in files[-1].read_text().splitlines()]


def test_loss_terms_are_summed_and_each_logged(synth_root, micro_model, tmp_path, test_methods):
    cfg = tiny_cfg(synth_root, micro_model, tmp_path / 'run', method=dict(type='TwoLosses'),
                   iters=2)
    out = T.train(cfg)
    rows = [r for r in scalars(tmp_path / 'run') if 'loss' in r]
    assert len(rows) == 2
    for row in rows:
        assert {'loss_a', 'loss_b', 'metric_m', 'lr'} <= set(row)
        assert row['loss'] == pytest.approx(row['loss_a'] + row['loss_b'], rel=1e-5)
        assert row['metric_m'] == pytest.approx(3.0)
    assert Path(out['head']).is_file() and Path(out['backbone']).is_file()
    assert list((tmp_path / 'run').glob('*/*.log'))            # the text log
    assert out['skipped_images'] == 0 and out['iters'] == 2


def test_backbone_lr_mult_and_frozen_params_left_out(micro_model, test_methods):
    model = T.TrainModel(dict(type='OpenCLIPBackbone', model=micro_model),
                         dict(type='TwoLosses', freeze_text=True))
    ctor = T.OVSegOptimConstructor(
        dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.1)),
        paramwise_cfg=dict(backbone_lr_mult=0.1))
    optimizer = ctor(model).optimizer
    in_optim = {id(p): g for g in optimizer.param_groups for p in g['params']}
    named = dict(model.head.named_parameters())
    frozen = [n for n, p in named.items() if not p.requires_grad]
    assert frozen and all(id(named[n]) not in in_optim for n in frozen)
    for name, p in named.items():
        if not p.requires_grad:
            continue
        group = in_optim[id(p)]
        want = 1e-4 if name.startswith('backbone.') else 1e-3
        assert group['lr'] == pytest.approx(want), name
        assert group['weight_decay'] == (0.1 if p.ndim >= 2 else 0.0), name
    assert [g['name'] for g in optimizer.param_groups] == [
        'head.decay', 'head.no_decay', 'backbone.decay', 'backbone.no_decay']


def test_custom_keys_and_frozen_patterns(micro_model, test_methods):
    """Name-pattern rules: a custom key sets its parameters' lr / weight decay (the longest
    matching key wins, over backbone_lr_mult); frozen patterns leave parameters untrained."""
    frozen = ('visual.conv1.', 'visual.positional_embedding')
    model = T.TrainModel(dict(type='OpenCLIPBackbone', model=micro_model),
                         dict(type='TwoLosses'), frozen=frozen)
    custom = {'visual.transformer.resblocks.0.': dict(lr_mult=1.0),
              'visual.transformer.resblocks.0.mlp.': dict(lr_mult=0.5, decay_mult=0.0),
              'visual.ln_post.': dict(lr_mult=2.0)}
    ctor = T.OVSegOptimConstructor(
        dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.1)),
        paramwise_cfg=dict(backbone_lr_mult=0.01, custom_keys=custom))
    optimizer = ctor(model).optimizer
    in_optim = {id(p): g for g in optimizer.param_groups for p in g['params']}
    named = dict(model.head.named_parameters())
    assert sorted(n for n, p in named.items() if not p.requires_grad) == [
        'backbone.model.visual.conv1.weight', 'backbone.model.visual.positional_embedding']
    for name, p in named.items():
        if not p.requires_grad:
            assert id(p) not in in_optim, name
            continue
        g = in_optim[id(p)]
        if '.resblocks.0.mlp.' in name and 'visual' in name:
            lr, wd = 5e-4, 0.0
        elif 'visual.transformer.resblocks.0.' in name:
            lr, wd = 1e-3, 0.1
        elif 'visual.ln_post.' in name:
            lr, wd = 2e-3, 0.1
        elif name.startswith('backbone.'):
            lr, wd = 1e-5, 0.1
        else:
            lr, wd = 1e-3, 0.1
        assert g['lr'] == pytest.approx(lr), name
        assert g['weight_decay'] == pytest.approx(wd if p.ndim >= 2 else 0.0), name
    assert 'visual.ln_post.no_decay' in [g['name'] for g in optimizer.param_groups]


@pytest.mark.parametrize('rule', ['frozen', 'custom_keys'])
def test_a_pattern_matching_nothing_fails(micro_model, test_methods, rule):
    bb = dict(type='OpenCLIPBackbone', model=micro_model)
    with pytest.raises(ValueError, match=rf"train.{rule}: \['visual.conv9'\] match no"):
        if rule == 'frozen':
            T.TrainModel(bb, dict(type='TwoLosses'), frozen=['visual.conv9'])
        else:
            T.param_groups(T.TrainModel(bb, dict(type='TwoLosses')).head, 1e-3, 0.1,
                           custom_keys={'visual.conv9': dict(lr_mult=1.0)})


def test_train_config_rules_reach_the_optimiser(synth_root, micro_model, tmp_path,
                                                test_methods):
    cfg = tiny_cfg(synth_root, micro_model, tmp_path / 'rules', method=dict(type='TwoLosses'),
                   backbone_lr_mult=0.0, frozen=['visual.conv1.'],
                   custom_keys={'visual.ln_post.': dict(lr_mult=1.0)})
    runner = T.build_runner(cfg)
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    groups = {g['name']: g for g in runner.optim_wrapper.optimizer.param_groups}
    head = unwrap(runner.model).head
    assert not head.backbone.model.visual.conv1.weight.requires_grad
    assert groups['visual.ln_post.no_decay']['lr'] == pytest.approx(1e-3)
    assert groups['backbone.decay']['lr'] == 0.0


AUTO_WRAPPER = 'AmpOptimWrapper' if torch.cuda.is_available() else 'OptimWrapper'


@pytest.mark.parametrize('precision,wrapper', [('fp32', 'OptimWrapper'),
                                               ('bf16', 'AmpOptimWrapper'),
                                               ('auto', AUTO_WRAPPER)])
def test_train_precision_picks_the_optimiser_wrapper(synth_root, micro_model, tmp_path,
                                                     precision, wrapper):
    from mmengine.config import Config
    cfg = Config(tiny_cfg(synth_root, micro_model, tmp_path / 'p', precision=precision))
    assert T.runner_kwargs(cfg)['optim_wrapper']['type'] == wrapper
    cfg.train.precision = 'fp16'
    with pytest.raises(ValueError, match="train.precision must be 'auto', 'fp32' or 'bf16'"):
        T.runner_kwargs(cfg)


def test_nonfinite_loss_stops_with_a_checkpoint(synth_root, micro_model, tmp_path,
                                                test_methods):
    cfg = tiny_cfg(synth_root, micro_model, tmp_path / 'nan',
                   method=dict(type='TwoLosses', nan_at=3), iters=6, checkpoint_interval=100)
    with pytest.raises(NonFiniteLossError, match=r'iteration 3: loss_a=nan') as err:
        T.train(cfg)
    ckpt = tmp_path / 'nan' / 'nonfinite_iter_3.pth'
    assert str(ckpt) in str(err.value)
    state = torch.load(ckpt, map_location='cpu', weights_only=False)
    assert state['meta']['nonfinite_iter'] == 3
    assert all(torch.isfinite(v).all() for v in state['state_dict'].values()
               if v.is_floating_point())             # saved before the bad update
    assert not (tmp_path / 'nan' / 'head.pt').exists()   # no export of a failed run


class _Interrupt(Exception):
    pass


class InterruptAfter(Hook):
    priority = 'LOWEST'             # after CheckpointHook has saved

    def __init__(self, n):
        self.n = n

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter >= self.n:
            raise _Interrupt


def test_resume_reaches_the_uninterrupted_weights(synth_root, micro_model, tmp_path):
    full = T.train(tiny_cfg(synth_root, micro_model, tmp_path / 'full'))
    cut = tiny_cfg(synth_root, micro_model, tmp_path / 'cut')
    runner = T.build_runner(cut)
    runner.register_hook(InterruptAfter(2))
    with pytest.raises(_Interrupt):
        runner.train()
    assert (tmp_path / 'cut' / 'iter_2.pth').is_file()
    assert not (tmp_path / 'cut' / 'head.pt').exists()
    resumed = T.train(cut, resume=True)
    assert resumed['iters'] == 4
    a = torch.load(full['head'], map_location='cpu')
    b = torch.load(resumed['head'], map_location='cpu')
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # ... and the run did learn something: the weights moved from the initial ones
    init = T.TrainModel(dict(type='OpenCLIPBackbone', model=micro_model), dict(type='CLIP'))
    assert not all(torch.equal(v, a[k]) for k, v in init.head.state_dict().items())


@pytest.mark.parametrize('where,bad,hint', [
    ('', 'metod', 'method'),
    ('train', 'lr_mult', 'backbone_lr_mult'),
    ('method', 'max_logit_scal', 'max_logit_scale'),
    ('backbone', 'pretrain', 'pretrained'),
    ('train_data', 'img_dirr', 'img_dir'),
    ('train_data.pipeline[0]', 'sizee', 'size'),
])
def test_unknown_key_fails_before_training(synth_root, micro_model, tmp_path, where, bad, hint):
    cfg = tiny_cfg(synth_root, micro_model, tmp_path / 'typo')
    target = cfg
    for part in filter(None, where.replace('[0]', '.0').split('.')):
        target = target[int(part)] if part.isdigit() else target[part]
    target[bad] = 1
    with pytest.raises(KeyError) as err:
        T.train(cfg)
    msg = str(err.value)
    assert repr(f'{where}.{bad}' if where else bad) in msg
    assert f'Did you mean {f"{where}." if where else ""}{hint}?' in msg
    assert not (tmp_path / 'typo').exists()          # nothing started


def test_unknown_types_fail_with_valid_names(synth_root, micro_model, tmp_path):
    cfg = tiny_cfg(synth_root, micro_model, tmp_path / 'x')
    cfg['train_data']['type'] = 'CocoCaptionDatset'
    with pytest.raises(KeyError, match='CocoCaptionDataset'):
        T.train(cfg)


def test_missing_views_fail_early(synth_root, micro_model, tmp_path, test_methods):
    cfg = tiny_cfg(synth_root, micro_model, tmp_path / 'views',
                   method=dict(type='NeedsSuperpixels'))
    with pytest.raises(ValueError, match=r"no \['superpixels'\].*Superpixels"):
        T.train(cfg)
    assert not list((tmp_path / 'views').glob('iter_*.pth'))


def test_data_order_is_a_function_of_seed_and_draw(synth_root):
    ds = T.SeededDraws(dict(type='CocoCaptionDataset', data_root=str(Path(synth_root) / 'coco'),
                            pipeline=[dict(type='RandomResizedCropRGB', size=16),
                                      dict(type='ToTensorRGB')]), seed=3)
    sampler = T.DrawSampler(ds, seed=3)
    first = [next(iter(sampler)) for _ in range(1)][0]
    seq = [x for _, x in zip(range(20), sampler)]
    assert seq[0] == first and sorted(i for i, _ in seq[:len(ds)]) == list(range(len(ds)))
    sampler.set_start(5)
    assert [x for _, x in zip(range(3), sampler)] == seq[5:8]
    a, b = ds[seq[4]], ds[seq[4]]
    assert torch.equal(a['images'], b['images']) and a['captions'] == b['captions']
    state = torch.get_rng_state()
    ds[seq[5]]
    assert torch.equal(state, torch.get_rng_state())       # global generators untouched


def test_preprocessor_normalises_only_image_views():
    pre = T.ViewNormalizer((10.0, 20.0, 30.0), (2.0, 2.0, 2.0),
                           ('images', 'global_crops', 'superpixels'))
    batch = dict(images=torch.full((2, 3, 4, 4), 30, dtype=torch.uint8),
                 global_crops=torch.full((2, 2, 3, 4, 4), 30, dtype=torch.uint8),
                 superpixels=torch.ones(2, 4, 4, dtype=torch.long),
                 captions=['a', 'b'], skipped_images=[], img_path=['x', 'y'])
    out = pre(batch, True)
    assert out['images'][:, 0].eq(10).all() and out['images'][:, 2].eq(0).all()
    assert out['global_crops'][:, :, 1].eq(5).all()
    assert out['superpixels'].dtype == torch.long and out['superpixels'].eq(1).all()
    assert 'skipped_images' not in out and 'img_path' not in out


def test_clip_method_loss_temperature_and_dense(micro_model):
    load_plugins()
    from ovseg_bench_methods.clip import CLIP
    from ovseg_bench.backbones import OpenCLIPBackbone
    torch.manual_seed(0)
    head = CLIP(OpenCLIPBackbone(micro_model))
    batch = dict(images=torch.randn(3, 3, 32, 32), captions=['a circle', 'a star', 'sand'])
    out = head.forward_train(batch)
    assert set(out) == {'loss_clip', 'logit_scale', 'acc_i2t', 'acc_t2i'}
    assert torch.isfinite(out['loss_clip'])
    out['loss_clip'].backward()
    assert head.backbone.model.logit_scale.grad is not None
    with torch.no_grad():
        head.backbone.model.logit_scale.fill_(math.log(1000.0))
    assert float(head.forward_train(batch)['logit_scale']) == pytest.approx(100.0)
    logits = head.predict_dense(torch.randn(2, 3, 32, 48),
                                torch.nn.functional.normalize(torch.randn(5, 32), dim=-1))
    assert logits.shape == (2, 5, 4, 6) and logits.abs().max() <= 1 + 1e-5


def test_export_loads_as_pretrained_and_zero_shot_runs(synth_root, micro_model, tmp_path):
    from ovseg_bench.backbones import OpenCLIPBackbone
    cfg = tiny_cfg(synth_root, micro_model, tmp_path / 'exp', iters=1)
    coco = Path(synth_root) / 'coco'
    cfg['zeroshot'] = dict(ann_file=str(coco / 'annotations/captions_val2017.json'),
                           img_dir=str(coco / 'val2017'), templates='single')
    out = T.train(cfg)
    bb = OpenCLIPBackbone(micro_model, pretrained=out['backbone'])
    head_sd = torch.load(out['head'], map_location='cpu')
    for k, v in bb.model.state_dict().items():
        assert torch.equal(v, head_sd[f'backbone.model.{k}'])
    zs = out['zeroshot']
    assert 0 <= zs['accuracy'] <= 100 and 0 < zs['chance'] < 100
    assert zs['n_classes'] == 8 and zs['n_images'] >= 1
    # chance = mean fraction of the thing classes present, from the JSON's classes keys
    data = json.loads((coco / 'annotations/captions_val2017.json').read_text())
    things = json.loads((Path(synth_root) / 'synth_world.json').read_text())['things']
    fracs = [len(set(i['classes']) & set(things)) / len(things) for i in data['images']]
    fracs = [f for f in fracs if f > 0]
    assert zs['chance'] == pytest.approx(100 * sum(fracs) / len(fracs))
    assert json.loads((tmp_path / 'exp' / 'zeroshot.json').read_text())['accuracy'] == \
        zs['accuracy']
    assert any('zeroshot/accuracy' in r for r in scalars(tmp_path / 'exp'))
    assert zs['stuff']['n_classes'] == 6 and 0 <= zs['stuff']['accuracy'] <= 100


def test_warmup_then_cosine_schedule():
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([dict(params=[p], lr=1.0), dict(params=[nn.Parameter(
        torch.zeros(1))], lr=0.1)])
    sched = T.WarmupCosineLR(opt, warmup_iters=2, total_iters=6)
    lrs = []
    for _ in range(6):
        lrs.append([g['lr'] for g in opt.param_groups])
        opt.step()
        sched.step()
    want = [0.5, 1.0] + [0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]
    assert [a for a, _ in lrs] == pytest.approx(want)
    assert [b for _, b in lrs] == pytest.approx([0.1 * w for w in want])   # multiplier kept


# ------------------------------------------------------------------------------ DDP
# Equivalent to:  torchrun --nproc_per_node=2 -m ovseg_bench.cli train CONFIG --launcher pytorch
# Two processes with batch 2 each see the same samples as one process with batch 4 (the
# sampler numbers draws over all ranks) and CLIP gathers the negatives of both ranks, so the
# distributed run must reach the single-process weights (up to float rounding). Takes ~30-60 s
# on 2 shared cores; set OVSEG_SKIP_DDP=1 to skip it.
REPO = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.skipif(bool(os.environ.get('OVSEG_SKIP_DDP')), reason='OVSEG_SKIP_DDP is set')
def test_two_gloo_processes_match_one_process(synth_root, tmp_path):
    model = tmp_path / 'ovseg-micro-ddp.json'
    model.write_text(json.dumps(MICRO))
    single = T.train(tiny_cfg(synth_root, str(model), tmp_path / 'single', iters=3,
                              batch_size=4))

    cfg = tiny_cfg(synth_root, str(model), tmp_path / 'ddp', iters=3, batch_size=2)
    cfg_path = tmp_path / 'ddp_cfg.py'
    cfg_path.write_text(''.join(f'{k} = {v!r}\n' for k, v in cfg.items()))
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
           f'--master_port={free_port()}', '-m', 'ovseg_bench.cli', 'train', str(cfg_path),
           '--launcher', 'pytorch']
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = next((tmp_path / 'ddp').glob('*/*.log')).read_text()
    assert 'Distributed launcher: pytorch' in log and 'Distributed training: True' in log
    assert 'Iter(train) [3/3]' in log

    a = torch.load(single['head'], map_location='cpu')
    b = torch.load(tmp_path / 'ddp' / 'head.pt', map_location='cpu')
    assert a.keys() == b.keys()
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert worst < 1e-4, worst


def test_skipped_images_are_counted_over_the_run(synth_root, micro_model, tmp_path):
    import shutil
    root = tmp_path / 'synth'
    shutil.copytree(Path(synth_root) / 'coco', root / 'coco')
    bad = sorted((root / 'coco' / 'train2017').glob('*.jpg'))[3]
    bad.write_bytes(b'not a jpeg')
    cfg = tiny_cfg(root, micro_model, tmp_path / 'skip', iters=2, num_workers=1)
    out = T.train(cfg)                  # 8 draws: every image of the 8-image set once
    assert out['skipped_images'] == 1
    log = next((tmp_path / 'skip').glob('*/*.log')).read_text()
    assert f'skipping unreadable image {bad}' in log
    assert '1 unreadable images were skipped during training' in log


def test_checkpoint_writes_are_atomic_and_resume_skips_a_damaged_latest(
        synth_root, micro_model, tmp_path, monkeypatch):
    import mmengine.runner.runner as mm_runner
    cfg = tiny_cfg(synth_root, micro_model, tmp_path / 'run', iters=6, max_keep_ckpts=1)
    save = mm_runner.save_checkpoint
    calls = []

    def killed_mid_write(checkpoint, filepath, *args, **kwargs):
        calls.append(filepath)
        if len(calls) == 2:             # the write of iter_4: half the bytes, then the kill
            Path(filepath).write_bytes(b'PK\x03\x04 half a checkpoint')
            raise _Interrupt
        return save(checkpoint, filepath, *args, **kwargs)
    monkeypatch.setattr(mm_runner, 'save_checkpoint', killed_mid_write)
    with pytest.raises(_Interrupt):
        T.train(cfg)
    run = tmp_path / 'run'
    # With one checkpoint kept, the previous one survives the killed write, whole.
    assert sorted(p.name for p in run.glob('iter_*.pth')) == ['iter_2.pth']
    assert (run / 'last_checkpoint').read_text().endswith('iter_2.pth')
    monkeypatch.setattr(mm_runner, 'save_checkpoint', save)
    # A damaged latest checkpoint (e.g. a disk fault): resume falls back to the one before.
    torch.save({'w': torch.zeros(1)}, run / 'iter_4.pth')
    (run / 'iter_4.pth').write_bytes((run / 'iter_4.pth').read_bytes()[:40])
    (run / 'last_checkpoint').write_text(str(run / 'iter_4.pth'))
    out = T.train(cfg, resume=True)
    assert out['iters'] == 6
    log = ''.join(p.read_text() for p in run.glob('*/*.log'))
    assert (f'not resuming from {run / "iter_4.pth"}: cannot read training checkpoint '
            f'{run / "iter_4.pth"}: not a torch.save file, or truncated/damaged') in log
    assert 'resumed at iteration 2' in log
    assert sorted(p.name for p in run.glob('iter_*.pth')) == ['iter_6.pth']
