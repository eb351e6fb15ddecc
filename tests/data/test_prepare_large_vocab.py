"""Pascal Context 459 and ADE20K-Full 847: ``prepare`` on tiny downloads in the official
formats, ``check-data``, and end-to-end evaluation through the 16-bit dataset configs (class
indices past 255 and the 65535 ignore value must survive loading and scoring)."""
import csv

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image
from scipy.io import savemat

from ovseg_bench.data.check_data import check_data
from ovseg_bench.data.prepare import LAYOUTS, prepare
from ovseg_bench.bench.record import evaluate_row
from ovseg_bench.data.prepare.large_vocab import ade847_size

CFG = Config(dict(backbone=dict(type='OpenCLIPBackbone', model='ovseg-tiny'),
                  method=dict(type='MaskCLIP'),
                  protocol=dict(name='tiny', short_side=32, mode='whole', templates='single',
                                num_workers=0, text_cache=None)))


def jpg(path, h, w, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 255, (h, w, 3), np.uint8)
    Image.fromarray(rgb).save(path, quality=95)


def score(dataset, data, tmp_path):
    out = tmp_path / f'{dataset}.csv'
    row = evaluate_row(CFG, dataset, tmp_path / 'work' / dataset, data_root=data,
                       results_csv=out, save_pred=tmp_path / 'pred')
    per_class = list(csv.DictReader(open(out.with_name('per_class.csv'))))
    return row, {int(r['class_index']): int(r['gt_pixels']) for r in per_class
                 if r['dataset'] == dataset}


def test_context459_prepare_check_and_evaluate(tmp_path):
    raw, data = tmp_path / 'raw', tmp_path / 'data'
    voc = raw / 'VOCdevkit/VOC2010'
    # PASCAL-Context LabelMaps: 0 = no annotation, 1..459 = labels.txt ids
    label_map = np.array([[0, 1, 2, 284], [300, 459, 459, 0], [17, 17, 17, 17]], np.uint16)
    for name, seed in (('2008_000001', 1), ('2008_000002', 2)):
        jpg(voc / f'JPEGImages/{name}.jpg', 3, 4, seed)
        (raw / 'trainval').mkdir(parents=True, exist_ok=True)
        savemat(raw / f'trainval/{name}.mat', {'LabelMap': label_map})
    (voc / 'ImageSets/Main').mkdir(parents=True)
    (voc / 'ImageSets/Main/val.txt').write_text('2008_000001\n2008_000002\n')
    prepare('context459', raw, data, log=lambda *_: None)
    mask = Image.open(LAYOUTS['context459'].masks(data, 'val') / '2008_000001.tif')
    assert mask.mode.startswith('I;16')
    expected = np.array([[65535, 0, 1, 283], [299, 458, 458, 65535], [16, 16, 16, 16]])
    assert np.array_equal(np.asarray(mask), expected)

    results = check_data(data, ['context459'])
    assert [(r.split, r.images, r.num_errors) for r in results] == [('val', 2, 0),
                                                                    ('train', 0, 0)]
    row, gt_pixels = score('context459', data, tmp_path)
    assert row['dataset'] == 'context459' and 0 <= row['mIoU'] <= 100
    assert len(gt_pixels) == 459
    counts = {c: 2 * int((expected == c).sum()) for c in np.unique(expected) if c != 65535}
    assert {c: n for c, n in gt_pixels.items() if n} == counts
    pred = np.asarray(Image.open(tmp_path / 'pred/context459/2008_000001.png'))
    assert pred.dtype == np.uint16 and pred.shape == (3, 4) and pred.max() < 459


def ade_seg(index):
    """An ADE20K ``*_seg.png`` encoding object indices: R = index // 256 * 10, G = index % 256."""
    index = np.asarray(index)
    return np.stack([index // 256 * 10, index % 256, np.zeros_like(index)], -1).astype(np.uint8)


def test_ade847_prepare_check_and_evaluate(tmp_path):
    raw, data = tmp_path / 'raw', tmp_path / 'data'
    folder = raw / 'ADE20K_2021_17_01/images/ADE/validation/cultural/church'
    jpg(folder / 'ADE_val_00000001.jpg', 4, 6, 1)
    # class 0 "wall" is object 2978, class 1 "building, edifice" 312, class 300 "altar" 3108
    # (MaskFormer's table); object 5 is none of the 847 -> 65535
    objects = np.array([[2978, 2978, 312, 312, 3108, 5]] * 4)
    Image.fromarray(ade_seg(objects)).save(folder / 'ADE_val_00000001_seg.png')
    prepare('ade847', raw, data, log=lambda *_: None)
    layout = LAYOUTS['ade847']
    mask = np.asarray(Image.open(layout.masks(data, 'val') / 'ADE_val_00000001.tif'))
    expected = np.array([[0, 0, 1, 1, 300, 65535]] * 4)
    assert np.array_equal(mask, expected)
    assert (layout.images(data, 'val') / 'ADE_val_00000001.jpg').is_file()

    results = check_data(data, ['ade847'])
    assert [(r.split, r.images, r.num_errors) for r in results][0] == ('val', 1, 0)
    row, gt_pixels = score('ade847', data, tmp_path)
    assert row['dataset'] == 'ade847' and len(gt_pixels) == 847
    assert {c: n for c, n in gt_pixels.items() if n} == {0: 8, 1: 8, 300: 4}


@pytest.mark.parametrize('hw,expected', [((480, 640), (480, 640)), ((600, 800), (512, 683)),
                                         ((900, 600), (768, 512)), ((512, 2000), (512, 2000))])
def test_ade847_images_shrink_as_maskformers_converter(hw, expected):
    assert ade847_size(*hw) == expected
