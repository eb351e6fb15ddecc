"""The evaluator against ground truth: an oracle scores 100 and a constant head scores exactly
the IoU computed by hand, on all four synthetic layouts, in whole and slide mode."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from mmcv.transforms import BaseTransform
from mmengine.config import Config
from mmseg.registry import TRANSFORMS
from PIL import Image

from ovseg_bench.data.catalog import load_dataset_cfg
from ovseg_bench.engine import evaluate as ev
from ovseg_bench.head import MethodHead
from ovseg_bench.registry import METHODS
from ovseg_bench.segmentor import OVSegmentor
from ovseg_bench.text import load_vocabulary

REPO = str(Path(__file__).resolve().parents[2])
SYNTH = ['synth_voc', 'synth_context', 'synth_coco', 'synth_ade']


@TRANSFORMS.register_module(force=True)
class LabelAsImage(BaseTransform):
    """Test-only: replace the (resized) image by its label map, resized the same way."""

    def transform(self, results):
        h, w = results['img'].shape[:2]
        gt = Image.fromarray(results['gt_seg_map'].astype(np.uint8)).resize((w, h), Image.NEAREST)
        results['img'] = np.repeat(np.asarray(gt)[..., None], 3, axis=2)
        return results


class OracleHead(MethodHead):
    """Test-only: reads the label out of the label-image and answers it (one-hot over class names)."""
    trainable = False
    owner = None

    def predict_dense(self, images, class_embeds):
        std = torch.tensor(self.backbone.std).view(1, 3, 1, 1)
        mean = torch.tensor(self.backbone.mean).view(1, 3, 1, 1)
        label = (images * std + mean)[:, 0].round().long()        # B,H,W
        return (label[:, None] == self.owner.view(1, -1, 1, 1)).float()


class ConstantHead(MethodHead):
    """Predicts class ``constant`` everywhere."""
    trainable = False
    owner = None
    constant = 1

    def predict_dense(self, images, class_embeds):
        b, _, h, w = images.shape
        return (self.owner == self.constant).float().view(1, -1, 1, 1).expand(b, -1, h, w)


@pytest.fixture
def run_head(synth_root, tiny_backbone, monkeypatch, tmp_path):
    """Evaluate a test head on a synthetic dataset through the full evaluator.

    The test heads join the method registry only while a test runs, so the contract tests
    over "every registered method" never see them.
    """
    registered = []

    def run(head_cls, dataset, mode, short_side=96, label_image=False, save_pred=None):
        METHODS.register_module(module=head_cls, force=True)
        registered.append(head_cls.__name__)
        if label_image:
            orig = ev.test_pipeline
            monkeypatch.setattr(ev, 'test_pipeline', lambda p: orig(p)[:3] + [
                dict(type='LabelAsImage'), dict(type='PackSegInputs')])
        head = head_cls(tiny_backbone)
        cfg = Config(dict(
            backbone=dict(type='OpenCLIPBackbone', model='ovseg-tiny'),
            method=dict(type=head_cls.__name__),
            protocol=dict(short_side=short_side, mode=mode, crop=64, stride=32,
                          templates='single', bg_threshold=0.5, num_workers=0,
                          text_cache=None)))
        # The heads need the name->class map the segmentor derives from the vocabulary.
        vocab = load_vocabulary(load_dataset_cfg(dataset)['vocabulary'])
        head.owner = OVSegmentor(head, vocab, False, cfg.protocol).class_embeds()[1]
        return ev.evaluate(cfg, dataset, tmp_path / dataset, data_root=synth_root, head=head,
                           save_pred=save_pred)
    yield run
    for name in registered:
        METHODS.module_dict.pop(name, None)


@pytest.mark.parametrize('dataset', SYNTH)
@pytest.mark.parametrize('mode,short_side', [('whole', 96), ('slide', 96), ('slide', 192)])
def test_oracle_scores_100(run_head, dataset, mode, short_side):
    metrics = run_head(OracleHead, dataset, mode, short_side, label_image=True).metrics
    assert metrics['mIoU'] == pytest.approx(100.0) and metrics['aAcc'] == pytest.approx(100.0)


@pytest.mark.parametrize('dataset', ['synth_voc', 'synth_ade'])
def test_save_pred_writes_every_prediction_in_the_label_space(run_head, synth_root, tmp_path,
                                                               dataset):
    """--save-pred: one uint8 PNG per image, DIR/<dataset>/<stem>.png, holding the dataset's
    class indices (after reduce_zero_label): the oracle's equal the ground truth off 255."""
    out = tmp_path / 'preds'
    run_head(OracleHead, dataset, 'slide', label_image=True, save_pred=out)
    ds = load_dataset_cfg(dataset, synth_root)
    seg_dir = synth_root / ds['subdir'] / ds['eval']['data_prefix']['seg_map_path']
    img_dir = synth_root / ds['subdir'] / ds['eval']['data_prefix']['img_path']
    if ds['eval'].get('ann_file'):
        stems = (synth_root / ds['subdir'] / ds['eval']['ann_file']).read_text().split()
    else:
        stems = sorted(p.stem for p in img_dir.glob('*.jpg'))
    saved = sorted((out / dataset).glob('*.png'))
    assert [p.stem for p in saved] == sorted(stems)
    for path in saved:
        pred = np.asarray(Image.open(path))
        gt = np.asarray(Image.open(seg_dir / f'{path.stem}.png')).astype(np.int64)
        if dataset == 'synth_ade':                     # reduce_zero_label: 0 -> 255, k -> k-1
            gt = np.where(gt == 0, 255, gt - 1)
        assert pred.dtype == np.uint8 and pred.shape == gt.shape and 255 not in pred
        valid = gt != 255
        assert (pred[valid] == gt[valid]).all()


def hand_iou(dataset, root, constant):
    """mIoU of predicting ``constant`` everywhere, from the mask files and numpy alone."""
    ds = load_dataset_cfg(dataset, root)
    base = root / ds['subdir']
    ann = ds['eval']
    seg_dir = base / ann['data_prefix']['seg_map_path']
    if ann.get('ann_file'):
        files = [seg_dir / f'{s}.png' for s in (base / ann['ann_file']).read_text().split()]
    else:
        files = sorted(seg_dir.glob('*.png'))
    reduce_zero = dataset == 'synth_ade'
    n_classes = len(load_vocabulary(ds['vocabulary']))
    inter, union = np.zeros(n_classes), np.zeros(n_classes)
    for f in files:
        gt = np.asarray(Image.open(f)).astype(np.int64)
        if reduce_zero:
            gt = np.where(gt == 0, 255, gt - 1)
        valid = gt != 255
        for c in range(n_classes):
            g = (gt == c) & valid
            p = valid if c == constant else np.zeros_like(valid)
            inter[c] += (g & p).sum()
            union[c] += (g | p).sum()
    with np.errstate(invalid='ignore'):
        return 100 * np.nanmean(inter / union)


@pytest.mark.parametrize('dataset', SYNTH)
def test_constant_head_scores_hand_computed_iou(run_head, synth_root, dataset):
    result = run_head(ConstantHead, dataset, 'whole')
    assert result.metrics['mIoU'] == pytest.approx(hand_iou(dataset, synth_root, 1), abs=1e-9)
    # the per-class results are the metrics' parts: one per class, mIoU their mean
    vocab = load_vocabulary(load_dataset_cfg(dataset)['vocabulary'])
    assert [c['index'] for c in result.per_class] == list(range(len(vocab)))
    assert np.nanmean([c['IoU'] for c in result.per_class]) == pytest.approx(
        result.metrics['mIoU'], abs=1e-9)
    assert result.n_images > 0 and result.images_per_s > 0 and result.world_size == 1


def test_missing_data_root_names_layout_and_command(tmp_path, tiny_backbone):
    cfg = Config(dict(backbone=dict(type='OpenCLIPBackbone', model='ovseg-tiny'),
                      method=dict(type='MaskCLIP'), protocol=dict(num_workers=0)))
    with pytest.raises(FileNotFoundError, match='make-synthetic'):
        ev.evaluate(cfg, 'synth_voc', tmp_path / 'w', data_root=tmp_path / 'nowhere')


def test_unknown_dataset_lists_valid_ones(tmp_path):
    cfg = Config(dict(backbone=dict(type='OpenCLIPBackbone', model='ovseg-tiny'),
                      method=dict(type='MaskCLIP')))
    with pytest.raises(KeyError, match='synth_voc'):
        ev.evaluate(cfg, 'synth_vocc', tmp_path)


def test_random_weights_warning_only_when_no_checkpoint_follows(tmp_path, caplog):
    cfg = Config(dict(backbone=dict(type='OpenCLIPBackbone', model='ovseg-tiny'),
                      method=dict(type='CLIP')))
    with caplog.at_level('INFO'):
        head = ev.load_head(cfg)
    assert 'weights are RANDOM' in caplog.text
    torch.save(head.state_dict(), tmp_path / 'head.pt')
    caplog.clear()
    with caplog.at_level('INFO'):
        loaded = ev.load_head(cfg, tmp_path / 'head.pt')
    assert 'RANDOM' not in caplog.text and 'weights from' in caplog.text
    assert all(torch.equal(a, b) for a, b in zip(head.state_dict().values(),
                                                  loaded.state_dict().values()))


def test_trainable_config_without_checkpoint_is_keyed_untrained(synth_root, tmp_path):
    cfg = Config(dict(backbone=dict(type='OpenCLIPBackbone', model='ovseg-tiny'),
                      method=dict(type='CLIP'),
                      train_data=dict(type='CocoCaptionDataset', data_root=str(synth_root)),
                      protocol=dict(templates='single', num_workers=0, text_cache=None)))
    assert ev.evaluate(cfg, 'synth_voc', tmp_path / 'w', data_root=synth_root).untrained
    assert ev.untrained_row(cfg) and not ev.untrained_row(cfg, checkpoint='head.pt')


def test_config_typos_fail_naming_the_key(tmp_path):
    cfg = Config(dict(backbone=dict(type='OpenCLIPBackbone', model='ovseg-tiny'),
                      method=dict(type='MaskCLIP'), protocl=dict(mode='whole')))
    with pytest.raises(KeyError, match="unknown config key 'protocl'. Did you mean protocol?"):
        ev.evaluate(cfg, 'synth_voc', tmp_path)
    cfg = Config(dict(backbone=dict(type='OpenCLIPBackbone', model='ovseg-tiny'),
                      method=dict(type='SegCLIP', num_centres=4)))
    with pytest.raises(KeyError, match="unknown config key 'method.num_centres'. Did you mean "
                                       "method.num_centers?"):
        ev.load_head(cfg)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def five_image_voc(synth_root, tmp_path):
    """A copy of the synthetic VOC with 5 validation images (2 ranks: the sampler pads one),
    and a MaskCLIP config scoring it; returns (data root, its masks folder, stems, config)."""
    import shutil
    root = tmp_path / 'synth'
    ds = load_dataset_cfg('synth_voc', root)
    shutil.copytree(synth_root / ds['subdir'], root / ds['subdir'])
    val = root / ds['subdir'] / ds['eval']['ann_file']
    stems = val.read_text().split()[:5]
    val.write_text('\n'.join(stems) + '\n')
    cfg_path = tmp_path / 'maskclip.py'
    cfg_path.write_text(
        "backbone = dict(type='OpenCLIPBackbone', model='ovseg-tiny')\n"
        "method = dict(type='MaskCLIP')\n"
        "protocol = dict(short_side=64, mode='slide', crop=32, stride=16, templates='single',"
        " num_workers=0, text_cache=None)\n"
        "datasets = ['synth_voc']\n")
    masks = root / ds['subdir'] / ds['eval']['data_prefix']['seg_map_path']
    return root, masks, stems, cfg_path


def torchrun_test(cfg_path, root, work_dir, n=2):
    """``ovseg-bench test`` in ``n`` gloo processes under torchrun."""
    import subprocess
    import sys
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='', PYTHONPATH=REPO)
    cmd = [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={n}',
           f'--master_port={free_port()}', '-m', 'ovseg_bench.cli', 'test', str(cfg_path),
           '--data-root', str(root), '--work-dir', str(work_dir), '--launcher', 'pytorch']
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(bool(os.environ.get('OVSEG_SKIP_DDP')), reason='OVSEG_SKIP_DDP is set')
def test_two_gloo_processes_give_the_row_of_one_process(synth_root, tmp_path):
    """`torchrun --nproc_per_node 2 ... test --launcher pytorch` on 5 images (so the sampler
    pads one rank): the metrics of one process, one row written, by rank 0."""
    import json

    from ovseg_bench.bench import record, results
    root, _, _, cfg_path = five_image_voc(synth_root, tmp_path)
    one = record.evaluate_row(str(cfg_path), 'synth_voc', tmp_path / 'one',
                              results_csv=tmp_path / 'one' / 'results.csv', data_root=root)
    proc = torchrun_test(cfg_path, root, tmp_path / 'two')
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count('mIoU') == 1                       # rank 0 alone reports
    rows = results.read_rows(tmp_path / 'two' / 'results.csv')
    assert len(rows) == 1
    varying = {'eval_time_s', 'images_per_s', 'peak_mem_mb', 'timestamp'}
    expected = {k: '' if v is None else str(v) for k, v in one.items() if k not in varying}
    assert {k: v for k, v in rows[0].items() if k in expected} == expected
    a, b = (json.loads(results.json_path(tmp_path / d / 'results.csv', one).read_text())
            for d in ('one', 'two'))
    assert (a['world_size'], b['world_size']) == (1, 2)
    assert b['metrics'].keys() == a['metrics'].keys()
    for k, v in a['metrics'].items():
        assert b['metrics'][k] == pytest.approx(v, abs=1e-6)
    # the merged state counts every pixel of the 5 images exactly once
    assert [c['gt_pixels'] for c in b['per_class']] == [c['gt_pixels'] for c in a['per_class']]
    assert [c['pred_pixels'] for c in b['per_class']] == \
        [c['pred_pixels'] for c in a['per_class']]


@pytest.mark.skipif(bool(os.environ.get('OVSEG_SKIP_DDP')), reason='OVSEG_SKIP_DDP is set')
def test_a_bad_mask_on_one_rank_fails_every_rank(synth_root, tmp_path):
    """Labels out of range in an image of rank 1 (the sampler gives it images 1, 3, ...):
    the check on the collected state fails every rank with the error line, none waits."""
    root, masks, stems, cfg_path = five_image_voc(synth_root, tmp_path)
    path = masks / f'{stems[1]}.png'
    mask = np.asarray(Image.open(path)).copy()
    mask[:4, :4] = 200
    Image.fromarray(mask).save(path)
    proc = torchrun_test(cfg_path, root, tmp_path / 'w')
    assert proc.returncode != 0
    assert proc.stderr.count('ovseg-bench: error: 1 of 5 ground-truth masks hold labels '
                             f'outside 0..8 and 255 (16 pixels the metric would drop), e.g. '
                             f'{path}') == 2
    assert not (tmp_path / 'w' / 'results.csv').exists()
