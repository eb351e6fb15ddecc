import os
import stat

import pytest
import torch
import torch.nn.functional as F

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


class CountingHead(torch.nn.Module):
    """A text side whose embedding of a prompt is a fixed function of its text (its
    characters' codes), counting the prompts it encodes."""

    def __init__(self, fingerprint='v1'):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.backbone = self
        self.fingerprint, self.encoded = fingerprint, []

    def text_fingerprint(self):
        return self.fingerprint

    def tokenize(self, prompts):
        self.encoded += prompts
        return torch.tensor([[float(ord(ch)) for ch in p.ljust(32)[:32]] for p in prompts])

    def encode_text(self, tokens):
        return torch.cat([tokens[:, :4], tokens.sum(1, keepdim=True)], 1)


def test_class_embeddings_encode_each_name_once_across_vocabularies_and_processes(tmp_path):
    from ovseg_bench import text as T
    T._MEMORY.clear()
    head = CountingHead()
    tmpl = ['a {}.', 'the {}.']
    embeds, owner = T.class_embeddings(head, [['cat', 'kitty'], ['dog']], tmpl, tmp_path)
    assert owner.tolist() == [0, 0, 1] and embeds.shape == (3, 5)
    assert torch.allclose(embeds.norm(dim=1), torch.ones(3))
    # each name: the normalised mean of its normalised prompt embeddings
    per_prompt = F.normalize(head.encode_text(head.tokenize(['a dog.', 'the dog.'])), dim=-1)
    assert torch.allclose(embeds[2], F.normalize(per_prompt.mean(0), dim=0))
    head.encoded.clear()
    # another vocabulary sharing names: only the new name is encoded, rows in its order
    embeds2, owner2 = T.class_embeddings(head, [['dog'], ['bird', 'cat']], tmpl, tmp_path)
    assert head.encoded == ['a bird.', 'the bird.']
    assert owner2.tolist() == [0, 1, 1]
    assert torch.equal(embeds2[0], embeds[2]) and torch.equal(embeds2[2], embeds[0])
    # a new process (empty memory) reads every name from the disk cache
    T._MEMORY.clear()
    head.encoded.clear()
    embeds3, _ = T.class_embeddings(head, [['dog'], ['bird', 'cat']], tmpl, tmp_path)
    assert head.encoded == [] and torch.equal(embeds3, embeds2)
    # other text weights or other templates: computed anew
    other = CountingHead('v2')
    T.class_embeddings(other, [['dog']], tmpl, tmp_path)
    T.class_embeddings(head, [['dog']], ['{}'], tmp_path)
    assert other.encoded == ['a dog.', 'the dog.'] and head.encoded == ['dog']
    assert len(list(tmp_path.glob('*.pt'))) == 3 and not list(tmp_path.glob('*.tmp'))
    T._MEMORY.clear()


def test_class_embeddings_disk_cache_keeps_names_another_process_wrote_meanwhile(tmp_path):
    from ovseg_bench import text as T
    T._MEMORY.clear()
    head = CountingHead()
    T.class_embeddings(head, [['cat']], ['{}'], tmp_path)     # this process: cat
    (path,) = tmp_path.glob('*.pt')
    T._write_cache(path, {'dog': torch.ones(5)})              # another process adds dog
    T.class_embeddings(head, [['bird']], ['{}'], tmp_path)    # this one then writes bird
    assert sorted(torch.load(path)) == ['bird', 'cat', 'dog']
    # shared between users as any file open() makes (not mkstemp's 0600)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    T._MEMORY.clear()


def test_damaged_disk_cache_is_rebuilt_with_a_warning(tmp_path, caplog):
    from ovseg_bench import text as T
    T._MEMORY.clear()
    head = CountingHead()
    T.class_embeddings(head, [['cat']], ['{}'], tmp_path)
    (path,) = tmp_path.glob('*.pt')
    path.write_bytes(b'not a cache')                           # e.g. a disk full mid-copy
    T._MEMORY.clear()
    with caplog.at_level('WARNING'):
        embeds, _ = T.class_embeddings(head, [['cat']], ['{}'], tmp_path)
    assert f'cannot read text-embedding cache {path}: not a torch.save file, or damaged' \
        in caplog.text and caplog.text.count('rebuilding it') == 1
    assert embeds.shape[0] == 1 and sorted(torch.load(path)) == ['cat']   # rebuilt
    T._MEMORY.clear()
