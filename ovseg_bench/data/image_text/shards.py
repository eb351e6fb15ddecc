"""img2dataset-style tar shards as a dataset, named by globs and shell brace ranges."""
import glob
import json
import os
import re
import tarfile
from pathlib import Path

from mmseg.registry import DATASETS

from .base import IMAGE_EXTS, ImageTextDataset, read_rgb, warn


_NUMERIC_RANGE = re.compile(r'(-?\d+)\.\.(-?\d+)')
_GLOB_CHARS = re.compile(r'[*?[]')


def _brace_body(pattern, start):
    """End index of the brace opened at ``start`` and the positions of its top-level commas;
    ``(None, [])`` when it is never closed."""
    depth, commas = 0, []
    for i in range(start, len(pattern)):
        c = pattern[i]
        if c == '{':
            depth += 1
        elif c == '}':
            depth -= 1
            if depth == 0:
                return i, commas
        elif c == ',' and depth == 1:
            commas.append(i)
    return None, []


def _numeric_range(first, last):
    # zero padding as in bash: to the wider endpoint when either is written with a leading 0
    padded = any(len(e.lstrip('-')) > 1 and e.lstrip('-').startswith('0') for e in (first, last))
    width = max(len(first), len(last)) if padded else 0
    a, b = int(first), int(last)
    step = 1 if a <= b else -1
    return [f'{n:0{width}d}' for n in range(a, b + step, step)]


def expand_braces(pattern):
    """Shell brace expansion of ``pattern``, in order: numeric ranges ``{00000..01242}``
    (inclusive, zero-padded when an endpoint is) and lists ``{cc3m,cc12m}``; several braces
    multiply and lists nest. A brace that is neither (``{x}``, unclosed) stays literal."""
    start = pattern.find('{')
    if start < 0:
        return [pattern]
    end, commas = _brace_body(pattern, start)
    if end is None:
        return [pattern]
    head, body, tails = pattern[:start], pattern[start + 1:end], expand_braces(pattern[end + 1:])
    span = _NUMERIC_RANGE.fullmatch(body)
    if span:
        options = _numeric_range(*span.groups())
    elif commas:
        cuts = [start] + commas + [end]
        options = [o for a, b in zip(cuts, cuts[1:]) for o in expand_braces(pattern[a + 1:b])]
    else:
        return [head + '{' + body + '}' + t for t in tails]
    return [head + o + t for o in options for t in tails]


def resolve_shards(shards):
    """The tar files named by ``shards`` (a pattern or a list of them), in order. A pattern is
    brace-expanded (:func:`expand_braces`); each result is a glob or a path, and every one must
    match a file: a missing shard fails naming the pattern and the paths that match nothing."""
    patterns = [shards] if isinstance(shards, (str, Path)) else list(shards)
    if not patterns:
        raise ValueError('WebDatasetShards: no shard pattern given')
    paths = []
    for pattern in patterns:
        expanded = expand_braces(str(pattern))
        missing = []
        for path in expanded:
            found = sorted(glob.glob(path)) if _GLOB_CHARS.search(path) else (
                [path] if os.path.isfile(path) else [])
            if not found:
                missing.append(path)
            paths += found
        if len(expanded) == 1 and missing:
            raise FileNotFoundError(f'no tar shard matches {pattern}')
        if missing:
            shown = ', '.join(missing[:5]) + (f' ... (+{len(missing) - 5} more)'
                                             if len(missing) > 5 else '')
            raise FileNotFoundError(f'{len(missing)} of the {len(expanded)} shards named by '
                                    f'{pattern} match no file: {shown}')
    return paths


@DATASETS.register_module()
class WebDatasetShards(ImageTextDataset):
    """img2dataset-style tar shards: ``{key}.jpg`` (or png/webp) + ``{key}.txt`` [+ ``.json``].

    ``shards``: a pattern or a list of them; a pattern is a path, a glob (``data/cc3m/*.tar``)
    and/or a shell brace expression (``data/cc12m/{00000..01242}.tar``, ``{cc3m,cc12m}``), see
    :func:`resolve_shards`. Every shard is indexed once at construction (member offsets, with
    ``tarfile``), so items are read by random access. A sample without a ``.txt`` uses the
    ``caption`` of its ``.json`` if any; samples without an image or a caption are left out
    (counted in the log).
    """

    def __init__(self, shards, pipeline=(), max_skip=50):
        patterns = [shards] if isinstance(shards, (str, Path)) else list(shards)
        self.shards = resolve_shards(patterns)
        self.source = ', '.join(map(str, patterns))
        self._handles = {}
        super().__init__(pipeline, max_skip)

    def load_records(self):
        records, incomplete = [], 0
        for shard_id, path in enumerate(self.shards):
            samples = {}
            try:
                with tarfile.open(path, 'r:') as tar:
                    for m in tar:
                        if not m.isfile():
                            continue
                        base = os.path.basename(m.name)
                        if '.' not in base:
                            continue
                        stem, ext = base.split('.', 1)
                        key = os.path.join(os.path.dirname(m.name), stem)
                        samples.setdefault(key, {})[ext.lower()] = (m.offset_data, m.size)
                        if ext.lower() in ('txt', 'json'):
                            samples[key][ext.lower() + ':data'] = tar.extractfile(m).read()
            except tarfile.TarError as err:
                raise ValueError(f'cannot read tar shard {path}: {err}') from err
            for key, parts in samples.items():
                image = next((e for e in IMAGE_EXTS if e in parts), None)
                caption = self._caption(parts)
                if image is None or not caption:
                    incomplete += 1
                    continue
                records.append(((shard_id, key, image, parts[image]), [caption]))
        if incomplete:
            warn(f'{self.source}: {incomplete} samples without an image or a caption left out')
        return records

    @staticmethod
    def _caption(parts):
        if 'txt:data' in parts:
            return parts['txt:data'].decode('utf-8', 'replace').strip()
        if 'json:data' in parts:
            try:
                meta = json.loads(parts['json:data'])
            except ValueError:
                return ''
            return str(meta.get('caption') or '').strip() if isinstance(meta, dict) else ''
        return ''

    def image_path(self, index):
        shard_id, key, ext, _ = self.records[index][0]
        return f'{self.shards[shard_id]}:{key}.{ext}'

    def _handle(self, shard_id):
        # one open file per shard and process (workers reopen after fork)
        pid = os.getpid()
        handle = self._handles.get(shard_id)
        if handle is None or handle[0] != pid:
            handle = (pid, open(self.shards[shard_id], 'rb'))
            self._handles[shard_id] = handle
        return handle[1]

    def read_image(self, index):
        shard_id, _, _, (offset, size) = self.records[index][0]
        f = self._handle(shard_id)
        f.seek(offset)
        data = f.read(size)
        if len(data) != size:
            raise OSError(f'truncated member ({len(data)} of {size} bytes)')
        return read_rgb(data)

    def __getstate__(self):
        state = dict(self.__dict__)
        state['_handles'] = {}
        return state
