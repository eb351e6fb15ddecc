"""The evaluator against ground truth: an oracle scores 100 and a constant head scores exactly
the IoU computed by hand, on all four synthetic layouts, in whole and slide mode."""
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
                           results_csv=tmp_path / 'results.csv', save_pred=save_pred)
    yield run
    for name in registered:
        METHODS.module_dict.pop(name, None)


@pytest.mark.parametrize('dataset', SYNTH)
@pytest.mark.parametrize('mode,short_side', [('whole', 96), ('slide', 96), ('slide', 192)])
def test_oracle_scores_100(run_head, dataset, mode, short_side):
    row = run_head(OracleHead, dataset, mode, short_side, label_image=True)
    assert row['mIoU'] == pytest.approx(100.0) and row['aAcc'] == pytest.approx(100.0)


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
    row = run_head(ConstantHead, dataset, 'whole')
    # the row keeps two decimals
    assert row['mIoU'] == pytest.approx(hand_iou(dataset, synth_root, 1), abs=0.005)


def test_summary_and_per_class_csv(run_head, tmp_path):
    run_head(ConstantHead, 'synth_voc', 'whole')
    import csv
    rows = list(csv.DictReader(open(tmp_path / 'results.csv')))
    per_class = list(csv.DictReader(open(tmp_path / 'per_class.csv')))
    assert len(rows) == 1 and rows[0]['dataset'] == 'synth_voc'
    assert rows[0]['mode'] == 'whole' and rows[0]['templates'] == 'single'
    vocab = load_vocabulary(load_dataset_cfg('synth_voc')['vocabulary'])
    assert len(per_class) == len(vocab) and per_class[0]['class_name'] == 'background'
    assert float(per_class[1]['IoU']) >= 0 and per_class[1]['split'] == 'seen'


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
    row = ev.evaluate(cfg, 'synth_voc', tmp_path / 'w', data_root=synth_root,
                      results_csv=tmp_path / 'results.csv')
    assert row['train_data'] == 'none'           # not the trained cell's key
    from ovseg_bench.bench.results import cell_key
    assert cell_key(cfg, 'synth_voc')['train_data'].startswith('CocoCaptionDataset:')
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
