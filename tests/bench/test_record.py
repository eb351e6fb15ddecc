"""A cell on record: its CSV rows and its per-run JSON (schema, versions, commit), and the
leaderboard read from either form."""
import json
import math
from importlib import metadata

import pytest
import torch
from mmengine.config import Config

from ovseg_bench.bench import leaderboard, record, results
from ovseg_bench.cli import main
from ovseg_bench.data.catalog import load_dataset_cfg
from ovseg_bench.text import load_vocabulary


def cfg_of(method, tmp_path, **extra):
    return Config(dict(backbone=dict(type='OpenCLIPBackbone', model='ovseg-tiny'),
                       method=dict(type=method),
                       protocol=dict(short_side=64, mode='whole', templates='single',
                                     num_workers=0, text_cache=None), **extra))


@pytest.fixture(scope='module')
def recorded(synth_root, tmp_path_factory):
    """Two methods x two datasets evaluated and recorded into one results.csv."""
    out = tmp_path_factory.mktemp('record') / 'results.csv'
    rows = [record.evaluate_row(cfg_of(method, out.parent), dataset,
                                out.parent / method / dataset, results_csv=out,
                                data_root=synth_root)
            for method in ('MaskCLIP', 'SCLIP') for dataset in ('synth_voc', 'synth_ade')]
    return out, rows


def test_csv_rows_per_class_rows_and_one_json_per_cell(recorded):
    out, rows = recorded
    assert [(r['method'], r['dataset']) for r in results.read_rows(out)] == \
        [(r['method'], r['dataset']) for r in rows]
    per_class = results.read_rows(out.with_name('per_class.csv'))
    n_voc = len(load_vocabulary(load_dataset_cfg('synth_voc')['vocabulary']))
    assert sum(r['method'] == 'MaskCLIP' and r['dataset'] == 'synth_voc'
               for r in per_class) == n_voc
    files = sorted(results.json_dir(out).glob('*.json'))
    assert sorted(results.json_path(out, r) for r in rows) == files
    assert files[0].name.startswith('MaskCLIP_synth_ade_s0_')


def test_per_run_json_follows_the_schema_and_carries_provenance(recorded):
    out, rows = recorded
    row = rows[0]
    doc = json.loads(results.json_path(out, row).read_text())
    assert results.validate(doc, results.RUN_SCHEMA) is None
    assert doc['row'] == {k: (None if isinstance(v, float) and math.isnan(v) else v)
                          for k, v in row.items()}
    # metrics unrounded; the row keeps two decimals of them
    assert round(doc['metrics']['mIoU'], 2) == row['mIoU']
    assert doc['config']['method'] == {'type': 'MaskCLIP'}
    assert doc['protocol']['short_side'] == 64 and doc['protocol']['mode'] == 'whole'
    vocab = doc['vocabulary']
    assert vocab['label'] == row['vocabulary'] and len(vocab['sha1']) == 40
    assert len(vocab['classes']) == len(doc['per_class'])
    assert doc['versions']['torch'] == metadata.version('torch')
    assert doc['versions']['cuda'] == torch.version.cuda
    assert set(doc['versions']) >= {'open_clip_torch', 'mmsegmentation', 'mmengine',
                                    'transformers', 'python'}
    assert doc['git_commit'] == results.git_commit()        # this checkout's, or None
    assert doc['world_size'] == 1


def test_schema_check_names_the_first_departure(recorded, tmp_path):
    out, rows = recorded
    doc = json.loads(results.json_path(out, rows[0]).read_text())
    schema = results.RUN_SCHEMA
    assert results.validate(dict(doc, world_size=0), schema) == '$.world_size is 0, below 1'
    assert results.validate({k: v for k, v in doc.items() if k != 'versions'}, schema) == \
        "$ has no 'versions'"
    bad = json.loads(json.dumps(doc))
    bad['row']['mIoU'] = '40.1'
    assert results.validate(bad, schema) == '$.row.mIoU is str, not number or null'
    bad['row']['mIoU'], bad['per_class'][0]['split'] = 40.1, 'both'
    assert "per_class[0].split is 'both'" in results.validate(bad, schema)
    assert results.validate(dict(doc, extra=1), schema) == "$ has an unknown key 'extra'"
    assert results.validate(dict(doc, world_size=True), schema).endswith('not integer')
    # the leaderboard refuses such a file in one line naming it
    path = tmp_path / 'results' / 'bad.json'
    path.parent.mkdir()
    path.write_text(json.dumps(dict(doc, world_size=0)))
    with pytest.raises(ValueError, match=r'bad.json is not an ovseg-bench per-run JSON '
                                         r'\(ovseg-bench-run/1\): \$.world_size is 0'):
        results.read_table(path.parent)
    path.write_text('{"row": ')
    with pytest.raises(ValueError, match='bad.json is not a JSON file'):
        results.read_table(path)


def test_leaderboard_over_json_equals_over_csv(recorded, tmp_path, capsys):
    out, _ = recorded
    for table in ('results', 'per_class'):
        csv_rows = [row for _, row in results.read_table(out, table)[1]]
        json_rows = [row for _, row in results.read_table(results.json_dir(out), table)[1]]
        key = results.row_key if table == 'results' else leaderboard.per_class_key
        assert sorted(csv_rows, key=key) == sorted(json_rows, key=key)
    assert main(['leaderboard', str(out), '--out-dir', str(tmp_path / 'from_csv')]) == 0
    assert main(['leaderboard', str(results.json_dir(out)),
                 '--out-dir', str(tmp_path / 'from_json')]) == 0
    for name in ('leaderboard.csv', 'leaderboard.md'):
        assert (tmp_path / 'from_csv' / name).read_text() == \
            (tmp_path / 'from_json' / name).read_text()
    assert 'SCLIP' in (tmp_path / 'from_json' / 'leaderboard.md').read_text()


def test_untrained_trainable_config_is_keyed_without_training_data(synth_root, tmp_path):
    cfg = cfg_of('CLIP', tmp_path, train_data=dict(type='CocoCaptionDataset',
                                                   data_root=str(synth_root)))
    row = record.evaluate_row(cfg, 'synth_voc', tmp_path / 'w', data_root=synth_root,
                              results_csv=tmp_path / 'results.csv')
    assert row['train_data'] == 'none'           # not the trained cell's key
    assert results.cell_key(cfg, 'synth_voc')['train_data'].startswith('CocoCaptionDataset:')
    assert results.read_rows(tmp_path / 'results.csv')[0]['train_data'] == 'none'
