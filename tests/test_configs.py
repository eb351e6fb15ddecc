"""Every ViT-B/16 method config loads, builds its head on a randomly initialised ViT-B/16 (no
weights: ``backbone.pretrained=None``, given explicitly as a user would with --cfg-options),
names known datasets and a protocol, and -- when it trains on image-caption data -- has a
training pipeline that makes the views its head trains on."""
import copy
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config

from ovseg_bench import config as C
from ovseg_bench.backbones import HFCLIPBackbone
from ovseg_bench.data.catalog import dataset_names
from ovseg_bench.data.image_text import Pipeline
from ovseg_bench.engine.evaluate import load_head
from ovseg_bench.engine.trainer import check_train_config

REPO = Path(__file__).resolve().parents[1]
VIT_B16_CONFIGS = sorted(p for p in REPO.glob('configs/*/*vit*b16*.py')
                         if p.parent.name != 'bench')   # method configs, not matrices
NO_WEIGHTS = {'backbone.pretrained': None}
# The transformers recipe of the configs' comments: `_delete_` drops the open_clip arguments.
HF_RECIPE = {'backbone._delete_': True, 'backbone.type': 'HFCLIPBackbone',
             'backbone.path': '/path/to/clip-vit-base-patch16'}


def test_the_vit_b16_configs_are_found():
    names = {p.name for p in VIT_B16_CONFIGS}
    assert {'maskclip_vit_b16.py', 'clip_vit_b16.py', 'pacl_vit_b16.py',
            'segclip_vit_b16_cc3m_coco.py', 'vilseg_vit_b16.py'} <= names
    assert any(n.startswith('clip_zss_vit_b16_') for n in names)


def caption_pipeline(train_data):
    """The transforms an image-caption training item goes through (None when the data are
    loaded from files by the pipeline itself, as for the segmentation datasets)."""
    if train_data['type'] == 'ConcatCaptionDatasets':
        return train_data['pipeline']
    pipeline = train_data.get('pipeline') or []
    if any(t['type'].startswith('Load') for t in pipeline):
        return None
    return pipeline


@pytest.mark.parametrize('path', VIT_B16_CONFIGS, ids=lambda p: p.name)
def test_vit_b16_config_builds_its_head_without_weights(path):
    cfg = Config.fromfile(str(path))
    text = path.read_text()
    assert cfg.backbone.type == 'OpenCLIPBackbone' and cfg.backbone.model == 'ViT-B-16'
    assert 'backbone.pretrained=' in text, 'say which local checkpoint the config needs'
    if 'HFCLIPBackbone' in text:
        assert 'backbone._delete_=True' in text, 'the HF recipe must drop the open_clip keys'
    assert cfg.datasets and set(cfg.datasets) <= set(dataset_names()), cfg.datasets
    assert cfg.protocol['name']
    C.check_keys(cfg, C.TOP_LEVEL_KEYS)

    cfg.merge_from_dict(NO_WEIGHTS)
    if cfg.method.get('vfm'):        # a second image model beside CLIP (ProxyCLIP) names its own
        assert 'method.vfm.pretrained=' in text
        cfg.merge_from_dict({'method.vfm.pretrained': None})
    if cfg.method.get('encoder', {}).get('pretrained'):     # CLIP-ZSS's ImageNet encoder
        cfg.merge_from_dict({'method.encoder.pretrained': None})
    head = load_head(cfg)
    bb = head.backbone
    assert (bb.patch_size, bb.width, bb.num_layers, bb.embed_dim) == (16, 768, 12, 512)

    if 'train_data' in cfg:
        check_train_config(cfg)
        pipeline = caption_pipeline(cfg.train_data)
        if pipeline is not None:
            img = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
            item = Pipeline(copy.deepcopy(pipeline))(
                dict(img=img, color_order='rgb', caption='a photo', all_captions=['a photo']))
            missing = [k for k in ('images',) + tuple(head.train_views) if k not in item]
            assert not missing, f'the pipeline makes no {missing}'

    hf = Config.fromfile(str(path))
    hf.merge_from_dict(HF_RECIPE)
    assert dict(hf.backbone) == dict(type='HFCLIPBackbone', path=HF_RECIPE['backbone.path'])
    C.check_kwargs(HFCLIPBackbone, hf.backbone, 'backbone')


def test_did_you_mean_is_one_helper_that_catches_case_only_typos():
    from ovseg_bench.config import did_you_mean
    from ovseg_bench.data.catalog import load_dataset_cfg
    from ovseg_bench.registry import METHODS, check_name
    assert did_you_mean('SegClip', ['SegCLIP', 'PACL']) == ' Did you mean SegCLIP?'
    assert did_you_mean('miou', ['mIoU', 'mAcc', 'aAcc']) == ' Did you mean mIoU?'
    assert did_you_mean('zzz', ['mIoU']) == ''
    with pytest.raises(KeyError, match="unknown method 'Pacl'. Did you mean PACL?"):
        check_name(METHODS, 'Pacl')
    with pytest.raises(KeyError, match="unknown dataset 'Synth_VOC'. Did you mean synth_voc?"):
        load_dataset_cfg('Synth_VOC')


def test_a_method_argument_of_the_wrong_kind_names_the_key():
    from ovseg_bench.config import check_kwargs
    from ovseg_bench.registry import METHODS, load_plugins
    load_plugins()
    with pytest.raises(ValueError, match=r"config key method.num_centers must be a number "
                                         r"\(like 8\), got 'many'"):
        check_kwargs(METHODS.get('SegCLIP'), dict(type='SegCLIP', num_centers='many'), 'method')
    check_kwargs(METHODS.get('SegCLIP'), dict(type='SegCLIP', num_centers=4), 'method')


def test_a_config_anywhere_builds_on_the_projects_configs(tmp_path, monkeypatch):
    """``_base_`` names not found next to the file, and ``configs/...`` paths not found from
    the working folder, are read from the project's configs (``CONFIG_ROOT``)."""
    from ovseg_bench.config import CONFIG_ROOT, read_config_file
    cfg_file = tmp_path / 'mine.py'
    cfg_file.write_text("_base_ = ['_base_/backbones/tiny_synth.py', '_base_/protocols/synth.py']\n"
                        "method = dict(type='SCLIP')\n")
    cfg = read_config_file(cfg_file)
    assert cfg.protocol.name == 'synth' and cfg.backbone.model == 'ovseg-tiny'
    assert cfg.method.type == 'SCLIP'
    monkeypatch.chdir(tmp_path)
    assert read_config_file('configs/bench/default.py').filename == \
        str(CONFIG_ROOT / 'bench' / 'default.py')
    (tmp_path / 'bad.py').write_text("_base_ = ['_base_/nope.py']\n")
    with pytest.raises(FileNotFoundError, match=r'bad.py: _base_ _base_/nope.py found neither'):
        read_config_file(tmp_path / 'bad.py')
    with pytest.raises(FileNotFoundError, match='config not found: configs/nope.py'):
        read_config_file('configs/nope.py')
