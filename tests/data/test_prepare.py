"""``ovseg-bench prepare``: each converter on tiny raw files in the official formats, with the
label values written out by hand (from the official label lists, not from the converter)."""
import json
import os

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from ovseg_bench.cli import build_parser
from ovseg_bench.data.catalog import dataset_names, load_dataset_cfg
from ovseg_bench.data.prepare import LAYOUTS, PREPARERS, prepare, resolve_name


def write_jpg(path, width, height):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), 120, np.uint8)).save(path, quality=90)


def write_png(path, array, mode='L', palette=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(np.asarray(array, np.uint8), mode)
    if palette is not None:
        img.putpalette(palette)
    img.save(path)


def read(path):
    return np.asarray(Image.open(path))


def run(name, src, out, **kwargs):
    lines = []
    prepare(name, src, out, log=lines.append, **kwargs)
    return '\n'.join(lines)


# ---------------------------------------------------------------- VOC 2012
# The first entries of VOC's colour map, as its devkit lists them.
VOC_RGB = {0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0), 15: (192, 128, 128),
           255: (224, 224, 192)}
VOC_PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (3 * 252) + [224, 224, 192]
PALETTE_MASK = [[0, 0, 1, 1, 255],
                [0, 15, 15, 1, 255],
                [20, 20, 0, 0, 255],
                [0, 0, 0, 0, 0]]
RGB_MASK_LABELS = [[0, 1, 1, 2, 255],
                   [0, 15, 15, 2, 255],
                   [0, 0, 0, 0, 255],
                   [1, 1, 1, 1, 1]]


@pytest.fixture
def voc_raw(tmp_path):
    """VOCtrainval_11-May-2012 as extracted: palette masks, one RGB-coloured (as some mirrors
    ship them), val = a, b; train = c."""
    voc = tmp_path / 'raw/VOCdevkit/VOC2012'
    for name in 'abc':
        write_jpg(voc / f'JPEGImages/2007_00000{name}.jpg', 5, 4)
    write_png(voc / 'SegmentationClass/2007_00000a.png', PALETTE_MASK, 'P', VOC_PALETTE)
    rgb = np.array([[VOC_RGB[v] for v in row] for row in RGB_MASK_LABELS], np.uint8)
    write_png(voc / 'SegmentationClass/2007_00000b.png', rgb, 'RGB')
    write_png(voc / 'SegmentationClass/2007_00000c.png', np.zeros((4, 5)), 'P', VOC_PALETTE)
    write_jpg(voc / 'JPEGImages/2007_000099.jpg', 5, 4)     # not in the segmentation split
    (voc / 'ImageSets/Segmentation').mkdir(parents=True)
    (voc / 'ImageSets/Segmentation/val.txt').write_text('2007_00000a\n2007_00000b\n')
    (voc / 'ImageSets/Segmentation/train.txt').write_text('2007_00000c\n')
    return tmp_path / 'raw'


def test_voc_palette_masks_kept_rgb_masks_mapped(voc_raw, tmp_path):
    out = tmp_path / 'data'
    log = run('voc', voc_raw, out)
    root = out / 'VOCdevkit/VOC2012'
    assert (root / 'ImageSets/Segmentation/val.txt').read_text().split() == \
        ['2007_00000a', '2007_00000b']
    assert (root / 'ImageSets/Segmentation/train.txt').read_text().split() == ['2007_00000c']
    assert sorted(p.name for p in (root / 'JPEGImages').iterdir()) == \
        ['2007_00000a.jpg', '2007_00000b.jpg', '2007_00000c.jpg']
    a, b = (Image.open(root / f'SegmentationClass/2007_00000{n}.png') for n in 'ab')
    assert a.mode == b.mode == 'P'
    assert np.array_equal(np.asarray(a), PALETTE_MASK)
    assert np.array_equal(np.asarray(b), RGB_MASK_LABELS)
    assert b.getpalette()[3:6] == [128, 0, 0]              # VOC's colours kept for viewers
    # same filesystem: images and the official masks are hardlinks, not re-encoded copies
    raw = voc_raw / 'VOCdevkit/VOC2012'
    assert os.path.samefile(raw / 'JPEGImages/2007_00000a.jpg', root / 'JPEGImages/2007_00000a.jpg')
    assert os.path.samefile(raw / 'SegmentationClass/2007_00000a.png',
                            root / 'SegmentationClass/2007_00000a.png')
    assert 'voc val: 2 images (2 written' in log and 'official split has 1449' in log
    assert not list(out.rglob('.*.part'))


def test_voc_rerun_skips_what_is_done(voc_raw, tmp_path):
    out = tmp_path / 'data'
    run('voc', voc_raw, out)
    assert '2 images (0 written, 2 already up to date)' in run('voc', voc_raw, out)
    assert '2 images (2 written, 0 already up to date)' in run('voc', voc_raw, out, force=True)


def test_voc_one_split_and_config_names(voc_raw, tmp_path):
    run('voc20', voc_raw, tmp_path / 'data', splits=['train'])    # a dataset config name
    root = tmp_path / 'data/VOCdevkit/VOC2012'
    assert (root / 'ImageSets/Segmentation/train.txt').is_file()
    assert not (root / 'ImageSets/Segmentation/val.txt').exists()
    assert [p.name for p in (root / 'SegmentationClass').iterdir()] == ['2007_00000c.png']


def test_voc_val_only_raw_prepares_val(voc_raw, tmp_path):
    (voc_raw / 'VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt').unlink()
    log = run('voc', voc_raw, tmp_path / 'data')
    assert 'skipping train' in log and 'voc val: 2 images' in log
    with pytest.raises(FileNotFoundError, match=r'no train split .*train\.txt'):
        run('voc', voc_raw, tmp_path / 'data', splits=['train'])


def test_voc_bad_raw_folders_name_what_is_missing(voc_raw, tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(FileNotFoundError) as err:
        run('voc', empty, tmp_path / 'data')
    assert 'VOCtrainval_11-May-2012.tar' in str(err.value)
    assert str(empty / 'VOCdevkit/VOC2012/JPEGImages') in str(err.value)
    (voc_raw / 'VOCdevkit/VOC2012/JPEGImages/2007_00000b.jpg').unlink()
    with pytest.raises(FileNotFoundError, match=r'1 images listed in .*val\.txt missing:\n.*'
                                                r'2007_00000b\.jpg'):
        run('voc', voc_raw, tmp_path / 'data')


def test_voc_masks_outside_the_labels_fail(voc_raw, tmp_path):
    masks = voc_raw / 'VOCdevkit/VOC2012/SegmentationClass'
    write_png(masks / '2007_00000a.png', [[0, 21], [1, 2]], 'P', VOC_PALETTE)
    with pytest.raises(ValueError, match=r'2007_00000a\.png: label values \[21\]'):
        run('voc', voc_raw, tmp_path / 'data', splits=['val'])
    write_png(masks / '2007_00000a.png', np.full((2, 2, 3), 7), 'RGB')
    with pytest.raises(ValueError, match=r'2007_00000a\.png: colours .*\(7, 7, 7\)'):
        run('voc', voc_raw, tmp_path / 'data', splits=['val'])


# ---------------------------------------------------------------- Pascal Context
# 459-class ids (PASCAL-Context labels.txt) -> expected 0..59 (mmseg's PascalContextDataset):
# 2 aeroplane, 9 bag, 284 person, 458 wood, 259 mountain, 260 mouse, 415 track;
# 1 accordion, 100 and 459 are not among the 59 -> 0, as is 0 (unlabelled).
CONTEXT_RAW = [[0, 2, 9, 284],
               [458, 1, 459, 100],
               [259, 260, 415, 0]]
CONTEXT_EXPECTED = [[0, 1, 2, 37],
                    [59, 0, 0, 0],
                    [35, 36, 51, 0]]


@pytest.fixture
def context_raw(tmp_path):
    """VOCtrainval_03-May-2010 (images, ImageSets/Main) + PASCAL-Context trainval/*.mat."""
    raw = tmp_path / 'raw'
    voc = raw / 'VOCdevkit/VOC2010'
    names = ['2008_000001', '2008_000002', '2008_000003']
    for name in names:
        write_jpg(voc / f'JPEGImages/{name}.jpg', 4, 3)
    (raw / 'trainval').mkdir(parents=True)
    savemat(raw / 'trainval/2008_000001.mat', {'LabelMap': np.array(CONTEXT_RAW, np.uint16)})
    for name in names[1:]:
        savemat(raw / f'trainval/{name}.mat', {'LabelMap': np.full((3, 4), 284, np.uint16)})
    (voc / 'ImageSets/Main').mkdir(parents=True)
    (voc / 'ImageSets/Main/val.txt').write_text('2008_000001\n2008_000003\n')
    (voc / 'ImageSets/Main/train.txt').write_text('2008_000002\n')
    return raw


def test_context_mat_label_maps_to_59_classes(context_raw, tmp_path):
    from mmseg.datasets import PascalContextDataset
    classes = PascalContextDataset.METAINFO['classes']
    assert [classes[i] for i in (1, 2, 37, 59, 35, 36, 51)] == \
        ['aeroplane', 'bag', 'person', 'wood', 'mountain', 'mouse', 'track']
    run('context', context_raw, tmp_path / 'data')
    root = tmp_path / 'data/VOCdevkit/VOC2010'
    mask = Image.open(root / 'SegmentationClassContext/2008_000001.png')
    assert mask.mode == 'L' and np.array_equal(np.asarray(mask), CONTEXT_EXPECTED)
    assert (read(root / 'SegmentationClassContext/2008_000002.png') == 37).all()
    assert (root / 'ImageSets/SegmentationContext/val.txt').read_text().split() == \
        ['2008_000001', '2008_000003']
    assert (root / 'ImageSets/SegmentationContext/train.txt').read_text().split() == \
        ['2008_000002']
    assert (root / 'JPEGImages/2008_000003.jpg').is_file()


def test_context_split_from_detail_json(context_raw, tmp_path):
    images = [dict(image_id=2008000001, phase='train'),
              dict(image_id=2008000002, file_name='2008_000002.jpg', phase='val')]
    (context_raw / 'trainval_merged.json').write_text(json.dumps(dict(images=images)))
    run('context59', context_raw, tmp_path / 'data')
    split = tmp_path / 'data/VOCdevkit/VOC2010/ImageSets/SegmentationContext'
    assert (split / 'train.txt').read_text().split() == ['2008_000001']
    assert (split / 'val.txt').read_text().split() == ['2008_000002']


def test_context_missing_or_bad_label_maps(context_raw, tmp_path):
    savemat(context_raw / 'trainval/2008_000003.mat', {'LabelMap': np.full((3, 4), 460,
                                                                           np.uint16)})
    with pytest.raises(ValueError, match=r'2008_000003\.mat: labels outside 0\.\.459'):
        run('context', context_raw, tmp_path / 'data')
    (context_raw / 'trainval/2008_000003.mat').unlink()
    with pytest.raises(FileNotFoundError, match=r'PASCAL-Context label maps missing:\n.*'
                                                r'2008_000003\.mat'):
        run('context', context_raw, tmp_path / 'data')
    for mat in (context_raw / 'trainval').iterdir():
        mat.unlink()
    with pytest.raises(FileNotFoundError, match='trainval.tar.gz'):
        run('context', context_raw, tmp_path / 'data')


# ---------------------------------------------------------------- COCO-Stuff
# stuffthingmap ids (COCO id - 1) -> train ids: 0 person -> 0; 11 and 90 are unused ids ->
# 255; 12 stop sign -> 11; 91 banner -> 80; 181 wood -> 170; 255 stays; 182 (no class) -> 255.
STUFF_RAW = [[0, 11, 12, 90], [91, 181, 255, 182]]
STUFF_EXPECTED = [[0, 255, 11, 255], [80, 170, 255, 255]]


def test_coco_stuff_ids_to_171_train_ids(tmp_path):
    from mmseg.datasets import COCOStuffDataset
    classes = COCOStuffDataset.METAINFO['classes']
    assert (classes[0], classes[11], classes[80], classes[170]) == \
        ('person', 'stop sign', 'banner', 'wood')
    raw = tmp_path / 'raw'
    write_jpg(raw / 'images/val2017/000000000139.jpg', 4, 2)
    write_png(raw / 'annotations/val2017/000000000139.png', STUFF_RAW)
    write_jpg(raw / 'images/train2017/000000000009.jpg', 4, 2)
    write_png(raw / 'stuffthingmaps/train2017/000000000009.png', np.full((2, 4), 181))
    run('coco-stuff', raw, tmp_path / 'data')
    root = tmp_path / 'data/coco_stuff164k'
    assert np.array_equal(read(root / 'annotations/val2017/000000000139_labelTrainIds.png'),
                          STUFF_EXPECTED)
    assert (read(root / 'annotations/train2017/000000000009_labelTrainIds.png') == 170).all()
    assert (root / 'images/val2017/000000000139.jpg').is_file()
    write_jpg(raw / 'images/val2017/000000000285.jpg', 4, 2)
    with pytest.raises(FileNotFoundError, match=r'stuffthingmaps .*missing:\n.*000000000285'):
        run('coco-stuff', raw, tmp_path / 'data')


def test_coco_stuff_in_place(tmp_path):
    # mmseg's own recipe: stuffthingmaps unzipped into data/coco_stuff164k/annotations
    root = tmp_path / 'data/coco_stuff164k'
    write_jpg(root / 'images/val2017/000000000139.jpg', 4, 2)
    write_png(root / 'annotations/val2017/000000000139.png', STUFF_RAW)
    for _ in range(2):      # the second run skips the train-id masks written by the first
        run('coco-stuff', root, tmp_path / 'data')
    assert sorted(p.name for p in (root / 'annotations/val2017').iterdir()) == \
        ['000000000139.png', '000000000139_labelTrainIds.png']
    assert np.array_equal(read(root / 'annotations/val2017/000000000139.png'), STUFF_RAW)
    assert np.array_equal(read(root / 'annotations/val2017/000000000139_labelTrainIds.png'),
                          STUFF_EXPECTED)


# ---------------------------------------------------------------- COCO-Object
def coco_instances():
    """instances_val2017.json: image 1 (8x6) with a person, a toothbrush on it (annotated
    first, so annotation order would bury it under the person) and a crowd of cars as an
    uncompressed RLE; image 2 (4x3) without annotations."""
    crowd_counts = [33, 15]      # column-major: 33 out, then column 5 rows 3-5, columns 6-7
    return dict(
        images=[dict(id=1, file_name='000000000001.jpg', width=8, height=6),
                dict(id=2, file_name='000000000002.jpg', width=4, height=3)],
        categories=[dict(id=1, name='person'), dict(id=3, name='car'),
                    dict(id=90, name='toothbrush')],
        annotations=[
            dict(id=10, image_id=1, category_id=90, iscrowd=0, area=4.0, bbox=[2, 1, 2, 2],
                 segmentation=[[2, 1, 4, 1, 4, 3, 2, 3]]),
            dict(id=11, image_id=1, category_id=1, iscrowd=0, area=30.0, bbox=[0, 0, 6, 5],
                 segmentation=[[0, 0, 6, 0, 6, 5, 0, 5]]),
            dict(id=12, image_id=1, category_id=3, iscrowd=1, area=15.0, bbox=[5, 0, 3, 6],
                 segmentation=dict(counts=crowd_counts, size=[6, 8]))])


# person (1) -> 1, toothbrush (90) -> 80, the crowd -> 255 except where the person is.
OBJECT_EXPECTED = [[1, 1, 1, 1, 1, 1, 255, 255],
                   [1, 1, 80, 80, 1, 1, 255, 255],
                   [1, 1, 80, 80, 1, 1, 255, 255],
                   [1, 1, 1, 1, 1, 1, 255, 255],
                   [1, 1, 1, 1, 1, 1, 255, 255],
                   [0, 0, 0, 0, 0, 255, 255, 255]]


@pytest.fixture
def coco_object_raw(tmp_path):
    raw = tmp_path / 'raw'
    write_jpg(raw / 'val2017/000000000001.jpg', 8, 6)       # as val2017.zip extracts
    write_jpg(raw / 'val2017/000000000002.jpg', 4, 3)
    (raw / 'annotations').mkdir()
    (raw / 'annotations/instances_val2017.json').write_text(json.dumps(coco_instances()))
    return raw


# pycocotools' decode under numpy 2 warns about numpy's copy keyword; not this code's concern.
PYCOCOTOOLS_NUMPY2 = pytest.mark.filterwarnings('ignore:__array__ implementation:DeprecationWarning')


@PYCOCOTOOLS_NUMPY2
def test_coco_object_from_instances(coco_object_raw, tmp_path):
    from mmseg.datasets import COCOStuffDataset
    assert COCOStuffDataset.METAINFO['classes'][79] == 'toothbrush'     # train id 80 = 1 + 79
    log = run('coco-object', coco_object_raw, tmp_path / 'data')
    root = tmp_path / 'data/coco_stuff164k'
    mask = Image.open(root / 'annotations/val2017/000000000001_instanceTrainIds.png')
    assert mask.mode == 'L' and np.array_equal(np.asarray(mask), OBJECT_EXPECTED)
    empty = read(root / 'annotations/val2017/000000000002_instanceTrainIds.png')
    assert empty.shape == (3, 4) and not empty.any()
    assert (root / 'images/val2017/000000000002.jpg').is_file()
    assert 'skipping train' in log


@PYCOCOTOOLS_NUMPY2
def test_coco_object_rejects_unknown_categories_and_wrong_sizes(coco_object_raw, tmp_path):
    ann_file = coco_object_raw / 'annotations/instances_val2017.json'
    data = coco_instances()
    data['annotations'][1]['category_id'] = 12      # an id COCO never used
    ann_file.write_text(json.dumps(data))
    with pytest.raises(ValueError, match='category 12 is not one of the 80 COCO things'):
        run('coco-object', coco_object_raw, tmp_path / 'data')
    write_jpg(coco_object_raw / 'val2017/000000000002.jpg', 5, 3)
    ann_file.write_text(json.dumps(coco_instances()))
    with pytest.raises(ValueError, match=r'000000000002\.jpg is 5x3 but .* says 4x3'):
        run('coco-object', coco_object_raw, tmp_path / 'data')


# ---------------------------------------------------------------- ADE20K
@pytest.fixture
def ade_raw(tmp_path):
    ade = tmp_path / 'raw/ADEChallengeData2016'
    for split, prefix in (('validation', 'val'), ('training', 'train')):
        write_jpg(ade / f'images/{split}/ADE_{prefix}_00000001.jpg', 3, 2)
        write_png(ade / f'annotations/{split}/ADE_{prefix}_00000001.png', [[0, 1, 150],
                                                                          [2, 3, 4]])
    (ade / 'objectInfo150.txt').write_text('Idx\tRatio\tTrain\tVal\tName\n')
    return tmp_path / 'raw'


def test_ade20k_linked_as_is(ade_raw, tmp_path):
    run('ade150', ade_raw, tmp_path / 'data')
    root = tmp_path / 'data/ADEChallengeData2016'
    for split, prefix in (('validation', 'val'), ('training', 'train')):
        assert np.array_equal(read(root / f'annotations/{split}/ADE_{prefix}_00000001.png'),
                              [[0, 1, 150], [2, 3, 4]])
        assert (root / f'images/{split}/ADE_{prefix}_00000001.jpg').is_file()
    assert (root / 'objectInfo150.txt').is_file()


def test_ade20k_unpaired_files_fail(ade_raw, tmp_path):
    ade = ade_raw / 'ADEChallengeData2016'
    write_jpg(ade / 'images/validation/ADE_val_00000002.jpg', 3, 2)
    with pytest.raises(FileNotFoundError, match=r'annotations missing:\n.*ADE_val_00000002\.png'):
        run('ade20k', ade_raw, tmp_path / 'data')
    (ade / 'images/validation/ADE_val_00000002.jpg').unlink()
    write_png(ade / 'annotations/validation/ADE_val_00000003.png', [[0]])
    with pytest.raises(FileNotFoundError, match=r'ADE_val_00000003\.jpg'):
        run('ade20k', ade_raw, tmp_path / 'data')


# ---------------------------------------------------------------- names and the command
def test_every_layout_has_one_converter_and_describes_its_files():
    assert set(PREPARERS) == set(LAYOUTS)
    for layout in LAYOUTS.values():
        tree = layout.tree()
        assert tree.startswith(f'{layout.subdir}/')
        assert f'{layout.mask_suffix}\n' in tree and str(layout.num_labels - 1) in tree


def test_every_prepare_hint_names_a_real_command():
    from ovseg_bench.data.datasets import NATIVE, COCOObjectDataset, PascalVOC20Dataset
    hinted = [name for _, _, name in NATIVE.values()]
    hinted += [PascalVOC20Dataset.PREPARE_NAME, COCOObjectDataset.PREPARE_NAME]
    for name in dataset_names():
        cfg = load_dataset_cfg(name)
        if 'make-synthetic' not in cfg['prepare']:
            hinted.append(cfg['prepare'].split()[2])
    for name in hinted:
        layout = LAYOUTS[resolve_name(name)]
        assert layout.subdir in ('VOCdevkit/VOC2012', 'VOCdevkit/VOC2010', 'coco_stuff164k',
                                 'ADEChallengeData2016', 'cityscapes', 'ADE20K_2021_17_01')
    assert {resolve_name(n) for n in hinted} == set(LAYOUTS)
    with pytest.raises(KeyError, match='valid: voc, context, coco-stuff, coco-object, ade20k, '
                                       'cityscapes'):
        resolve_name('kitti')


def test_out_must_be_the_data_root(voc_raw, tmp_path):
    with pytest.raises(ValueError, match=f'use --out {tmp_path / "data"}'):
        run('voc', voc_raw, tmp_path / 'data/VOCdevkit/VOC2012')


def test_prepare_command(voc_raw, tmp_path, capsys):
    out = tmp_path / 'data'
    args = build_parser().parse_args(['prepare', 'voc', '--src', str(voc_raw), '--out',
                                      str(out), '--split', 'val'])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert f'check it with: ovseg-bench check-data {out} --dataset voc' in printed
    assert 'voc21, voc20' in printed
    assert not (out / 'VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt').exists()
