"""The matrices in configs/bench: which cells they make, on which datasets, under which
protocol (no data, weights or training needed), and matrix keys checked like config keys."""
from pathlib import Path

import pytest
from mmengine.config import Config

from ovseg_bench.bench.matrix import cell_configs, cell_datasets, check_matrix
from ovseg_bench.bench.runner import run_matrix
from ovseg_bench.bench.trainings import needs_training
from ovseg_bench.registry import METHODS, names

REPO = Path(__file__).resolve().parents[2]
SYNTH = ['synth_voc', 'synth_context', 'synth_coco', 'synth_ade']
SCLIP = ['voc21', 'context60', 'coco_object', 'voc20', 'context59', 'coco_stuff171', 'ade150']


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)     # the matrices name configs relative to the checkout


def plan(name):
    matrix = Config.fromfile(str(REPO / 'configs' / 'bench' / name))
    check_matrix(matrix)
    cells = [(cfg, cell_datasets(matrix, cfg)) for cfg in cell_configs(matrix)]
    trained = [cfg.work_dir for cfg, _ in cells if needs_training(cfg)]
    assert len(set(trained)) == len(trained), 'two training runs would share a work_dir'
    assert len({cfg.cell_name for cfg, _ in cells}) == len(cells)
    return cells


def test_default_matrix_is_every_registered_method_on_the_synthetic_datasets():
    cells = plan('default.py')
    assert {cfg.method.type for cfg, _ in cells} == set(names(METHODS))
    assert all(datasets == SYNTH for _, datasets in cells)
    assert all(cfg.backbone.model == 'ovseg-tiny' for cfg, _ in cells)
    # Every trainable built-in trains (the CLIP cell is the pretraining run, reused).
    assert {cfg.method.type for cfg, _ in cells if needs_training(cfg)} >= {
        'CLIP', 'CLIPZSS', 'PACL', 'SegCLIP', 'ViLSeg'}


def test_paper_matrix_puts_each_method_in_its_papers_setting():
    cells = plan('paper_vit_b16.py')
    assert {cfg.method.type for cfg, _ in cells} >= {
        'CLIP', 'MaskCLIP', 'PACL', 'SegCLIP', 'ViLSeg', 'CLIPZSS'}
    assert all(cfg.backbone.model == 'ViT-B-16' for cfg, _ in cells)
    for cfg, datasets in cells:
        assert datasets == list(cfg.datasets)              # its paper's evaluation sets
    # CLIP-ZSS once per dataset, trained on that dataset's seen classes.
    zss = {cfg.train_data.name: datasets for cfg, datasets in cells
           if cfg.method.type == 'CLIPZSS'}
    assert zss == {'voc20': ['voc20'], 'context59': ['context59'],
                   'coco_stuff171': ['coco_stuff171']}
    by_method = {cfg.method.type: cfg for cfg, _ in cells}
    assert by_method['PACL'].protocol.name == 'pacl_nobg' and needs_training(by_method['PACL'])
    assert not needs_training(by_method['CLIP'])          # evaluated on the given weights


def test_paper_head_to_head_is_one_protocol_on_the_same_datasets_and_runs():
    cells = plan('paper_vit_b16_sclip.py')
    own = {cfg.method.type: cfg.work_dir for cfg, _ in plan('paper_vit_b16.py')
           if needs_training(cfg)}
    assert 'CLIPZSS' not in {cfg.method.type for cfg, _ in cells}
    for cfg, datasets in cells:
        assert datasets == SCLIP and cfg.protocol.name == 'sclip'
        assert cfg.protocol.short_side == 336 and cfg.protocol.templates == 'imagenet80'
        if needs_training(cfg):
            assert cfg.work_dir == own[cfg.method.type]     # the same training runs


def test_training_free_matrices_run_every_training_free_head_in_own_and_shared_presets():
    free = {m for m in names(METHODS) if not METHODS.get(m).trainable}
    own = plan('training_free_vit_b16.py')
    assert {cfg.method.type for cfg, _ in own} == free
    presets = {cfg.method.type: cfg.protocol.name for cfg, _ in own}
    assert presets['SCLIP'] == 'sclip' and presets['NACLIP'] == 'naclip'
    assert presets['ClearCLIP'] == 'clearclip' and presets['ProxyCLIP'] == 'proxyclip'
    for cfg, datasets in own:
        assert datasets == list(cfg.datasets) and not needs_training(cfg)
    shared = plan('training_free_vit_b16_sclip.py')
    assert {cfg.method.type for cfg, _ in shared} == free
    for cfg, datasets in shared:
        assert datasets == SCLIP and cfg.protocol.name == 'sclip'
        assert cfg.protocol.crop == 224 and cfg.protocol.postprocess == 'none'


def test_a_misspelt_matrix_key_fails_before_any_work(tmp_path):
    matrix = tmp_path / 'matrix.py'
    matrix.write_text("methods = 'all'\nmethod_configs = 'configs/*/*_tiny_synth.py'\n"
                      "dataset = ['synth_voc']\nseeds = [0]\nout_dir = 'x'\n")
    with pytest.raises(KeyError, match="unknown config key 'dataset'. Did you mean datasets"):
        run_matrix(str(matrix))
    assert not (tmp_path / 'x').exists()


def test_a_misspelt_matrix_protocol_field_fails_before_any_work(tmp_path):
    matrix = tmp_path / 'matrix.py'
    matrix.write_text("methods = ['MaskCLIP']\nmethod_configs = 'configs/*/*_tiny_synth.py'\n"
                      "datasets = ['synth_voc']\nseeds = [0]\nout_dir = 'x'\n"
                      "protocol = dict(bg_treshold=0.5)\n")
    with pytest.raises(KeyError, match=r'bg_treshold.*Did you mean bg_threshold\?'):
        run_matrix(str(matrix))
    assert not (tmp_path / 'x').exists()
