"""Image-caption datasets in their three on-disk formats, failures named by path, corrupt
images skipped, views made by the pipeline config, and the collate."""
import io
import json
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from ovseg_bench.data.image_text import (CocoCaptionDataset, CsvCaptionDataset, MultiCropViews,
                                         PatchMask, Superpixels, WebDatasetShards, pack,
                                         image_text_collate)

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
