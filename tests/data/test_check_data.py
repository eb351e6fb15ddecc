"""``ovseg-bench check-data``: a good root passes, each kind of damage fails naming the file;
the real samples, prepared, pass and load through the real dataset configs and mmseg."""
import numpy as np
import pytest
from PIL import Image

from ovseg_bench.cli import build_parser
from ovseg_bench.data.check_data import check_data, find_datasets, format_report
from ovseg_bench.data.prepare import prepare


def write_jpg(path, width=5, height=4):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), 90, np.uint8)).save(path)


def write_mask(path, values, mode='L'):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(values, np.uint8), mode).save(path)


MASK = np.array([[0, 1, 2, 3, 255]] * 4)      # 5x4, valid in every dataset


@pytest.fixture
def good_root(tmp_path):
    """A small root in every prepared layout: VOC val + train, Context val, COCO-Stuff and
    COCO-Object val (sharing coco_stuff164k), ADE20K val."""
    root = tmp_path / 'data'
    for sub, masks, split_dir, splits in (
            ('VOCdevkit/VOC2012', 'SegmentationClass', 'Segmentation', ('val', 'train')),
            ('VOCdevkit/VOC2010', 'SegmentationClassContext', 'SegmentationContext', ('val',))):
        for split in splits:
            names = [f'{split}_{i}' for i in range(2)]
            for name in names:
                write_jpg(root / sub / f'JPEGImages/{name}.jpg')
                write_mask(root / sub / masks / f'{name}.png', MASK)
            (root / sub / 'ImageSets' / split_dir).mkdir(parents=True, exist_ok=True)
            (root / sub / 'ImageSets' / split_dir / f'{split}.txt').write_text(
                '\n'.join(names) + '\n')
    coco = root / 'coco_stuff164k'
    for i in ('000000000139', '000000000285'):
        write_jpg(coco / f'images/val2017/{i}.jpg')
        write_mask(coco / f'annotations/val2017/{i}_labelTrainIds.png', MASK)
        write_mask(coco / f'annotations/val2017/{i}_instanceTrainIds.png', MASK)
    ade = root / 'ADEChallengeData2016'
    write_jpg(ade / 'images/validation/ADE_val_00000001.jpg')
    write_mask(ade / 'annotations/validation/ADE_val_00000001.png', MASK)
    return root


def errors_of(results):
    return {f'{r.dataset} {r.split}': [m for ms in r.errors.values() for m in ms]
            for r in results if r.errors}


def test_good_root_passes_with_count_warnings(good_root):
    assert find_datasets(good_root) == ['voc', 'context', 'coco-stuff', 'coco-object', 'ade20k']
    results = check_data(good_root)
    assert errors_of(results) == {}
    by_split = {(r.dataset, r.split): r for r in results}
    assert by_split['voc', 'val'].images == by_split['voc', 'val'].masks_read == 2
    assert by_split['voc', 'train'].prepared and not by_split['context', 'train'].prepared
    assert any('official val split has 1449' in w for w in by_split['voc', 'val'].warnings)
    report = format_report(results)
    assert 'voc val: OK (2 images, 2 masks read, 1 warning)' in report
    assert 'context train: not prepared' in report and report.endswith('check-data: OK')
    assert any(r.failed(strict=True) for r in results)      # counts matter with --strict
    assert 'problems in' in format_report(results, strict=True)


def test_missing_split_file_fails_naming_it(good_root):
    split = good_root / 'VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt'
    split.unlink()
    errors = errors_of(check_data(good_root, ['voc21']))
    assert list(errors) == ['voc val']
    assert str(split) in errors['voc val'][0] and 'ovseg-bench prepare voc' in errors['voc val'][0]


def test_out_of_range_values_fail_naming_the_mask(good_root):
    voc_mask = good_root / 'VOCdevkit/VOC2012/SegmentationClass/val_1.png'
    write_mask(voc_mask, np.full((4, 5), 21))
    stuff_mask = good_root / 'coco_stuff164k/annotations/val2017/000000000285_labelTrainIds.png'
    write_mask(stuff_mask, [[171] * 5, [0] * 5, [170] * 5, [255] * 5])
    errors = errors_of(check_data(good_root))
    assert set(errors) == {'voc val', 'coco-stuff val'}
    assert f'mask {voc_mask} has values [21] outside 0..20 and 255' in errors['voc val'][0]
    assert f'mask {stuff_mask} has values [171] outside 0..170' in errors['coco-stuff val'][0]


def test_missing_and_orphan_masks_fail(good_root):
    mask = good_root / 'ADEChallengeData2016/annotations/validation/ADE_val_00000001.png'
    mask.unlink()
    orphan = good_root / 'coco_stuff164k/annotations/val2017/000000000632_instanceTrainIds.png'
    write_mask(orphan, MASK)
    voc_mask = good_root / 'VOCdevkit/VOC2012/SegmentationClass/train_0.png'
    voc_mask.unlink()
    errors = errors_of(check_data(good_root))
    assert set(errors) == {'ade20k val', 'coco-object val', 'voc train'}
    assert errors['ade20k val'] == [
        f'missing mask {mask} of image {mask.parent.parent.parent}/images/validation/'
        f'ADE_val_00000001.jpg; re-run ovseg-bench prepare ade20k --src RAW --out {good_root}']
    assert f'mask {orphan} has no image' in errors['coco-object val'][0]
    assert f'missing mask {voc_mask} (listed in' in errors['voc train'][0]


def test_rgb_and_wrongly_sized_masks_fail(good_root):
    rgb = good_root / 'VOCdevkit/VOC2010/SegmentationClassContext/val_0.png'
    write_mask(rgb, np.zeros((4, 5, 3)), 'RGB')
    small = good_root / 'VOCdevkit/VOC2010/SegmentationClassContext/val_1.png'
    write_mask(small, np.zeros((4, 4)))
    errors = errors_of(check_data(good_root, ['context']))['context val']
    assert f'mask {rgb} is a RGB image, not a single-channel index PNG' in errors[0]
    assert f'mask {small} is 4x4 but its image' in errors[1]


def test_sample_reads_only_n_masks(good_root):
    write_mask(good_root / 'VOCdevkit/VOC2012/SegmentationClass/val_1.png', np.full((4, 5), 99))
    voc_val = check_data(good_root, ['voc'], sample=1)[0]
    assert voc_val.masks_read == 1 and not voc_val.errors       # the first only: val_0
    assert check_data(good_root, ['voc'])[0].errors


def test_named_dataset_absent_or_empty_root(good_root, tmp_path):
    for path in (good_root / 'coco_stuff164k/annotations/val2017').glob('*_instanceTrainIds.png'):
        path.unlink()
    assert 'coco-object' not in find_datasets(good_root)
    errors = errors_of(check_data(good_root, ['coco_object']))
    assert 'ovseg-bench prepare coco-object' in errors['coco-object val'][0]
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='no prepared dataset under'):
        check_data(tmp_path / 'empty')


def test_check_data_command(good_root, capsys):
    parser = build_parser()
    args = parser.parse_args(['check-data', str(good_root), '--dataset', 'ade20k'])
    assert args.func(args) == 0
    assert 'ade20k val: OK' in capsys.readouterr().out
    args = parser.parse_args(['check-data', str(good_root), '--dataset', 'ade20k', '--strict'])
    assert args.func(args) == 1
    write_mask(good_root / 'ADEChallengeData2016/annotations/validation/ADE_val_00000001.png',
               np.full((4, 5), 151))
    args = parser.parse_args(['check-data', str(good_root)])
    assert args.func(args) == 1
    out = capsys.readouterr().out
    assert 'ade20k val: 1 problem' in out and 'ADE_val_00000001.png has values [151]' in out


def test_real_samples_prepare_check_and_load(real_samples, tmp_path):
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    from ovseg_bench.data.catalog import load_dataset_cfg, split_cfg
    init_default_scope('mmseg')
    for name in ('voc', 'ade20k'):
        prepare(name, real_samples, tmp_path, log=lambda *_: None)
    results = check_data(tmp_path)
    assert [(r.dataset, r.split, r.prepared) for r in results] == [
        ('voc', 'val', True), ('voc', 'train', False),
        ('ade20k', 'val', True), ('ade20k', 'train', False)]
    assert errors_of(results) == {} and [r.images for r in results if r.prepared] == [14, 3]

    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')]
    for config, n, values in (('voc21', 14, set(range(21)) | {255}),
                              ('voc20', 14, set(range(20)) | {255}),
                              ('ade150', 3, set(range(150)) | {255})):
        ds = DATASETS.build(split_cfg(load_dataset_cfg(config, root=tmp_path), 'eval', pipeline))
        item = ds[0]
        assert len(ds) == n and item['img'].shape[:2] == item['gt_seg_map'].shape
        assert set(np.unique(item['gt_seg_map']).tolist()) <= values
        raw = np.asarray(Image.open(item['seg_map_path']))
        assert str(tmp_path) in item['seg_map_path']
        expected = raw if config == 'voc21' else np.where(raw == 0, 255, np.where(
            raw == 255, 255, raw.astype(int) - 1))      # reduce_zero_label
        assert np.array_equal(item['gt_seg_map'], expected)


def test_real_samples_evaluated_through_the_real_dataset_configs(real_samples, tmp_path):
    """Prepared real files scored end to end (random tiny CLIP: the format, not the score)."""
    import csv

    from mmengine.config import Config

    from ovseg_bench.bench.record import evaluate_row
    for name in ('voc', 'ade20k'):
        prepare(name, real_samples, tmp_path / 'data', log=lambda *_: None)
    cfg = Config(dict(backbone=dict(type='OpenCLIPBackbone', model='ovseg-tiny'),
                      method=dict(type='MaskCLIP'),
                      protocol=dict(name='real_samples', short_side=96, mode='slide', crop=64,
                                    stride=32, templates='single', num_workers=0,
                                    text_cache=None)))
    out = tmp_path / 'results.csv'
    for dataset in ('voc21', 'voc20', 'ade150'):
        row = evaluate_row(cfg, dataset, tmp_path / 'work' / dataset,
                           data_root=tmp_path / 'data', results_csv=out)
        assert row['dataset'] == dataset and 0 <= row['mIoU'] <= 100 and row['aAcc'] > 0
    per_class = list(csv.DictReader(open(out.with_name('per_class.csv'))))
    assert [sum(r['dataset'] == d for r in per_class) for d in ('voc21', 'voc20', 'ade150')] \
        == [21, 20, 150]
    # every ground-truth pixel of the 14 VOC masks is counted (void 255 excluded)
    gt = sum(int(r['gt_pixels']) for r in per_class if r['dataset'] == 'voc21')
    masks = (real_samples / 'VOCdevkit/VOC2012/SegmentationClass').glob('*.png')
    assert gt == sum(int((np.asarray(Image.open(m)) != 255).sum()) for m in masks)


def test_truncated_jpeg_is_an_error_naming_the_file(good_root):
    img = good_root / 'VOCdevkit/VOC2012/JPEGImages/val_0.jpg'
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 80, 3), np.uint8)).save(img)
    write_mask(good_root / 'VOCdevkit/VOC2012/SegmentationClass/val_0.png',
               np.zeros((64, 80), np.uint8))
    data = img.read_bytes()
    img.write_bytes(data[:len(data) // 2])       # the header (and size) intact, the rest gone
    errors = errors_of(check_data(good_root, ['voc']))
    assert any(m.startswith(f'cannot read image {img} (image file is truncated')
               for m in errors['voc val']), errors
