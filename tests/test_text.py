import pytest
import torch

from ovseg_bench.text import load_vocabulary, merge_synonyms, templates


def test_templates():
    assert len(templates('imagenet80')) == 80
    assert templates('single') == ['a photo of a {}.']
    assert all('{}' in t for t in templates('imagenet80'))
    with pytest.raises(KeyError, match='imagenet80'):
        templates('imagenet81')


def test_vocabulary_file_and_errors(tmp_path):
    path = tmp_path / 'v.txt'
    path.write_text('\ncat, kitty\ndog\n')
    assert load_vocabulary(str(path)) == [[], ['cat', 'kitty'], ['dog']]
    with pytest.raises(FileNotFoundError, match='valid names'):
        load_vocabulary('no_such_vocabulary')


def test_merge_synonyms_takes_max_and_fills_empty_classes():
    logits = torch.tensor([[1.0, 3.0, 2.0]]).view(1, 3, 1, 1)  # names: cat, kitty, dog
    owner = torch.tensor([1, 1, 2])                          # class 0 has no names
    out = merge_synonyms(logits, owner, 3).flatten()
    assert out[1] == 3.0 and out[2] == 2.0 and out[0] < -1e3
