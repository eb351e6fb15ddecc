"""CLIP-ZSS and the inductive zero-shot protocol: unseen pixels never supervise, inference
without CLIP's image tower, hIoU on the right class subsets, the encoder, the configs and
their splits, and the trainer's memory-bank checkpoint. The GLM, PLM and synthesizer have
their own test files."""
import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from ovseg_bench.data.zero_shot import IgnoreUnseenClasses, dataset_classes
from ovseg_bench.engine.metrics import OVIoUMetric, harmonic_mean
from ovseg_bench.segmentor import OVSegmentor
from clip_zss_world import (  # noqa: F401 (backbone: a fixture)
    SEEN, U, UNSEEN, backbone, batch_of, losses, make_head, scene)

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- the protocol
def test_transform_sets_unseen_pixels_to_ignore():
    t = IgnoreUnseenClasses(unseen=UNSEEN, dataset='synth_coco')
    gt = np.array([[0, U[0], U[1]], [U[2], 255, SEEN[-1]]], np.uint8)
    out = t.transform(dict(gt_seg_map=gt.copy()))['gt_seg_map']
    assert out.dtype == np.uint8
    assert out.tolist() == [[0, 255, 255], [255, 255, SEEN[-1]]]
    with pytest.raises(ValueError, match='not in the dataset'):
        IgnoreUnseenClasses(unseen=['unicorn'], dataset='synth_coco')


@pytest.mark.parametrize('modules', [dict(use_glm=False, use_plm=False), dict()])
def test_unseen_pixels_never_contribute_to_the_supervised_loss(backbone, modules):
    """Unseen pixels relabelled as other unseen classes (or as void) change no loss, both
    straight into the head and after the pipeline transform."""
    head = make_head(backbone, **modules)
    head.train()
    images, gt = scene()
    ref = losses(head, images, gt)
    flipped = gt.clone()
    flipped[gt == U[0]] = U[1]
    flipped[gt == U[2]] = U[0]
    transform = IgnoreUnseenClasses(unseen=UNSEEN, dataset='synth_coco')
    piped = torch.from_numpy(transform.transform(dict(gt_seg_map=gt.numpy().astype(np.uint8)))
                             ['gt_seg_map']).long()
    for other in (flipped, torch.where(torch.isin(gt, torch.tensor(U)), 255, gt), piped):
        got = losses(head, images, other)
        assert got.keys() == ref.keys()
        for k in ref:
            assert torch.equal(got[k], ref[k]), k
    # ... while relabelling a seen region does change the supervised loss
    moved = gt.clone()
    moved[gt == SEEN[0]] = SEEN[1]
    assert not torch.equal(losses(head, images, moved)['loss_ce'], ref['loss_ce'])


def test_seen_targets_exclude_unseen_classes(backbone):
    head = make_head(backbone, use_glm=False, use_plm=False)
    lut = head.seen_lut
    assert all(int(lut[u]) == 255 for u in U) and int(lut[255]) == 255
    assert [int(lut[s]) for s in SEEN] == list(range(len(SEEN)))
    embeds, owner = head.seen_text()     # only seen names are ever embedded in training
    assert int(owner.max()) + 1 == len(SEEN)


def test_hiou_is_the_harmonic_mean_over_the_right_subsets():
    classes = ('a', 'b', 'c', 'd')
    metric = OVIoUMetric(unseen_classes=['c', 'd'])
    metric.dataset_meta = dict(classes=classes)
    gt = torch.tensor([[0, 0, 1, 1], [2, 2, 3, 3], [0, 1, 2, 255]])
    pred = torch.tensor([[0, 0, 1, 0], [2, 3, 3, 3], [0, 1, 1, 3]])
    sample = dict(pred_sem_seg=dict(data=pred[None]), gt_sem_seg=dict(data=gt[None]))
    metric.process({}, [sample])
    res = metric.compute_metrics(metric.results)
    # by hand, valid pixels only: IoU a=3/4, b=2/4, c=1/3, d=2/3
    iou = {'a': 3 / 4, 'b': 2 / 4, 'c': 1 / 3, 'd': 2 / 3}
    seen = 100 * (iou['a'] + iou['b']) / 2
    unseen = 100 * (iou['c'] + iou['d']) / 2
    assert res['mIoU_seen'] == pytest.approx(seen)
    assert res['mIoU_unseen'] == pytest.approx(unseen)
    assert res['hIoU'] == pytest.approx(2 * seen * unseen / (seen + unseen))
    assert res['hIoU'] == pytest.approx(harmonic_mean(seen, unseen))
    assert res['mIoU'] == pytest.approx(100 * sum(iou.values()) / 4)


def test_hiou_is_undefined_when_a_side_is():
    assert math.isnan(harmonic_mean(float('nan'), 40.0))
    assert math.isnan(harmonic_mean(40.0, float('nan')))
    assert harmonic_mean(0.0, 0.0) == 0.0 and harmonic_mean(0.0, 50.0) == 0.0


# ---------------------------------------------------------------- inference
@pytest.mark.parametrize('size', [(64, 64), (64, 96)])
def test_predict_dense_shape(backbone, size):
    head = make_head(backbone).eval()
    embeds = F.normalize(torch.randn(5, backbone.embed_dim), dim=-1)
    with torch.no_grad():
        out = head.predict_dense(torch.randn(2, 3, *size), embeds)
    p = backbone.patch_size
    assert out.shape == (2, 5, size[0] // p, size[1] // p)
    assert out.abs().max() <= 1 + 1e-5          # cosine similarities


def test_inference_runs_without_the_clip_image_encoder(backbone, monkeypatch):
    head = make_head(backbone)
    state = copy.deepcopy(head.state_dict())
    images = torch.randn(2, 3, 64, 96)
    embeds = F.normalize(torch.randn(4, backbone.embed_dim), dim=-1)
    head.eval()
    with torch.no_grad():
        before = head.predict_dense(images, embeds)
    head.drop_teacher()
    assert head.backbone.model.visual is None
    assert not any(k.startswith('backbone.model.visual.') for k in head.state_dict())
    for name in ('forward_dense', 'embed', 'run_blocks', 'project', 'encode_image'):
        monkeypatch.setattr(head.backbone, name, lambda *a, **k: pytest.fail('CLIP image '
                                                                             'encoder used'))
    head.load_state_dict(state)           # a full trained checkpoint still loads
    with torch.no_grad():
        after = head.predict_dense(images, embeds)
        # the whole evaluator path: text tower for the class embeddings, slide windows
        seg = OVSegmentor(head, [['circle'], ['grass', 'lawn'], ['sky']], False,
                          dict(templates='single', text_cache=None, crop=64, stride=32))
        logits = seg.dense_logits(images)
    assert torch.allclose(before, after)
    assert logits.shape == (2, 3, 64, 96)


# ---------------------------------------------------------------- the modules
def test_baseline_has_only_the_supervised_loss(backbone):
    head = make_head(backbone, use_glm=False, use_plm=False)
    assert head.synthesizer is None and head.train_views == ('gt_seg',)
    out = head.forward_train(dict(images=scene()[0], gt_seg=scene()[1]))
    assert sorted(k for k in out if 'loss' in k) == ['loss_ce', 'loss_dice', 'loss_focal']
    full = make_head(backbone).forward_train(batch_of(*scene()))
    assert sorted(k for k in full if 'loss' in k) == [
        'loss_bce', 'loss_ce', 'loss_dice', 'loss_focal', 'loss_glm']


def test_training_updates_the_encoder_only(backbone):
    head = make_head(backbone)
    head.train()
    assert not head.backbone.training and head.encoder.training
    teacher = {k: v.clone() for k, v in head.backbone.state_dict().items()}
    encoder = [p.detach().clone() for p in head.encoder.parameters()]
    opt = torch.optim.AdamW([p for p in head.parameters() if p.requires_grad], lr=1e-3)
    images, gt = scene()
    for step in range(2):
        out = head.forward_train(batch_of(images, gt, [2 * step, 2 * step + 1]))
        opt.zero_grad()
        sum(v for k, v in out.items() if 'loss' in k).backward()
        opt.step()
    assert all(torch.equal(v, teacher[k]) for k, v in head.backbone.state_dict().items())
    assert any(not torch.equal(p, q) for p, q in zip(head.encoder.parameters(), encoder))
    assert int(head.bank.filled) == 4                # two batches of two class tokens
    assert head.bank.contents()[1].tolist() == [0, 1, 2, 3]




# ---------------------------------------------------------------- configs
def test_configs_declare_splits_for_every_evaluated_dataset():
    splits = Config.fromfile(str(REPO / 'configs/_base_/zero_shot/splits.py')).zero_shot_splits
    for name, unseen in splits.items():
        assert set(unseen) <= set(dataset_classes(name)), name
    cfgs = sorted((REPO / 'configs/clip_zss').glob('*.py'))
    assert cfgs
    for path in cfgs:
        cfg = Config.fromfile(str(path))
        assert cfg.method.type == 'CLIPZSS'
        assert set(cfg.datasets) <= set(cfg.unseen_classes), path.name
        for name, unseen in cfg.unseen_classes.items():
            assert list(unseen) == list(splits[name]), (path.name, name)
        assert list(cfg.method.unseen_classes) == list(splits[cfg.method.train_dataset])


# the published lists, as indices in mmseg's class order (ZegCLIP's and ZegCLIP-derived
# configs' novel_class) or as names (ZS3Net's paper)
PUBLISHED_SPLITS = dict(
    voc20=[15, 16, 17, 18, 19],
    coco_stuff171=[19, 23, 28, 29, 36, 51, 76, 88, 94, 112, 133, 136, 137, 157, 160],
    context59=[0, 2, 3, 7, 9, 13, 17, 19, 31, 37])
ZS3NET_CONTEXT = ['cow', 'motorbike', 'aeroplane', 'sofa', 'cat', 'tvmonitor', 'train',
                  'bottle', 'chair', 'pottedplant']


def test_split_indices_are_the_published_lists():
    cfg = Config.fromfile(str(REPO / 'configs/_base_/zero_shot/splits.py'))
    for name, indices in PUBLISHED_SPLITS.items():
        classes = dataset_classes(name)
        unseen = cfg.zero_shot_splits[name]
        assert sorted(classes.index(c) for c in unseen) == indices, name
        assert len(classes) - len(unseen) == {'voc20': 15, 'coco_stuff171': 156,
                                              'context59': 49}[name]
    alt = Config.fromfile(str(REPO / 'configs/_base_/zero_shot/context59_zs3net.py')
                          ).zero_shot_splits.context59
    assert sorted(alt) == sorted(ZS3NET_CONTEXT) and set(alt) <= set(dataset_classes('context59'))
    ctx = Config.fromfile(str(REPO / 'configs/clip_zss/clip_zss_vit_b16_context.py'))
    assert list(ctx.method.unseen_classes) == list(cfg.zero_shot_splits.context59)
    ignore = [t for t in ctx.train_data.pipeline if t['type'] == 'IgnoreUnseenClasses'][0]
    assert list(ignore['unseen']) == list(cfg.zero_shot_splits.context59)


def test_an_mmseg_encoder_by_config(backbone):
    """A convnet encoder from mmseg (a small DeepLabV3+-style ResNet) instead of the ViT."""
    norm = dict(type='BN', requires_grad=True)
    encoder = dict(
        type='mmseg', pretrained=None,
        backbone=dict(type='ResNetV1c', depth=18, out_indices=(0, 1, 2, 3), norm_cfg=norm,
                      dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1), contract_dilation=True),
        decode_head=dict(type='DepthwiseSeparableASPPHead', in_channels=512, in_index=3,
                         channels=32, dilations=(1, 6), c1_in_channels=64, c1_channels=16,
                         norm_cfg=norm, align_corners=False))
    head = make_head(backbone, encoder=encoder)
    out = head.forward_train(batch_of(*scene()))
    assert torch.isfinite(sum(v for k, v in out.items() if 'loss' in k))
    head.eval()
    with torch.no_grad():
        logits = head.predict_dense(torch.randn(1, 3, 64, 96),
                                    F.normalize(torch.randn(3, backbone.embed_dim), dim=-1))
    assert logits.shape == (1, 3, 16, 24)        # output stride 4


@pytest.mark.parametrize('detach', [False, True])
def test_pixel_loss_trains_the_synthesizer_unless_detached(backbone, detach):
    """The CE over the fused labels reaches the synthesizer (default), or only L_bce does."""
    head = make_head(backbone, use_glm=False, detach_pseudo_weights=detach)
    head.train()
    images, gt = scene()
    out = head.forward_train(dict(images=images, gt_seg=gt))
    assert out['loss_ce'] > 0
    out['loss_ce'].backward()
    grads = [p.grad for p in head.synthesizer.parameters() if p.grad is not None]
    reached = any(g.abs().sum() > 0 for g in grads)
    assert reached != detach


def test_an_mmseg_encoder_states_its_initialisation(backbone, tmp_path):
    """``pretrained`` is required: a local checkpoint is loaded into the encoder backbone;
    a missing file or a missing key is one clear error."""
    norm = dict(type='BN', requires_grad=True)
    encoder = dict(type='mmseg',
                   backbone=dict(type='ResNetV1c', depth=18, out_indices=(3,), norm_cfg=norm),
                   decode_head=dict(type='FCNHead', in_channels=512, in_index=0, channels=16,
                                    num_convs=1, norm_cfg=norm, align_corners=False))
    with pytest.raises(ValueError, match='encoder.pretrained is required'):
        make_head(backbone, encoder=encoder)
    with pytest.raises(FileNotFoundError, match='no file'):
        make_head(backbone, encoder={**encoder, 'pretrained': str(tmp_path / 'none.pth')})
    source = make_head(backbone, encoder={**encoder, 'pretrained': None}).encoder.backbone
    with torch.no_grad():
        for p in source.parameters():
            p.add_(1.0)
    torch.save({'state_dict': source.state_dict()}, tmp_path / 'r18.pth')
    loaded = make_head(backbone, encoder={**encoder, 'pretrained': str(tmp_path / 'r18.pth')})
    got = loaded.encoder.backbone.state_dict()
    for k, v in source.state_dict().items():
        assert torch.equal(v, got[k]), k


def test_the_configs_encoders(backbone):
    """The paper configs: an ImageNet-initialised SegFormer MiT-B5 at a named local path; the
    tiny default: the CLIP-ViT student; its MiT-B0 variant: random initialisation stated."""
    for name in ('voc', 'context', 'coco_stuff'):
        enc = Config.fromfile(str(REPO / f'configs/clip_zss/clip_zss_vit_b16_{name}.py')
                              ).method.encoder
        assert enc.type == 'mmseg' and enc.backbone.type == 'MixVisionTransformer'
        assert enc.backbone.num_layers == [3, 6, 40, 3] and enc.pretrained.endswith('.pth')
    tiny = Config.fromfile(str(REPO / 'configs/clip_zss/clip_zss_tiny_synth.py'))
    assert dict(tiny.method.encoder) == dict(type='clip_vit')
    mit = Config.fromfile(str(REPO / 'configs/clip_zss/clip_zss_mit_b0_synth.py'))
    assert mit.method.encoder.pretrained is None
    assert mit.method.encoder.backbone.num_layers == [2, 2, 2, 2]
    assert {k: v for k, v in mit.method.items() if k != 'encoder'} == \
        {k: v for k, v in tiny.method.items() if k != 'encoder'}
    head = make_head(backbone, encoder=mit.method.encoder).eval()
    with torch.no_grad():
        out = head.predict_dense(torch.randn(1, 3, 64, 64),
                                 F.normalize(torch.randn(3, backbone.embed_dim), dim=-1))
    assert out.shape == (1, 3, 16, 16)           # SegFormer's output stride 4


def _bases(path):
    """The ``_base_`` list of a config file, resolved to paths (read, not executed)."""
    import ast
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', '') == '_base_':
            return [(path.parent / p).resolve() for p in ast.literal_eval(node.value)]
    return []


@pytest.mark.parametrize('path', sorted((REPO / 'configs/clip_zss').glob('*.py')),
                         ids=lambda p: p.name)
def test_configs_inherit_one_level_from_base_files(path):
    """Every CLIP-ZSS config is named {method}_{backbone}_{data} and inherits only from files
    under configs/_base_, which inherit from nothing; its unseen pixels are ignored by the
    split of the dataset it trains on."""
    assert path.stem.startswith('clip_zss_') and '-' not in path.stem
    base_dir = (REPO / 'configs/_base_').resolve()
    for base in _bases(path):
        assert base.is_file() and base_dir in base.parents, base
        assert _bases(base) == [], f'{base} has a _base_ of its own'
    cfg = Config.fromfile(str(path))
    ignore = [t for t in cfg.train_data.pipeline if t['type'] == 'IgnoreUnseenClasses']
    assert len(ignore) == 1
    assert ignore[0]['dataset'] == cfg.method.train_dataset == cfg.train_data.name
    assert list(ignore[0]['unseen']) == list(cfg.method.unseen_classes) \
        == list(cfg.unseen_classes[cfg.method.train_dataset])


def test_the_trainer_checkpoints_and_resumes_the_memory_bank(synth_root, tmp_path, monkeypatch):
    """Through mmengine's checkpoint and resume: the bank is in the checkpoint, and a resumed
    run starts from it (two iterations of 2 crops, then a third after resuming)."""
    import os
    from ovseg_bench.engine.trainer import train
    (tmp_path / 'data').mkdir()
    os.symlink(synth_root, tmp_path / 'data' / 'synth')
    monkeypatch.chdir(tmp_path)
    cfg = Config.fromfile(str(REPO / 'configs/clip_zss/clip_zss_tiny_synth.py'))
    cfg.backbone.pretrained = None
    cfg.merge_from_dict({'method.encoder._delete_': True, 'method.encoder.type': 'clip_vit',
                         'method.templates': 'single', 'method.text_cache': None})
    cfg.train.update(iters=2, batch_size=2, num_workers=0, log_interval=1,
                     checkpoint_interval=1, max_keep_ckpts=-1, warmup_iters=1)
    run = tmp_path / 'run'
    train(cfg, work_dir=run)

    def bank(path):
        state = torch.load(path, map_location='cpu', weights_only=False)
        state = state.get('state_dict', state)
        prefix = 'head.bank.' if 'head.bank.keys' in state else 'bank.'
        return {k: state[prefix + k] for k in ('keys', 'ids', 'filled')}

    first, second = bank(run / 'iter_1.pth'), bank(run / 'iter_2.pth')
    assert int(first['filled']) == 2 and int(second['filled']) == 4
    assert torch.equal(second['keys'][:2], first['keys'][:2])
    assert (second['ids'][:4] != -1).all()
    cfg.train.update(iters=3)
    train(cfg, work_dir=run, resume=True)
    third = bank(run / 'iter_3.pth')
    assert int(third['filled']) == 6
    assert torch.equal(third['keys'][:4], second['keys'][:4])
    assert torch.equal(third['ids'][:4], second['ids'][:4])
