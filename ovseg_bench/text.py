"""The text side of the protocol: prompt templates, vocabularies and cached class embeddings.

A vocabulary file (``ovseg_bench/vocabularies/<name>.txt`` or any path) has one line per class
in dataset order: comma-separated names, the first canonical, the rest synonyms. An empty line
gives that class no text (a background class decided by the probability threshold alone).
Each name's embedding is the normalised mean over the templates of the normalised prompt
embeddings; synonyms are merged by max over their logits (:func:`merge_synonyms`).
"""
import hashlib
import logging
from pathlib import Path

import torch
import torch.nn.functional as F

from .fileio import atomic_path

VOCAB_DIR = Path(__file__).parent / 'vocabularies'
DEFAULT_CACHE = Path.home() / '.cache' / 'ovseg_bench' / 'text'

# The 80 prompt templates used for ImageNet zero-shot classification by CLIP.
IMAGENET80 = [
    'a bad photo of a {}.', 'a photo of many {}.', 'a sculpture of a {}.',
    'a photo of the hard to see {}.', 'a low resolution photo of the {}.', 'a rendering of a {}.',
    'graffiti of a {}.', 'a bad photo of the {}.', 'a cropped photo of the {}.',
    'a tattoo of a {}.', 'the embroidered {}.', 'a photo of a hard to see {}.',
    'a bright photo of a {}.', 'a photo of a clean {}.', 'a photo of a dirty {}.',
    'a dark photo of the {}.', 'a drawing of a {}.', 'a photo of my {}.', 'the plastic {}.',
    'a photo of the cool {}.', 'a close-up photo of a {}.', 'a black and white photo of the {}.',
    'a painting of the {}.', 'a painting of a {}.', 'a pixelated photo of the {}.',
    'a sculpture of the {}.', 'a bright photo of the {}.', 'a cropped photo of a {}.',
    'a plastic {}.', 'a photo of the dirty {}.', 'a jpeg corrupted photo of a {}.',
    'a blurry photo of the {}.', 'a photo of the {}.', 'a good photo of the {}.',
    'a rendering of the {}.', 'a {} in a video game.', 'a photo of one {}.', 'a doodle of a {}.',
    'a close-up photo of the {}.', 'a photo of a {}.', 'the origami {}.',
    'the {} in a video game.', 'a sketch of a {}.', 'a doodle of the {}.', 'a origami {}.',
    'a low resolution photo of a {}.', 'the toy {}.', 'a rendition of the {}.',
    'a photo of the clean {}.', 'a photo of a large {}.', 'a rendition of a {}.',
    'a photo of a nice {}.', 'a photo of a weird {}.', 'a blurry photo of a {}.',
    'a cartoon {}.', 'art of a {}.', 'a sketch of the {}.', 'a embroidered {}.',
    'a pixelated photo of a {}.', 'itap of the {}.', 'a jpeg corrupted photo of the {}.',
    'a good photo of a {}.', 'a plushie {}.', 'a photo of the nice {}.', 'a photo of the small {}.',
    'a photo of the weird {}.', 'the cartoon {}.', 'art of the {}.', 'a drawing of the {}.',
    'a photo of the large {}.', 'a black and white photo of a {}.', 'the plushie {}.',
    'a dark photo of a {}.', 'itap of a {}.', 'graffiti of the {}.', 'a toy {}.',
    'itap of my {}.', 'a photo of a cool {}.', 'a photo of a small {}.', 'a tattoo of the {}.',
]
# TCL's evaluation templates (kakaobrain/tcl datasets/templates.py ``custom``: its 7-template
# ImageNet subset and two more).
TCL9 = ['itap of a {}.', 'a bad photo of a {}.', 'a origami {}.', 'a photo of the large {}.',
        'a {} in a video game.', 'art of the {}.', 'a photo of the small {}.',
        'a photo of many {}.', 'a photo of {}s.']
TEMPLATES = {'imagenet80': IMAGENET80, 'single': ['a photo of a {}.'], 'tcl': TCL9}


def templates(name):
    """The prompt templates called ``name`` (``imagenet80``, ``single`` or ``tcl``)."""
    if name not in TEMPLATES:
        raise KeyError(f'unknown templates {name!r}; valid: {", ".join(TEMPLATES)}')
    return TEMPLATES[name]


def vocabulary_names():
    return sorted(p.stem for p in VOCAB_DIR.glob('*.txt'))


def load_vocabulary(name):
    """List of synonym lists, one per class, from a vocabulary name or a ``.txt`` path."""
    path = Path(name)
    if path.suffix != '.txt':
        path = VOCAB_DIR / f'{name}.txt'
    if not path.is_file():
        raise FileNotFoundError(f'vocabulary {name!r} not found at {path}; '
                                f'valid names: {", ".join(vocabulary_names())}')
    lines = path.read_text().splitlines()
    return [[n.strip() for n in line.split(',') if n.strip()] for line in lines]


# Official harnesses' class-name files, kept byte for byte in vocabularies/<set>/ under their
# own file names (sources in vocabularies/README.md), and read as each harness reads them:
# lines, each split on the harness's separator, names kept as written (Context60's trailing
# space stays part of "wood "). SCLIP's files serve NACLIP too (byte-identical).
VOCABULARY_SETS = {'sclip': ', ', 'clearclip': ',', 'proxyclip': '; '}
OFFICIAL_FILES = {
    'voc21': 'cls_voc21', 'voc20': 'cls_voc20', 'context60': 'cls_context60',
    'context59': 'cls_context59', 'coco_object': 'cls_coco_object',
    'coco_stuff171': 'cls_coco_stuff', 'ade150': 'cls_ade20k', 'cityscapes': 'cls_city_scapes',
    'ade847': 'cls_ade20k847', 'context459': 'cls_context459',
}


def official_vocabulary(vocab_set, dataset):
    """(path, classes) of ``vocab_set``'s class-name file for ``dataset``."""
    if vocab_set not in VOCABULARY_SETS:
        raise KeyError(f'unknown vocabulary set {vocab_set!r}; valid: ovseg, '
                       f'{", ".join(VOCABULARY_SETS)}')
    path = VOCAB_DIR / vocab_set / f'{OFFICIAL_FILES.get(dataset, dataset)}.txt'
    if not path.is_file():
        have = sorted(k for k, v in OFFICIAL_FILES.items()
                      if (VOCAB_DIR / vocab_set / f'{v}.txt').is_file())
        raise FileNotFoundError(f'vocabulary set {vocab_set!r} has no file for dataset '
                                f'{dataset!r} ({path}); it covers: {", ".join(have)}')
    lines = path.read_text().split('\n')    # universal newlines, as readlines() reads
    if lines[-1] == '':
        lines.pop()                            # the file's final newline ends the last line
    return path, [line.split(VOCABULARY_SETS[vocab_set]) for line in lines]


def select_vocabulary(dataset_vocabulary, dataset, vocab_set='ovseg'):
    """``(label, classes)`` a dataset is scored with: its config's vocabulary (``'ovseg'``)
    or an official harness's file; ``label`` is the name and content hash a result row
    records, e.g. ``sclip/cls_voc21.txt@1a2b3c4d``."""
    if vocab_set == 'ovseg':
        path = Path(dataset_vocabulary)
        if path.suffix != '.txt':
            path = VOCAB_DIR / f'{dataset_vocabulary}.txt'
        classes = load_vocabulary(dataset_vocabulary)
        name = path.name if path.parent == VOCAB_DIR else str(path)
    else:
        path, classes = official_vocabulary(vocab_set, dataset)
        name = f'{vocab_set}/{path.name}'
    digest = hashlib.sha1(path.read_bytes()).hexdigest()[:8]
    return f'{name}@{digest}', classes


# (text fingerprint, templates) key -> {name: embedding}: names, not vocabularies, are the
# unit, since datasets share many (the four synthetic vocabularies 43 distinct of 167 names;
# ADE20K, COCO-Stuff, Context and VOC 335 of 523), so a name is encoded once per text tower
# whichever dataset asks.
_MEMORY = {}


def _encode_names(head, names, tmpl, batch_size):
    """{name: L2-normalised mean over ``tmpl`` of its normalised prompt embeddings}."""
    prompts = [t.format(n) for n in names for t in tmpl]
    device = next(head.parameters()).device
    chunks = []
    for i in range(0, len(prompts), batch_size):
        tokens = head.backbone.tokenize(prompts[i:i + batch_size]).to(device)
        chunks.append(F.normalize(head.encode_text(tokens).float(), dim=-1))
    per_prompt = torch.cat(chunks).view(len(names), len(tmpl), -1)
    return dict(zip(names, F.normalize(per_prompt.mean(1), dim=-1).cpu()))


def _read_cache(path, warn=True):
    """The names cached at ``path`` ({} if absent). A damaged or foreign file is not fatal:
    it is rebuilt (a warning names it), as the cache only saves time."""
    from .checkpoint import load
    if not path.is_file():
        return {}
    try:
        table = load(path, 'text-embedding cache')
        if isinstance(table, dict) and all(torch.is_tensor(v) for v in table.values()):
            return table
        problem = f'text-embedding cache {path} holds a {type(table).__name__}, not embeddings'
    except ValueError as err:
        problem = str(err)
    if warn:
        logging.getLogger(__name__).warning('%s; rebuilding it', problem)
    return {}


def _write_cache(path, table):
    """Merge ``table`` into the file at ``path`` (another process may have added names since
    it was read) and replace it atomically, through a temporary file of this process's own."""
    merged = {**_read_cache(path, warn=False), **table}
    with atomic_path(path) as tmp:
        torch.save(merged, tmp)
    return merged


@torch.no_grad()
def class_embeddings(head, vocabulary, template_names='imagenet80', cache_dir=DEFAULT_CACHE,
                     batch_size=256):
    """Embeddings of every (class, synonym) name of ``vocabulary``; each name is encoded once
    per text weights and templates, whatever vocabulary it comes in.

    Returns ``(embeds N,D L2-normalised, owner N long)``: ``owner[i]`` is the class of row i.
    Names are cached in memory and, when ``cache_dir`` is set, on disk (one file per text
    fingerprint and templates), so datasets, runs and processes sharing a text tower share
    the work.
    """
    tmpl = templates(template_names) if isinstance(template_names, str) else list(template_names)
    names = [(c, n) for c, syns in enumerate(vocabulary) for n in syns]
    key = hashlib.sha1(repr((head.text_fingerprint(), tmpl)).encode()).hexdigest()[:16]
    known = _MEMORY.setdefault(key, {})
    path = Path(cache_dir) / f'{key}.pt' if cache_dir else None
    missing = [n for n in dict.fromkeys(n for _, n in names) if n not in known]
    if missing and path is not None:
        known.update(_read_cache(path))
        missing = [n for n in missing if n not in known]
    if missing:
        known.update(_encode_names(head, missing, tmpl, batch_size))
        if path is not None:
            known.update(_write_cache(path, known))
            logging.getLogger(__name__).info('cached %d more name embeddings at %s',
                                             len(missing), path)
    return (torch.stack([known[n] for _, n in names]),
            torch.tensor([c for c, _ in names], dtype=torch.long))


def merge_synonyms(logits, owner, num_classes, fill=-1e4):
    """B,N,... logits over names -> B,K,... over classes, max over each class's synonyms.

    A class with no names gets ``fill`` (it can only be chosen by the background policy).
    """
    shape = logits.shape
    flat = logits.reshape(shape[0], shape[1], -1)
    out = flat.new_full((shape[0], num_classes, flat.shape[-1]), fill)
    index = owner.to(logits.device).view(1, -1, 1).expand_as(flat)
    out = out.scatter_reduce(1, index, flat, reduce='amax', include_self=True)
    return out.view(shape[0], num_classes, *shape[2:])
