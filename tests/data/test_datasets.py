"""Dataset classes read the synthetic layouts and the real samples through mmseg's own code;
named dataset configs agree with their classes and vocabularies; missing files fail clearly."""
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS
from PIL import Image

import ovseg_bench.data  # noqa: F401  (registers the dataset classes)
from ovseg_bench.data.catalog import DATASET_DIR, dataset_names, load_dataset_cfg, split_cfg
from ovseg_bench.data.datasets import check_dataset_cfg
from ovseg_bench.text import load_vocabulary

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')]
SYNTH = ['synth_voc', 'synth_context', 'synth_coco', 'synth_ade']
SCHEMA = {'name', 'description', 'vocabulary', 'has_background', 'root', 'subdir', 'prepare',
          'eval', 'train'}
WIDE = {'ignore_index', 'load_annotations'}     # the 16-bit sets (459 and 847 classes) add these


@pytest.fixture(autouse=True)
def mmseg_scope():
    init_default_scope('mmseg')


def build(type, data_root, **kwargs):
    return DATASETS.build(dict(type=type, data_root=str(data_root), pipeline=PIPELINE,
                               **kwargs))


def loaded(ds):
    """(raw mask on disk, label map after LoadAnnotations) for every sample."""
    out = []
    for i in range(len(ds)):
        r = ds[i]
        raw = np.asarray(Image.open(r['seg_map_path']))
        assert r['img'].shape[:2] == raw.shape == r['gt_seg_map'].shape
        out.append((raw, r['gt_seg_map']))
    return out


def reduced(raw):
    """mmseg's reduce_zero_label: 0 -> 255, k -> k-1, 255 stays."""
    raw = raw.astype(np.int64)
    return np.where(raw == 0, 255, np.where(raw == 255, 255, raw - 1))


@pytest.mark.parametrize('name', SYNTH)
@pytest.mark.parametrize('split,n', [('eval', 6), ('train', 4)])
def test_synthetic_configs_load_through_mmseg(synth_root, name, split, n):
    ds_cfg = load_dataset_cfg(name, synth_root)
    ds = DATASETS.build(split_cfg(ds_cfg, split, PIPELINE))
    classes = ds.metainfo['classes']
    assert len(ds) == n and len(classes) == len(load_vocabulary(ds_cfg['vocabulary']))
    for raw, gt in loaded(ds):
        assert set(np.unique(gt).tolist()) <= set(range(len(classes))) | {255}
        if name == 'synth_ade':
            assert np.array_equal(gt, reduced(raw))
        else:
            assert np.array_equal(gt, raw)


@pytest.mark.parametrize('type,subdir,prefix,ann,n_classes,reduce', [
    ('SynthVOCDataset', 'VOCdevkit/VOC2012', ('JPEGImages', 'SegmentationClass'),
     'ImageSets/Segmentation/val.txt', 9, False),
    ('PascalVOC20Dataset', 'VOCdevkit/VOC2012', ('JPEGImages', 'SegmentationClass'),
     'ImageSets/Segmentation/val.txt', 20, True),
    ('SynthContextDataset', 'VOCdevkit/VOC2010', ('JPEGImages', 'SegmentationClassContext'),
     'ImageSets/SegmentationContext/val.txt', 14, False),
    ('SynthContext59Dataset', 'VOCdevkit/VOC2010', ('JPEGImages', 'SegmentationClassContext'),
     'ImageSets/SegmentationContext/val.txt', 13, True),
    ('SynthCOCOStuffDataset', 'coco_stuff164k', ('images/val2017', 'annotations/val2017'),
     None, 14, False),
    ('SynthADEDataset', 'ADEChallengeData2016', ('images/validation', 'annotations/validation'),
     None, 13, True),
])
def test_classes_load_the_synthetic_layouts(synth_root, type, subdir, prefix, ann, n_classes,
                                            reduce):
    kwargs = dict(data_prefix=dict(img_path=prefix[0], seg_map_path=prefix[1]))
    if ann:
        kwargs['ann_file'] = ann
    ds = build(type, synth_root / subdir, **kwargs)
    assert len(ds) == 6 and len(ds.metainfo['classes']) == n_classes
    assert len(ds.metainfo['palette']) == n_classes
    seen = set()
    for raw, gt in loaded(ds):
        assert np.array_equal(gt, reduced(raw) if reduce else raw)
        seen |= set(np.unique(gt).tolist())
    assert seen <= set(range(n_classes)) | {255}
    if type in ('SynthVOCDataset', 'PascalVOC20Dataset', 'SynthContext59Dataset',
                'SynthADEDataset'):
        assert 255 in seen


def test_coco_object_layout(tmp_path):
    root = tmp_path / 'coco_stuff164k'
    (root / 'images/val2017').mkdir(parents=True)
    (root / 'annotations/val2017').mkdir(parents=True)
    mask = np.zeros((8, 10), np.uint8)
    mask[2:5, 2:6], mask[6:, :] = 80, 255
    Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(root / 'images/val2017/000000000001.jpg')
    Image.fromarray(mask).save(root / 'annotations/val2017/000000000001_instanceTrainIds.png')
    Image.fromarray(mask).save(root / 'annotations/val2017/000000000001_labelTrainIds.png')
    ds = DATASETS.build(split_cfg(load_dataset_cfg('coco_object', tmp_path), 'eval', PIPELINE))
    assert len(ds) == 1 and len(ds.metainfo['classes']) == 81
    assert ds.metainfo['classes'][80] == 'toothbrush'
    assert np.array_equal(ds[0]['gt_seg_map'], mask)


def test_real_voc_samples(real_samples):
    root = real_samples / 'VOCdevkit/VOC2012'
    kwargs = dict(data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
                  ann_file='ImageSets/Segmentation/val.txt')
    voc21, voc20 = build('PascalVOCDataset', root, **kwargs), build('PascalVOC20Dataset', root,
                                                                    **kwargs)
    assert len(voc21) == len(voc20) > 0 and len(voc20.metainfo['classes']) == 20
    seen = set()
    for (raw, gt21), (_, gt20) in zip(loaded(voc21), loaded(voc20)):
        assert Image.open(voc21[0]['seg_map_path']).mode == 'P'
        assert np.array_equal(gt21, raw) and np.array_equal(gt20, reduced(raw))
        seen |= set(np.unique(raw).tolist())
    assert seen <= set(range(21)) | {255} and {0, 255} <= seen and len(seen) > 3


def test_real_ade_samples(real_samples):
    ds = build('ADE20KDataset', real_samples / 'ADEChallengeData2016',
               data_prefix=dict(img_path='images/validation',
                                seg_map_path='annotations/validation'))
    assert len(ds) == 3 and len(ds.metainfo['classes']) == 150
    for raw, gt in loaded(ds):
        assert raw.max() <= 150
        assert np.array_equal(gt, reduced(raw))
        assert (gt[raw == 0] == 255).all() and gt.max() <= 255
        assert set(np.unique(gt).tolist()) <= set(range(150)) | {255}


@pytest.mark.parametrize('name', dataset_names())
def test_dataset_configs_match_classes_and_vocabularies(name):
    ds = load_dataset_cfg(name)
    assert set(ds) - WIDE == SCHEMA and ds['name'] == name == (DATASET_DIR / f'{name}.py').stem
    assert set(ds) & WIDE in (set(), WIDE)
    assert '\n' not in ds['description'] and ds['description']
    cls = DATASETS.get(ds['eval']['type'])
    assert cls is not None and DATASETS.get(ds['train']['type']) is cls
    assert not {'data_root', 'pipeline'} & (set(ds['eval']) | set(ds['train']))
    classes = cls.METAINFO['classes']
    vocab = load_vocabulary(ds['vocabulary'])
    assert len(vocab) == len(classes)
    assert ds['has_background'] == (classes[0] == 'background')
    assert (ds['root'] == 'data/synth') == name.startswith('synth_')
    assert ('make-synthetic' in ds['prepare']) == name.startswith('synth_')
    if not name.startswith('synth_'):
        assert ds['prepare'] == f'ovseg-bench prepare {name} --src RAW --out data'
        if ds['has_background']:
            assert vocab[0] == []   # background decided by the threshold
        assert all(v for v in vocab[1 if ds['has_background'] else 0:])
        flat = [n for v in vocab for n in v]
        if name != 'ade847':    # ADE-847's WordNet names repeat across classes (two "pot"s)
            assert len(flat) == len(set(flat))  # no name shared by two classes


def test_real_vocabularies_follow_mmseg_class_order():
    from mmseg.datasets import ADE20KDataset, PascalContextDataset59, PascalVOCDataset
    voc = [v[0] for v in load_vocabulary('voc20')]
    assert voc[0] == 'aeroplane' and voc[-1] == 'tv monitor'
    assert [v[0].replace(' ', '') for v in load_vocabulary('voc20')] == \
        list(PascalVOCDataset.METAINFO['classes'][1:])
    assert [v[0].replace(' ', '') for v in load_vocabulary('context59')] == \
        [c.replace(' ', '') for c in PascalContextDataset59.METAINFO['classes']]
    assert [v[0] for v in load_vocabulary('ade150')] == \
        [c.strip() for c in ADE20KDataset.METAINFO['classes']]
    assert load_vocabulary('coco_stuff171')[:80] == load_vocabulary('coco_object')[1:]
    assert load_vocabulary('voc21')[1:] == load_vocabulary('voc20')
    assert load_vocabulary('context60')[1:] == load_vocabulary('context59')


@pytest.mark.parametrize('name,expect', [
    ('synth_voc', ['make-synthetic --out {root}', 'VOCdevkit/VOC2012/', 'JPEGImages',
                   'SegmentationClass/<name>.png']),
    ('synth_ade', ['make-synthetic --out {root}', 'ADEChallengeData2016/',
                   'annotations/{training,validation}']),
    ('voc20', ['ovseg-bench prepare voc20 --src RAW --out {root}', 'VOCdevkit/VOC2012/']),
    ('coco_object', ['ovseg-bench prepare coco_object --src RAW --out {root}',
                     '_instanceTrainIds.png']),
])
def test_missing_root_names_layout_and_prepare_command(tmp_path, name, expect):
    root = tmp_path / 'nowhere'
    with pytest.raises(FileNotFoundError) as err:  # checked as soon as the split is configured
        split_cfg(load_dataset_cfg(name, root), 'eval', PIPELINE)
    msg = str(err.value)
    assert 'data root' in msg and str(root) in msg
    for text in expect:
        assert text.replace('{root}', str(root)) in msg


def test_missing_split_file_is_named(synth_root, tmp_path):
    cfg = split_cfg(load_dataset_cfg('synth_context', synth_root), 'eval', PIPELINE)
    cfg['ann_file'] = 'ImageSets/SegmentationContext/test.txt'
    with pytest.raises(FileNotFoundError, match=r'split file .*test\.txt'):
        DATASETS.build(cfg)


def test_check_dataset_cfg_covers_mmseg_classes(tmp_path, synth_root):
    # split_cfg runs check_dataset_cfg, so mmseg's own classes fail as clearly as ours.
    with pytest.raises(FileNotFoundError, match='prepare voc21 --src RAW') as err:
        split_cfg(load_dataset_cfg('voc21', tmp_path), 'eval')
    assert f'--out {tmp_path}' in str(err.value)
    assert 'SegmentationClass/<name>.png' in str(err.value)
    with pytest.raises(FileNotFoundError, match=f'make-synthetic --out {tmp_path / "s"}'):
        split_cfg(load_dataset_cfg('synth_coco', tmp_path / 's'), 'eval')
    for name in SYNTH:
        check_dataset_cfg(split_cfg(load_dataset_cfg(name, synth_root), 'eval'))


def test_config_files_are_plain_mmengine_configs():
    for name in dataset_names():
        cfg = Config.fromfile(str(DATASET_DIR / f'{name}.py'))
        assert list(cfg.keys()) == ['dataset']


def test_checked_loading_names_missing_corrupt_colour_and_misfit_files(tmp_path):
    from ovseg_bench.data.datasets import LoadAnnotationsChecked, LoadImageChecked
    img, mask = tmp_path / 'a.jpg', tmp_path / 'a.png'
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(img)
    Image.fromarray(np.zeros((6, 8), np.uint8)).save(mask)

    def load(img_path=img, mask_path=mask):
        results = dict(img_path=str(img_path), seg_map_path=str(mask_path),
                       reduce_zero_label=False, seg_fields=[])
        return LoadAnnotationsChecked()(LoadImageChecked()(results))
    assert load()['gt_seg_map'].shape == (6, 8)
    with pytest.raises(FileNotFoundError, match=rf'image {tmp_path / "b.jpg"} not found \(listed '
                                                r'in the split\); check the data root'):
        load(img_path=tmp_path / 'b.jpg')
    (tmp_path / 'bad.jpg').write_bytes(b'garbage')
    with pytest.raises(ValueError, match=rf'cannot read image {tmp_path / "bad.jpg"} \(not a '
                                         r'decodable image\)'):
        load(img_path=tmp_path / 'bad.jpg')
    (tmp_path / 'bad.png').write_bytes(b'garbage')
    with pytest.raises(ValueError, match=rf'cannot read mask {tmp_path / "bad.png"} \(cannot '
                                         r'identify image file\);'):
        load(mask_path=tmp_path / 'bad.png')
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(tmp_path / 'rgb.png')
    with pytest.raises(ValueError, match=r'rgb.png has 3 channels: a colour-coded mask'):
        load(mask_path=tmp_path / 'rgb.png')
    Image.fromarray(np.zeros((4, 5), np.uint8)).save(tmp_path / 'small.png')
    with pytest.raises(ValueError, match=rf'small.png is 5x4 but its image {img} is 8x6'):
        load(mask_path=tmp_path / 'small.png')


def test_empty_split_file_is_named(synth_root, tmp_path):
    import shutil
    root = tmp_path / 'synth'
    shutil.copytree(synth_root / 'VOCdevkit', root / 'VOCdevkit')
    split = root / 'VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt'
    split.write_text('\n')
    with pytest.raises(ValueError, match=rf'SynthVOCDataset: the split file {split} lists no '
                                         r'image; prepare it again: ovseg-bench make-synthetic'):
        split_cfg(load_dataset_cfg('synth_voc', root), 'eval')
