"""Image-caption datasets in their three on-disk formats, failures named by path, corrupt
images skipped, views made by the pipeline config, and the collate."""
import io
import json
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from ovseg_bench.data.image_text import (CocoCaptionDataset, ConcatCaptionDatasets,
                                         CsvCaptionDataset, KarpathyCaptionDataset,
                                         MultiCropViews, PatchMask, Superpixels,
                                         WebDatasetShards, expand_braces, image_text_collate,
                                         pack)

PIPE = [dict(type='ToTensorRGB')]


def jpeg_bytes(seed, size=(40, 32)):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format='JPEG')
    return buf.getvalue()


def write_coco(root, n=3, captions_per_image=5, images=True):
    """A COCO captions JSON in the exact format (plus the synthetic ``classes`` key)."""
    (root / 'train2017').mkdir(parents=True, exist_ok=True)
    (root / 'annotations').mkdir(exist_ok=True)
    imgs, anns = [], []
    for i in range(n if images else 0):
        name = f'{i:012d}.jpg'
        (root / 'train2017' / name).write_bytes(jpeg_bytes(i))
        imgs.append(dict(license=1, file_name=name, coco_url='', height=32, width=40,
                         date_captured='2017-01-01 00:00:00', flickr_url='', id=100 + i,
                         classes=['circle'] if i % 2 else ['square', 'grass']))
        for j in range(captions_per_image):
            anns.append(dict(image_id=100 + i, id=len(anns) + 1, caption=f'image {i} caption {j}'))
    ann = root / 'annotations' / 'captions_train2017.json'
    ann.write_text(json.dumps(dict(info={}, licenses=[], images=imgs, annotations=anns)))
    return ann


def test_coco_captions_load(tmp_path):
    write_coco(tmp_path)
    ds = CocoCaptionDataset(data_root=str(tmp_path), pipeline=PIPE)
    assert len(ds) == 3
    item = ds[1]
    assert item['images'].dtype == torch.uint8 and item['images'].shape == (3, 32, 40)
    assert item['captions'] in item['all_captions'] and len(item['all_captions']) == 5
    assert item['all_captions'][0] == 'image 1 caption 0'
    assert item['skipped_images'] == []
    assert ds.classes(1) == ['circle']
    # RGB is kept: the decoded JPEG equals PIL's RGB decode
    ref = np.asarray(Image.open(tmp_path / 'train2017' / '000000000001.jpg').convert('RGB'))
    assert torch.equal(item['images'], torch.from_numpy(ref.transpose(2, 0, 1).copy()))


def write_karpathy(root):
    """Karpathy's ``dataset_coco.json`` in its exact format, with COCO 2014 image folders:
    one image per split, plus a restval image without sentences."""
    entries = [('train2014', 'train', 9), ('val2014', 'restval', 139), ('val2014', 'val', 285),
               ('val2014', 'test', 632), ('val2014', 'restval', 724)]
    images, sentid = [], 0
    for imgid, (folder, split, cocoid) in enumerate(entries):
        filename = f'COCO_{folder}_{cocoid:012d}.jpg'
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / filename).write_bytes(jpeg_bytes(imgid))
        n_sentences = 0 if cocoid == 724 else 5
        sentences = []
        for j in range(n_sentences):
            raw = f'{split} image {cocoid} caption {j}. '     # raw captions keep odd spacing
            sentences.append(dict(tokens=raw.lower().strip(' .').split(), raw=raw,
                                  imgid=imgid, sentid=sentid))
            sentid += 1
        images.append(dict(filepath=folder, sentids=[s['sentid'] for s in sentences],
                           filename=filename, imgid=imgid, split=split, sentences=sentences,
                           cocoid=cocoid))
    ann = root / 'dataset_coco.json'
    ann.write_text(json.dumps(dict(images=images, dataset='coco')))
    return ann


def test_karpathy_split_file(tmp_path):
    write_karpathy(tmp_path)
    ds = KarpathyCaptionDataset(data_root=str(tmp_path), pipeline=PIPE)
    assert len(ds) == 2                       # train + restval; the caption-less one left out
    assert ds.image_path(0) == str(tmp_path / 'train2014' / 'COCO_train2014_000000000009.jpg')
    assert ds.image_path(1) == str(tmp_path / 'val2014' / 'COCO_val2014_000000000139.jpg')
    item = ds[1]
    assert item['all_captions'][0] == 'restval image 139 caption 0.'
    assert len(item['all_captions']) == 5 and item['captions'] in item['all_captions']
    assert item['images'].shape == (3, 32, 40)

    test = KarpathyCaptionDataset(data_root=str(tmp_path), split='test')
    assert [test.image_path(0)] == [str(tmp_path / 'val2014' / 'COCO_val2014_000000000632.jpg')]
    assert len(KarpathyCaptionDataset(data_root=str(tmp_path),
                                      split=('train', 'restval', 'val', 'test'))) == 4

    # images of an evaluation set (COCO 2017 val is a subset of 2014 val) can be left out
    (tmp_path / 'annotations').mkdir()
    (tmp_path / 'annotations' / 'captions_val2017.json').write_text(json.dumps(
        dict(images=[dict(id=139, file_name='000000000139.jpg')], annotations=[])))
    clean = KarpathyCaptionDataset(data_root=str(tmp_path),
                                   exclude_ann_file='annotations/captions_val2017.json')
    assert len(clean) == 1 and clean.num_excluded == 1

    with pytest.raises(ValueError, match="'restvall'.*restval"):
        KarpathyCaptionDataset(data_root=str(tmp_path), split=('train', 'restvall'))
    with pytest.raises(FileNotFoundError, match='caption_datasets.zip'):
        KarpathyCaptionDataset(data_root=str(tmp_path / 'nowhere'))
    coco = write_coco(tmp_path / 'coco')
    with pytest.raises(ValueError, match='CocoCaptionDataset'):
        KarpathyCaptionDataset(ann_file=str(coco))


@pytest.mark.parametrize('suffix,sep', [('.csv', ','), ('.tsv', '\t')])
def test_csv_and_tsv_load(tmp_path, suffix, sep):
    for i in range(2):
        (tmp_path / f'img{i}.jpg').write_bytes(jpeg_bytes(i))
    image_col, caption_col = ('filepath', 'title') if sep == '\t' else ('image', 'caption')
    rows = [f'{image_col}{sep}{caption_col}', f'img0.jpg{sep}a red circle',
            f'img1.jpg{sep}a blue square', f'img0.jpg{sep}a round thing']
    path = tmp_path / f'cc3m{suffix}'
    path.write_text('\n'.join(rows) + '\n')
    ds = CsvCaptionDataset(str(path), pipeline=PIPE)
    assert len(ds) == 2                      # rows of the same image are grouped
    assert ds[0]['all_captions'] == ['a red circle', 'a round thing']
    assert ds[1]['captions'] == 'a blue square'
    with pytest.raises(KeyError, match='caption_col|columns'):
        CsvCaptionDataset(str(path), caption_col='text_en')


def write_shard(path, samples):
    with tarfile.open(path, 'w') as tar:
        for name, data in samples:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_webdataset_shards_load(tmp_path):
    write_shard(tmp_path / '00000.tar', [
        ('000000000.jpg', jpeg_bytes(0)), ('000000000.txt', b'a green star\n'),
        ('000000000.json', b'{"caption": "ignored: the txt wins", "width": 40}'),
        ('000000001.jpg', jpeg_bytes(1)), ('000000001.json', b'{"caption": "from json"}'),
        ('000000002.txt', b'caption without an image')])
    write_shard(tmp_path / '00001.tar', [
        ('sub/000010000.png', _png(2)), ('sub/000010000.txt', b'a png sample')])
    ds = WebDatasetShards(str(tmp_path / '*.tar'), pipeline=PIPE)
    assert len(ds) == 3                       # the image-less sample is left out
    assert [ds[i]['captions'] for i in range(3)] == ['a green star', 'from json',
                                                     'a png sample']
    assert ds[2]['images'].shape == (3, 32, 40)
    assert ds.image_path(2).endswith('00001.tar:sub/000010000.png')
    with pytest.raises(FileNotFoundError, match='nothing-here'):
        WebDatasetShards(str(tmp_path / 'nothing-here-*.tar'))


def test_brace_expansion():
    assert expand_braces('cc12m/{00000..00002}.tar') == [
        'cc12m/00000.tar', 'cc12m/00001.tar', 'cc12m/00002.tar']
    assert expand_braces('{8..11}') == ['8', '9', '10', '11']       # no padding asked
    assert expand_braces('{098..100}') == ['098', '099', '100']
    assert expand_braces('{cc3m,cc12m/{0..1}}.tar') == ['cc3m.tar', 'cc12m/0.tar',
                                                        'cc12m/1.tar']
    assert expand_braces('{a,b}-{1..2}') == ['a-1', 'a-2', 'b-1', 'b-2']
    assert expand_braces('x{y}z{') == ['x{y}z{']                   # not expansions: literal


def test_webdataset_brace_ranges_and_missing_shards(tmp_path):
    for i in range(3):
        write_shard(tmp_path / f'{i:05d}.tar', [(f'{i}.jpg', jpeg_bytes(i)),
                                                 (f'{i}.txt', f'shard {i}'.encode())])
    (tmp_path / 'cc3m').mkdir()
    write_shard(tmp_path / 'cc3m' / 'a.tar', [('9.jpg', jpeg_bytes(9)), ('9.txt', b'cc3m')])
    ds = WebDatasetShards(str(tmp_path / '{00000..00002}.tar'))
    assert ds.shards == [str(tmp_path / f'{i:05d}.tar') for i in range(3)]
    assert [ds.captions(i) for i in range(3)] == [['shard 0'], ['shard 1'], ['shard 2']]
    # lists of globs and paths, braces and globs mixed
    ds = WebDatasetShards([str(tmp_path / '{cc3m/*,00001}.tar')])
    assert ds.shards == [str(tmp_path / 'cc3m' / 'a.tar'), str(tmp_path / '00001.tar')]

    with pytest.raises(FileNotFoundError) as err:
        WebDatasetShards(str(tmp_path / '{00000..00004}.tar'))
    msg = str(err.value)
    assert '2 of the 5 shards' in msg and '{00000..00004}.tar' in msg
    assert '00003.tar' in msg and '00004.tar' in msg and '00002.tar' not in msg
    with pytest.raises(FileNotFoundError, match='cc12m'):
        WebDatasetShards(str(tmp_path / '{cc3m,cc12m}/*.tar'))


def test_concat_caption_datasets_share_one_pipeline(tmp_path):
    write_coco(tmp_path / 'coco', n=2)
    write_karpathy(tmp_path / 'karpathy')
    ds = ConcatCaptionDatasets([
        dict(type='CocoCaptionDataset', data_root=str(tmp_path / 'coco')),
        dict(type='KarpathyCaptionDataset', data_root=str(tmp_path / 'karpathy'),
             split='train', pipeline=[dict(type='ResizeRGB', size=8),
                                      dict(type='ToTensorRGB')]),
    ], pipeline=[dict(type='ResizeRGB', size=16), dict(type='ToTensorRGB')])
    assert len(ds) == 3
    assert [ds[i]['images'].shape[-1] for i in range(3)] == [16, 16, 8]
    assert ds[2]['all_captions'][0] == 'train image 9 caption 0.'
    assert ds.metainfo['num_images'] == 3 and len(ds.metainfo['parts']) == 2
    with pytest.raises(IndexError):
        ds[3]
    (tmp_path / 'coco' / 'train2017' / '000000000000.jpg').unlink()
    assert ds[0]['skipped_images'] and ds.num_skipped == 1


def _png(seed):
    buf = io.BytesIO()
    Image.open(io.BytesIO(jpeg_bytes(seed))).save(buf, format='PNG')
    return buf.getvalue()


def test_empty_sources_fail_with_their_path(tmp_path):
    ann = write_coco(tmp_path / 'coco', images=False)
    with pytest.raises(ValueError, match=str(ann)):
        CocoCaptionDataset(data_root=str(tmp_path / 'coco'))
    with pytest.raises(FileNotFoundError, match='missing.json'):
        CocoCaptionDataset(data_root=str(tmp_path), ann_file='missing.json')
    csv_path = tmp_path / 'empty.csv'
    csv_path.write_text('filepath,title\n')
    with pytest.raises(ValueError, match=str(csv_path)):
        CsvCaptionDataset(str(csv_path))
    write_shard(tmp_path / 'empty.tar', [('0.txt', b'no image at all')])
    with pytest.raises(ValueError, match='empty.tar'):
        WebDatasetShards(str(tmp_path / 'empty.tar'))


def test_corrupt_and_missing_images_are_reported_and_skipped(tmp_path):
    write_coco(tmp_path, n=4)
    bad = tmp_path / 'train2017' / '000000000001.jpg'
    bad.write_bytes(b'\xff\xd8\xff this is not a jpeg')
    (tmp_path / 'train2017' / '000000000002.jpg').unlink()
    ds = CocoCaptionDataset(data_root=str(tmp_path), pipeline=PIPE)
    item = ds[1]                               # 1 corrupt, 2 missing -> image 3
    assert item['all_captions'][0] == 'image 3 caption 0'
    assert item['skipped_images'] == [str(bad), str(tmp_path / 'train2017' /
                                                    '000000000002.jpg')]
    assert ds.num_skipped == 2 and str(bad) in ds.skipped
    assert 'OSError' in ds.skipped[str(bad)] or 'Error' in ds.skipped[str(bad)]
    assert ds[0]['skipped_images'] == []


def test_views_come_from_the_pipeline_config(tmp_path):
    write_coco(tmp_path, n=2)
    plain = CocoCaptionDataset(data_root=str(tmp_path), pipeline=[
        dict(type='RandomResizedCropRGB', size=16), dict(type='ToTensorRGB')])
    assert set(plain[0]) == {'images', 'captions', 'all_captions', 'img_path',
                             'skipped_images'}
    ds = CocoCaptionDataset(data_root=str(tmp_path), pipeline=[
        dict(type='MultiCropViews', global_size=16, local_size=8, n_global=2, n_local=3),
        dict(type='Superpixels', patch=8, scale=50, sigma=0.5, min_size=5),
        dict(type='ResizeRGB', size=16),
        dict(type='PatchMask', ratio=0.25, patch=4),
        dict(type='ToTensorRGB')])
    item = ds[0]
    assert item['images'].shape == (3, 16, 16)
    assert item['global_crops'].shape == (2, 3, 16, 16)
    assert item['global_crops'].dtype == torch.uint8
    assert item['local_crops'].shape == (3, 3, 8, 8)
    assert item['crop_boxes'].shape == (5, 4) and item['crop_flips'].shape == (5,)
    boxes = item['crop_boxes']
    assert (boxes[:, 2] <= 40 + 1e-3).all() and (boxes[:, 3] <= 32 + 1e-3).all()
    assert item['superpixels'].shape == (4, 5)     # 32x40 image, 8-px patches
    ids = item['superpixels'].unique()
    assert torch.equal(ids, torch.arange(len(ids)))
    assert item['mask'].shape == (4, 4) and int(item['mask'].sum()) == 4
    batch = image_text_collate([ds[0], ds[1]])
    assert batch['images'].shape == (2, 3, 16, 16)
    assert batch['global_crops'].shape == (2, 2, 3, 16, 16)
    assert isinstance(batch['captions'], list) and all(isinstance(c, str)
                                                       for c in batch['captions'])
    assert batch['skipped_images'] == []


def test_transforms_are_direct_callables():
    rng_img = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    out = MultiCropViews(16, 8, n_global=1, n_local=0)(dict(img=rng_img, color_order='rgb'))
    assert out['global_crops'].shape == (1, 3, 16, 16) and 'local_crops' not in out
    out = PatchMask(ratio=0.0, patch=8)(dict(img=rng_img))
    assert not out['mask'].any()
    sp = Superpixels(patch=8)(dict(img=rng_img, color_order='rgb'))['superpixels']
    assert sp.shape == (3, 4)


def test_pack_flips_mmcv_bgr_images_to_rgb():
    bgr = np.zeros((2, 2, 3), np.uint8)
    bgr[..., 0] = 255                          # blue in BGR order
    assert pack(dict(img=bgr))['images'][2].eq(255).all()          # -> channel 2 (B of RGB)
    assert pack(dict(img=bgr, color_order='rgb'))['images'][0].eq(255).all()


def test_malformed_json_and_all_images_unreadable_name_the_files(tmp_path):
    write_coco(tmp_path)
    ann = tmp_path / 'annotations' / 'captions_train2017.json'
    text = ann.read_text()
    ann.write_text(text[:len(text) // 2])
    with pytest.raises(ValueError, match=rf'{ann} is not valid JSON \(.*line'):
        CocoCaptionDataset(str(tmp_path), pipeline=PIPE)
    karpathy = tmp_path / 'dataset_coco.json'
    karpathy.write_text('{"images": [')
    with pytest.raises(ValueError, match=rf'{karpathy} is not valid JSON'):
        KarpathyCaptionDataset(str(tmp_path), pipeline=PIPE)
    ann.write_text(text)
    for img in (tmp_path / 'train2017').iterdir():
        img.write_bytes(b'garbage')
    ds = CocoCaptionDataset(str(tmp_path), pipeline=PIPE)
    with pytest.raises(ValueError, match=r'3 unreadable images in a row \(the first '
                                         rf'{tmp_path / "train2017"}/.*\); are the images of '
                                         rf'{ann} where it says'):
        ds[0]
