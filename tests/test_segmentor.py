"""The protocol's per-dataset values, its typo check, and the area rule."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from ovseg_bench.protocol import Protocol, resolve_protocol
from ovseg_bench.segmentor import drop_small_classes

PRESETS = sorted((Path(__file__).parents[1] / 'configs' / '_base_' / 'protocols').glob('*.py'))


def test_per_dataset_values_override_the_preset_for_that_dataset_only():
    protocol = dict(name='p', logit_scale=40.0, bg_threshold=0.0,
                    per_dataset=dict(voc21=dict(logit_scale=65.0, bg_threshold=0.1)))
    voc = resolve_protocol(protocol, 'voc21')
    ade = resolve_protocol(protocol, 'ade150')
    assert (voc['logit_scale'], voc['bg_threshold']) == (65.0, 0.1)
    assert (ade['logit_scale'], ade['bg_threshold']) == (40.0, 0.0)
    assert 'per_dataset' not in voc and voc['short_side'] == Protocol.short_side


@pytest.mark.parametrize('protocol', [dict(bg_treshold=0.1),
                                      dict(per_dataset=dict(voc21=dict(logit_scal=5)))])
def test_a_misspelt_protocol_field_fails_with_the_valid_ones(protocol):
    with pytest.raises(KeyError, match=r'unknown protocol field.*valid: .*bg_threshold'):
        resolve_protocol(protocol, 'voc21')


@pytest.mark.parametrize('path', PRESETS, ids=lambda p: p.stem)
def test_every_preset_resolves_for_each_of_its_datasets(path):
    cfg = Config.fromfile(str(path))
    for dataset in cfg.datasets:
        resolved = resolve_protocol(cfg.protocol.to_dict(), dataset)
        assert resolved['name'] == cfg.protocol.name


def test_sclip_preset_holds_sclips_published_values():
    cfg = Config.fromfile(str(PRESETS[0].with_name('sclip.py')))
    voc = resolve_protocol(cfg.protocol.to_dict(), 'voc21')
    assert (voc['short_side'], voc['crop'], voc['stride']) == (336, 224, 112)
    assert (voc['logit_scale'], voc['bg_threshold'], voc['area_threshold']) == (65, 0.1, 0.1)
    assert resolve_protocol(cfg.protocol.to_dict(), 'ade150')['bg_threshold'] == 0


def test_area_rule_hands_a_small_class_to_the_next_best():
    # 10 pixels: background wins 4, class 1 wins 5, class 2 wins 1 (1/6 of non-background);
    # class 2's runner-up there is class 1.
    probs = torch.zeros(3, 1, 10)
    probs[0, 0, :4] = 0.8
    probs[1, 0, :4] = 0.1
    probs[2, 0, :4] = 0.1
    probs[:, 0, 4:9] = torch.tensor([0.1, 0.8, 0.1])[:, None]
    probs[:, 0, 9] = torch.tensor([0.1, 0.3, 0.6])
    kept = drop_small_classes(probs, 0.2, first=1)      # 1/6 <= 0.2: class 2 dropped
    assert kept.argmax(0).tolist() == [[0, 0, 0, 0, 1, 1, 1, 1, 1, 1]]
    same = drop_small_classes(probs, 0.1, first=1)      # 1/6 > 0.1: kept
    assert torch.equal(same, probs)
    # background is never dropped, however small
    only_bg_small = drop_small_classes(probs, 0.5, first=1)
    assert only_bg_small[0].equal(probs[0])


@pytest.mark.parametrize('path', PRESETS, ids=lambda p: p.stem)
def test_every_preset_has_a_vocabulary_of_the_right_size_for_its_datasets(path):
    from ovseg_bench.data.catalog import load_dataset_cfg
    from ovseg_bench.text import load_vocabulary, select_vocabulary
    cfg = Config.fromfile(str(path))
    for dataset in cfg.datasets:
        protocol = resolve_protocol(cfg.protocol.to_dict(), dataset)
        ds = load_dataset_cfg(dataset)
        label, classes = select_vocabulary(ds['vocabulary'], dataset, protocol['vocabularies'])
        assert len(classes) == len(load_vocabulary(ds['vocabulary'])), (path.stem, dataset)
        assert '@' in label
        if protocol['vocabularies'] != 'ovseg':     # the official files name every class
            assert all(classes) and label.startswith(protocol['vocabularies'] + '/')


def test_group_score_background_per_window():
    """GroupViT's rule (bg_rule='group_score', the segclip preset): per window, background
    where a pixel's best score is below min(threshold, the window's best score)."""
    from ovseg_bench.segmentor import group_score_background
    scores = torch.full((2, 3, 1, 3), -1e4)        # class 0: no text (merge_synonyms' fill)
    scores[0, 1:, 0] = torch.tensor([[0.9, 0.5, 0.1], [0.0, 0.3, 0.2]])
    scores[1, 1:, 0] = torch.tensor([[0.4, 0.1, 0.0], [0.0, 0.2, 0.3]])
    out = group_score_background(scores, 0.6)
    # window 0: cap 0.6 -> pixels with best 0.5, 0.2 are background; window 1: best is
    # 0.4 < 0.6, so the cap is 0.4 and only its best pixel stays foreground
    assert out[:, 0, 0].tolist() == [[0.0, 1.0, 1.0], [0.0, 1.0, 1.0]]
    assert torch.equal(out[:, 1:], scores[:, 1:])
    cfg = Config.fromfile(str(PRESETS[0].with_name('segclip.py')))
    assert resolve_protocol(cfg.protocol.to_dict(), 'voc21')['bg_rule'] == 'group_score'
