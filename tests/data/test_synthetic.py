"""The synthetic world: determinism, label/caption agreement and the four on-disk layouts."""
import json
import re
import time

import numpy as np
import pytest
from PIL import Image

from ovseg_bench.data import synthetic as S
from ovseg_bench.data.layouts import voc_colormap
from ovseg_bench.data.synthetic.scene import render
from ovseg_bench.data.synthetic.world import _VOCAB_VIEWS
from ovseg_bench.text import VOCAB_DIR, load_vocabulary


def mentions(caption, cls):
    """Whether ``caption`` names ``cls`` by one of its names (singular or plural)."""
    names = '|'.join(re.escape(n) for n in sorted(S.WORLD.names(cls), key=len, reverse=True))
    return re.search(rf'\b({names})(s|es)?\b', caption.lower()) is not None


def scenes(n, seed=0):
    return [render(np.random.default_rng([seed, i])) for i in range(n)]


def test_render_scene_is_deterministic_by_seed():
    a = S.render_scene(np.random.default_rng(7))
    b = S.render_scene(np.random.default_rng(7))
    c = S.render_scene(np.random.default_rng(8))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    assert not np.array_equal(a[0], c[0])
    rgb, label, captions = a
    assert rgb.shape == (96, 128, 3) and rgb.dtype == np.uint8
    assert label.shape == (96, 128) and len(captions) == 5 and len(set(captions)) == 5
    rgb, label, _ = S.render_scene(np.random.default_rng(7), size=(64, 48))
    assert rgb.shape == (48, 64, 3) and label.shape == (48, 64)


def test_labels_and_captions_agree():
    seen = set()
    for s in scenes(40):
        present = [S.CLASSES[c] for c in np.unique(s['label'])]
        assert s['classes'] == present
        assert 1 <= len([c for c in present if c in S.THINGS]) <= 3
        assert 1 <= len([c for c in present if c in S.STUFF]) <= 3
        n_full = len(s['captions']) - S.THING_ONLY_CAPTIONS
        for i, caption in enumerate(s['captions']):
            assert caption[0].isupper() and caption.endswith('.')
            for cls in S.CLASSES:
                named = cls in present and (cls in S.THINGS or i < n_full)
                assert mentions(caption, cls) == named, (cls, caption)
        # every painted thing is visible, and the instances agree with the labels
        inst = s['instances']
        for i in range(1, inst.max() + 1):
            assert len(np.unique(s['label'][inst == i])) == 1
        seen.update(present)
    assert seen == set(S.CLASSES)   # every class occurs in a handful of scenes


def test_views_and_vocabularies_agree_with_the_world():
    assert S.view_classes('voc') == ('background',) + S.THINGS
    assert len(S.view_classes('context')) == 1 + len(S.CLASSES) - 1
    assert S.CONTEXT_BACKGROUND not in S.view_classes('context')
    assert S.view_classes('coco_stuff') == S.CLASSES
    assert S.ADE_OTHER not in S.view_classes('ade')
    for view in S.VIEWS:   # each class keeps its name through the lookup table
        lut, classes = S.view_lut(view), S.view_classes(view)
        shift = 1 if view in ('context59', 'ade') else 0
        for wid, cls in enumerate(S.CLASSES):
            if cls in classes:
                assert classes[lut[wid] - shift] == cls
    for name in ('synth_voc', 'synth_context', 'synth_coco', 'synth_ade'):
        text = (VOCAB_DIR / f'{name}.txt').read_text()
        assert text == '\n'.join(S.vocabulary_lines(name)) + '\n', (
            f'{name}.txt is stale: regenerate with synthetic.write_vocabularies()')
        vocab = load_vocabulary(name)
        classes = S.view_classes(_VOCAB_VIEWS[name])
        assert [v[0] for v in vocab] == list(classes)
        assert all(v for v in vocab)  # every class has text (background via its stuff)


def test_voc_colormap():
    cmap = voc_colormap()
    assert cmap[:3].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0]]
    assert cmap[255].tolist() == [224, 224, 192]


def files_of(root):
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob('*')) if p.is_file()}


def tiny_params(root):
    """The parameters ``synth_root`` was written with (read back from its synth_world.json)."""
    meta = json.loads((root / 'synth_world.json').read_text())
    return {k: meta[k] for k in ('seed', 'n_val', 'n_seg_train', 'n_caption_train',
                                 'n_caption_val')}


def test_make_synthetic_is_deterministic_fast_and_idempotent(tmp_path, synth_root, capsys):
    params = tiny_params(synth_root)
    start = time.perf_counter()
    out = S.make_synthetic(tmp_path / 'a', progress=False, **params)
    assert time.perf_counter() - start < 15
    a, b = files_of(out), files_of(synth_root)
    assert a.keys() == b.keys() and a == b
    stamp = (out / 'synth_world.json').stat().st_mtime_ns
    S.make_synthetic(out, progress=True, **params)            # same parameters: skipped
    assert 'already' in capsys.readouterr().out
    assert (out / 'synth_world.json').stat().st_mtime_ns == stamp
    S.make_synthetic(out, progress=False, **dict(params, seed=1, n_val=3))  # rewritten
    c = files_of(out)
    assert len(list((out / 'ADEChallengeData2016/images/validation').iterdir())) == 3
    assert c['VOCdevkit/VOC2012/JPEGImages/2012_000000.jpg'] != \
        a['VOCdevkit/VOC2012/JPEGImages/2012_000000.jpg']


def test_worker_processes_write_the_same_files(tmp_path, synth_root, capsys):
    params = tiny_params(synth_root)
    one = S.make_synthetic(tmp_path / 'one', workers=1, progress=False, **params)
    two = S.make_synthetic(tmp_path / 'two', workers=2, progress=True, **params)
    a, b = files_of(one), files_of(two)
    assert a.keys() == b.keys() and a == b
    printed = capsys.readouterr().out
    assert re.search(r'synthetic: VOC2012 +10 images', printed)
    assert re.search(r'synthetic: coco captions +12 images', printed)
    assert '(2 processes)' in printed


def test_a_worker_error_surfaces_with_its_message(tmp_path):
    params = dict(n_val=2, n_seg_train=2, n_caption_train=1, n_caption_val=1)
    with pytest.raises(ValueError, match='negative dimensions'):   # raised while rendering
        S.make_synthetic(tmp_path, size=(8, -1), workers=2, progress=False, **params)
    assert (tmp_path / '.synth_world_incomplete').exists()
    assert not (tmp_path / 'synth_world.json').exists()
    with pytest.raises(ValueError, match='workers'):
        S.make_synthetic(tmp_path / 'x', workers=0, progress=False, **params)


def test_make_synthetic_never_overwrites_foreign_data(tmp_path):
    params = dict(n_val=1, n_seg_train=1, n_caption_train=1, n_caption_val=1)
    (tmp_path / 'VOCdevkit' / 'VOC2012').mkdir(parents=True)
    with pytest.raises(FileExistsError, match='synth_world.json'):
        S.make_synthetic(tmp_path, progress=False, **params)
    assert (tmp_path / 'VOCdevkit' / 'VOC2012').is_dir()


def masks(folder, pattern='*.png'):
    files = sorted(folder.glob(pattern))
    assert files, folder
    return files, [Image.open(f) for f in files]


def values(images):
    return set(np.unique(np.concatenate([np.asarray(i).ravel() for i in images])).tolist())


def test_voc_layout(synth_root):
    base = synth_root / 'VOCdevkit/VOC2012'
    train = (base / 'ImageSets/Segmentation/train.txt').read_text().split()
    val = (base / 'ImageSets/Segmentation/val.txt').read_text().split()
    assert len(train) == 4 and len(val) == 6 and not set(train) & set(val)
    assert re.fullmatch(r'2012_\d{6}', val[0])
    files, ims = masks(base / 'SegmentationClass')
    assert [f.stem for f in files] == sorted(train + val)
    assert all(i.mode == 'P' for i in ims)
    assert np.array_equal(np.asarray(ims[0].getpalette()[:768]).reshape(-1, 3),
                          voc_colormap())
    v = values(ims)
    assert v <= set(range(len(S.THINGS) + 1)) | {255} and {0, 255} <= v
    for name in val:
        im = Image.open(base / 'JPEGImages' / f'{name}.jpg')
        assert im.format == 'JPEG' and im.size == (128, 96) and im.mode == 'RGB'


def test_context_layout(synth_root):
    base = synth_root / 'VOCdevkit/VOC2010'
    val = (base / 'ImageSets/SegmentationContext/val.txt').read_text().split()
    assert len(val) == 6 and re.fullmatch(r'2010_\d{6}', val[0])
    assert all((base / 'JPEGImages' / f'{n}.jpg').is_file() for n in val)
    files, ims = masks(base / 'SegmentationClassContext')
    assert len(files) == 10 and all(i.mode == 'L' for i in ims)
    assert values(ims) <= set(range(len(S.view_classes('context'))))


def test_coco_stuff_layout(synth_root):
    base = synth_root / 'coco_stuff164k'
    for split, n in (('train2017', 4), ('val2017', 6)):
        files, ims = masks(base / 'annotations' / split, '*_labelTrainIds.png')
        assert len(files) == n and all(i.mode == 'L' for i in ims)
        for f in files:
            stem = f.name[:-len('_labelTrainIds.png')]
            assert re.fullmatch(r'\d{12}', stem)
            assert (base / 'images' / split / f'{stem}.jpg').is_file()
    _, ims = masks(base / 'annotations', '*/*.png')
    v = values(ims)
    assert v <= set(range(len(S.CLASSES))) | {255} and 255 in v
    unlabelled = np.mean([np.mean(np.asarray(i) == 255) for i in ims])
    assert 0 < unlabelled < 0.05


def test_ade_layout(synth_root):
    base = synth_root / 'ADEChallengeData2016'
    for folder, tag, n in (('training', 'train', 4), ('validation', 'val', 6)):
        files, ims = masks(base / 'annotations' / folder)
        assert [f.name for f in files] == [f'ADE_{tag}_{i:08d}.png' for i in range(1, n + 1)]
        assert all((base / 'images' / folder / f'{f.stem}.jpg').is_file() for f in files)
        assert all(i.mode == 'L' for i in ims)
        assert values(ims) <= set(range(len(S.view_classes('ade')) + 1))


def test_caption_json_is_coco_format(synth_root):
    from pycocotools.coco import COCO
    base = synth_root / 'coco'
    for split, n in (('train2017', 8), ('val2017', 4)):
        doc = json.loads((base / 'annotations' / f'captions_{split}.json').read_text())
        assert {'info', 'licenses', 'images', 'annotations'} <= doc.keys()
        coco = COCO(str(base / 'annotations' / f'captions_{split}.json'))
        ids = coco.getImgIds()
        assert len(ids) == n
        for info in coco.loadImgs(ids):
            assert {'id', 'file_name', 'height', 'width', 'classes'} <= info.keys()
            assert (base / split / info['file_name']).is_file()
            caps = [a['caption'] for a in coco.loadAnns(coco.getAnnIds(imgIds=info['id']))]
            assert len(caps) == 5
            label = np.asarray(Image.open(base / 'labels' / split /
                                          info['file_name'].replace('.jpg', '.png')))
            assert label.shape == (info['height'], info['width'])
            assert info['classes'] == [S.CLASSES[c] for c in np.unique(label)]
            # every caption names the things; all but THING_ONLY_CAPTIONS name the stuff too
            for cls in info['classes']:
                named = sum(mentions(c, cls) for c in caps)
                assert named == (5 if cls in S.THINGS else 5 - S.THING_ONLY_CAPTIONS), cls


def test_world_json(synth_root):
    meta = json.loads((synth_root / 'synth_world.json').read_text())
    assert meta['things'] == list(S.THINGS) and meta['stuff'] == list(S.STUFF)
    assert meta['n_val'] == 6 and meta['size'] == [128, 96]
    assert meta['views']['ade'] == list(S.view_classes('ade'))


def test_a_subset_of_layouts_at_another_size(tmp_path):
    from ovseg_bench.data.synthetic import make_synthetic
    make_synthetic(tmp_path, n_val=2, n_seg_train=1, size=(200, 150), layouts=('voc',),
                   progress=False)
    voc = tmp_path / 'VOCdevkit' / 'VOC2012'
    images = sorted((voc / 'JPEGImages').glob('*.jpg'))
    assert len(images) == 3 and Image.open(images[0]).size == (200, 150)
    assert not (tmp_path / 'ADEChallengeData2016').exists()
    assert not (tmp_path / 'coco').exists()
    with pytest.raises(ValueError, match='valid: voc, context'):
        make_synthetic(tmp_path / 'x', layouts=('vco',), progress=False)
