import csv

from PIL import Image

from ovseg_bench.bench import leaderboard, results


def fake_rows(method, seed, values, setting='open_vocab', train_data='none'):
    return [dict(method=method, backbone='ovseg-tiny', pretrained='p', train_data=train_data,
                 dataset=d, setting=setting, seed=seed, mIoU=v) for d, v in values.items()]


def test_mean_over_seeds_reference_rows_and_merge(tmp_path):
    a, b = tmp_path / 'a' / 'results.csv', tmp_path / 'b' / 'results.csv'
    results.append_rows(a, fake_rows('M1', 0, {'voc21': 40.0, 'ade150': 10.0}))
    results.append_rows(b, fake_rows('M1', 1, {'voc21': 44.0, 'ade150': 12.0})
                        + fake_rows('M2', 0, {'voc21': 50.0}))
    ref = tmp_path / 'ref.csv'
    ref.write_text('method,backbone,dataset,metric,value,protocol,source\n'
                   'Paper,ViT-B/16,voc21,mIoU,61.5,some protocol,Someone (arXiv 1) Table 1\n')
    rows = leaderboard.load([a, b])
    entries, datasets = leaderboard.table(rows)
    m1 = {e.label: e.cells for e in entries}['M1 (ovseg-tiny)']
    assert m1['voc21'][:3] == (42.0, 2.8284271247461903, 2)
    assert leaderboard.reference_rows(datasets, path=ref)[0][1] == {'voc21': 61.5}
    leaderboard.build([a, b], tmp_path / 'out', reference=ref)
    lines = list(csv.reader(open(tmp_path / 'out' / 'leaderboard.csv')))
    assert lines[0] == ['method', 'kind', 'setting', 'training', 'voc21', 'ade150', 'mean',
                        'seeds']
    by_method = {line[0]: line for line in lines[1:]}
    assert by_method['M1 (ovseg-tiny)'][4:] == ['42.00 ± 2.83', '11.00 ± 1.41', '26.50', '2']
    assert by_method['M2 (ovseg-tiny)'][5:7] == ['-', '-']  # no mean over a missing dataset
    ref_line = [line for line in lines[1:] if line[1] == 'reference'][0]
    assert 'reference: Someone (arXiv 1) Table 1' in ref_line[0] and ref_line[4] == '61.50'
    md = (tmp_path / 'out' / 'leaderboard.md').read_text()
    assert '| M1 (ovseg-tiny) | measured |' in md and '| reference |' in md
    png = Image.open(tmp_path / 'out' / 'leaderboard.png')
    assert png.size[0] > 300 and png.size[1] > 200


def test_runs_on_other_training_data_are_lines_of_their_own_not_seeds():
    rows = (fake_rows('Z', 0, {'voc20': 30.0}, train_data='NamedSplit:voc20')
            + fake_rows('Z', 0, {'context59': 20.0}, train_data='NamedSplit:context59')
            + fake_rows('P', 0, {'voc20': 10.0}, train_data='Csv:cc3m')
            + fake_rows('P', 0, {'voc20': 14.0}, train_data='Csv:cc12m'))
    entries = {e.label: e.cells for e in leaderboard.table(rows)[0]}
    # Each dataset's own training split (the zero-shot setting): one line, nothing averaged.
    assert entries['Z (ovseg-tiny)'] == {'voc20': (30.0, 0.0, 1), 'context59': (20.0, 0.0, 1)}
    # Two training sets on one dataset: two lines, labelled, never a mean of 12 +- 2.8.
    assert entries['P (ovseg-tiny) [weights p; trained on Csv:cc3m]']['voc20'][0] == 10.0
    assert entries['P (ovseg-tiny) [weights p; trained on Csv:cc12m]']['voc20'][0] == 14.0


def test_published_reference_rows_follow_the_conventions():
    """Every published number names a known dataset and metric, a value in 0..100, the
    protocol it was measured under and where it was read."""
    rows = results.read_rows(leaderboard.REFERENCE_CSV)
    assert rows and list(rows[0]) == ['method', 'backbone', 'dataset', 'metric', 'value',
                                      'protocol', 'source']
    datasets = {'voc21', 'voc20', 'context60', 'context59', 'coco_object', 'coco_stuff171',
                'ade150', 'cityscapes'}
    metrics = {'mIoU', 'hIoU', 'mIoU_seen', 'mIoU_unseen'}
    for i, r in enumerate(rows, start=2):
        assert r['dataset'] in datasets and r['metric'] in metrics, f'line {i}: {r}'
        assert 0 <= float(r['value']) <= 100, f'line {i}: {r}'
        assert all(r[k].strip() for k in ('method', 'backbone', 'protocol', 'source')), i
    refs = dict(leaderboard.reference_rows(datasets))
    vilseg = [values for label, values in refs.items() if label.startswith('ViL-Seg')]
    assert {'voc21', 'context60'} <= set().union(*vilseg)


def test_cut_rows_foreign_files_and_unknown_metrics_never_give_numbers(tmp_path, capsys):
    import pytest
    path = tmp_path / 'results.csv'
    results.append_rows(path, fake_rows('M1', 0, {'voc21': 55.55})
                        + fake_rows('M2', 0, {'voc21': 44.0}))
    text = path.read_text()
    path.write_text(text[:text.rindex('44.0') + 1])     # the last row cut inside its mIoU
    rows = leaderboard.load([path])
    assert [r['method'] for r in rows] == ['M1']
    assert f'skipping {path} line 3: cut short' in capsys.readouterr().err
    bad = tmp_path / 'bad' / 'results.csv'
    results.append_rows(bad, [dict(fake_rows('M3', 0, {'voc21': 1.0})[0], mIoU='5.0x')])
    assert leaderboard.load([bad]) == []
    assert "mIoU='5.0x' is not a number" in capsys.readouterr().err
    foreign = tmp_path / 'foreign.csv'
    foreign.write_text('name,score\na,1\n')
    with pytest.raises(ValueError, match=r'foreign.csv is not an ovseg-bench results file: no '
                                         r'column method, backbone, dataset'):
        leaderboard.build([foreign], tmp_path / 'out')
    with pytest.raises(KeyError, match="unknown --metric 'miou'. Did you mean mIoU?"):
        leaderboard.build([path], tmp_path / 'out', metric='miou')
    with pytest.raises(ValueError, match='no result row has a value for hIoU'):
        leaderboard.build([path], tmp_path / 'out', metric='hIoU')


def test_display_names_and_rows_by_setting_then_training_free_then_trained(tmp_path):
    """Registered methods go by their papers' names; annotation-free rows first (training-free
    baselines, then untrained heads, then trained methods), then the zero-shot ones; the
    chart has a panel per setting."""
    trained = 'CocoCaptionDataset:data/synth/coco'
    rows = (fake_rows('ViLSeg', 0, {'voc21': 20.0}, train_data=trained)
            + fake_rows('ViLSeg', 0, {'voc21': 12.0})                 # before training
            + fake_rows('CLIPZSS', 0, {'voc21': 35.0}, 'zero_shot', 'NamedSplit:voc21')
            + fake_rows('SegCLIP', 0, {'voc21': 25.0}, train_data=trained)
            + fake_rows('MaskCLIP', 0, {'voc21': 10.0})
            + fake_rows('SCLIP', 0, {'voc21': 11.0}))
    entries, _ = leaderboard.table(rows)
    assert [(e.label.split(' [')[0], e.setting, e.training) for e in entries] == [
        ('MaskCLIP (ovseg-tiny)', 'open_vocab', 'training-free'),
        ('SCLIP (ovseg-tiny)', 'open_vocab', 'training-free'),
        ('ViL-Seg (ovseg-tiny)', 'open_vocab', 'untrained'),
        ('SegCLIP (ovseg-tiny)', 'open_vocab', 'trained'),
        ('ViL-Seg (ovseg-tiny)', 'open_vocab', 'trained'),
        ('CLIP-ZSS (ovseg-tiny)', 'zero_shot', 'trained')]
    path = tmp_path / 'results.csv'
    results.append_rows(path, rows)
    leaderboard.build([path], tmp_path / 'out', reference=tmp_path / 'none.csv')
    md = (tmp_path / 'out' / 'leaderboard.md').read_text()
    assert 'not comparable' in md and 'ViLSeg' not in md and 'CLIPZSS' not in md
    assert md.index('| MaskCLIP') < md.index('| SegCLIP') < md.index('| CLIP-ZSS')
    png = Image.open(tmp_path / 'out' / 'leaderboard.png')
    assert png.size[1] > 700                         # two panels, one above the other


def test_an_unregistered_method_keeps_its_name_and_training_from_its_rows():
    rows = (fake_rows('Gone', 0, {'voc21': 5.0}, train_data='Csv:cc3m')
            + fake_rows('Other', 0, {'voc21': 6.0}))
    kinds = {e.label: e.training for e in leaderboard.table(rows)[0]}
    assert kinds == {'Gone (ovseg-tiny)': 'trained', 'Other (ovseg-tiny)': 'training-free'}
