"""Cityscapes: ``prepare cityscapes`` on a tiny download in the official layout (per-city
folders, labelIds masks), ``check-data`` on the result, and an end-to-end evaluation through
the ``cityscapes`` dataset config (mmseg's CityscapesDataset)."""
import csv

import numpy as np
from PIL import Image

from ovseg_bench.data.check_data import check_data
from ovseg_bench.data.prepare import LAYOUTS, prepare, resolve_name

# labelIds and their train ids, from the Cityscapes label table (cityscapesScripts labels.py):
# unlabeled 0 -> 255, road 7 -> 0, sidewalk 8 -> 1, building 11 -> 2, guard rail 14 -> 255,
# person 24 -> 11, car 26 -> 13, bicycle 33 -> 18.
LABEL_IDS = [0, 7, 8, 11, 14, 24, 26, 33]
TRAIN_IDS = [255, 0, 1, 2, 255, 11, 13, 18]
W, H = 64, 32


def write_raw(root, split, city, frame, train_ids=False):
    stem = f'{city}_000000_{frame:06d}'
    img = root / 'leftImg8bit' / split / city / f'{stem}_leftImg8bit.png'
    img.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(frame).integers(0, 255, (H, W, 3), np.uint8)).save(img)
    ids = np.repeat(np.array(LABEL_IDS, np.uint8), W // len(LABEL_IDS))[None].repeat(H, 0)
    gt = root / 'gtFine' / split / city
    gt.mkdir(parents=True, exist_ok=True)
    Image.fromarray(ids).save(gt / f'{stem}_gtFine_labelIds.png')
    if train_ids:   # already converted by cityscapesScripts: linked as it is
        tid = np.repeat(np.array(TRAIN_IDS, np.uint8), W // len(TRAIN_IDS))[None].repeat(H, 0)
        Image.fromarray(tid).save(gt / f'{stem}_gtFine_labelTrainIds.png')
    return stem


def test_cityscapes_prepare_check_and_evaluate(tmp_path):
    raw, data = tmp_path / 'raw', tmp_path / 'data'
    stems = [write_raw(raw, 'val', 'frankfurt', 294), write_raw(raw, 'val', 'lindau', 19, True),
             write_raw(raw, 'train', 'aachen', 7)]
    assert resolve_name('cityscapes') == 'cityscapes'
    lines = []
    prepare('cityscapes', raw, data, log=lines.append)
    layout = LAYOUTS['cityscapes']
    expected = np.repeat(np.array(TRAIN_IDS, np.uint8), W // len(TRAIN_IDS))[None].repeat(H, 0)
    for split, stem in (('val', stems[0]), ('val', stems[1]), ('train', stems[2])):
        assert (layout.images(data, split) / f'{stem}_leftImg8bit.png').is_file()
        mask = np.asarray(Image.open(layout.masks(data, split)
                                     / f'{stem}_gtFine_labelTrainIds.png'))
        assert np.array_equal(mask, expected)
    assert any('the official split has 500' in line for line in lines)

    results = check_data(data)
    assert [(r.dataset, r.split, r.images, r.num_errors) for r in results] == [
        ('cityscapes', 'val', 2, 0), ('cityscapes', 'train', 1, 0)]
    assert any('500' in w for w in results[0].warnings)          # a partial copy

    from mmengine.config import Config

    from ovseg_bench.bench.record import evaluate_row
    cfg = Config(dict(backbone=dict(type='OpenCLIPBackbone', model='ovseg-tiny'),
                      method=dict(type='MaskCLIP'),
                      protocol=dict(name='tiny', short_side=32, mode='slide', crop=32, stride=16,
                                    templates='single', num_workers=0, text_cache=None)))
    out = tmp_path / 'results.csv'
    row = evaluate_row(cfg, 'cityscapes', tmp_path / 'work', data_root=data,
                       results_csv=out, save_pred=tmp_path / 'pred')
    assert row['dataset'] == 'cityscapes' and 0 <= row['mIoU'] <= 100
    assert row['vocabulary'].startswith('cityscapes.txt@')
    per_class = list(csv.DictReader(open(out.with_name('per_class.csv'))))
    assert len(per_class) == 19
    # every labelled pixel of the two val masks is counted once (255 excluded)
    assert sum(int(r['gt_pixels']) for r in per_class) == 2 * int((expected != 255).sum())
    saved = sorted(p.name for p in (tmp_path / 'pred' / 'cityscapes').glob('*.png'))
    assert saved == sorted(f'{s}_leftImg8bit.png' for s in stems[:2])
