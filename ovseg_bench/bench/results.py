"""The results schema: one CSV row per evaluated cell, per-class IoU in a long CSV beside it,
and one JSON per evaluated cell in ``results/`` beside them (:data:`RUN_SCHEMA`); reading
results back from either form.

Rows are appended atomically (the whole file is rewritten to a temporary file and renamed), so
a kill at any moment leaves a valid CSV holding every finished row, and under an exclusive
lock on a lock file beside it (POSIX record locks, which NFS and Lustre honour across
machines), so that processes appending at once, e.g. the shards of a matrix, lose no row.
"""
import contextlib
import csv
import datetime
import fcntl
import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path

from .. import protocol
from ..config import config_seed
from ..fileio import atomic_path

KEY_FIELDS = ['method', 'backbone', 'pretrained', 'train_data', 'dataset', 'setting', 'seed']
METRIC_FIELDS = ['mIoU', 'mAcc', 'aAcc', 'mIoU_seen', 'mIoU_unseen', 'hIoU']
PROTOCOL_FIELDS = protocol.result_columns()
COST_FIELDS = ['params_trainable', 'params_total', 'train_time_s', 'eval_time_s',
               'images_per_s', 'peak_mem_mb', 'device']
PROVENANCE_FIELDS = ['git_commit', 'config_hash', 'timestamp', 'config', 'method_source_sha']
FIELDS = KEY_FIELDS + METRIC_FIELDS + PROTOCOL_FIELDS + COST_FIELDS + PROVENANCE_FIELDS
PER_CLASS_FIELDS = KEY_FIELDS + ['class_index', 'class_name', 'split', 'IoU', 'Acc',
                                 'gt_pixels', 'pred_pixels']


def read_rows(path):
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


def _write_atomic(path, fields, rows):
    with atomic_path(path) as tmp, open(tmp, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction='ignore')
        writer.writeheader()
        writer.writerows(rows)


def check_writable(path):
    """``PermissionError`` naming the folder if a results file cannot be written at ``path``
    (checked before an evaluation, not after it)."""
    folder = Path(path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as err:
        raise PermissionError(f'cannot write results into {folder} ({err.strerror}); choose '
                              f'a writable folder (--out / --work-dir / --out-dir)') from None


def cell_key(cfg, dataset):
    """The key fields of the result row of ``cfg``'s method on ``dataset`` (known before running:
    the runner skips cells whose key is already in the results)."""
    from ..registry import METHODS, check_name
    check_name(METHODS, cfg['method']['type'])
    head_cls = METHODS.get(cfg['method']['type'])
    backbone = cfg['backbone']
    data = cfg.get('train_data') if head_cls.trainable else None
    return dict(
        method=cfg['method']['type'],
        backbone=backbone.get('model') or backbone.get('path', ''),
        pretrained=backbone.get('pretrained') or 'none',
        train_data=(f"{data['type']}:{data.get('data_root') or data.get('name', '')}"
                    if data else 'none'),
        dataset=dataset, setting=head_cls.setting,
        seed=config_seed(cfg))


def row_key(row, key_fields=KEY_FIELDS):
    return tuple(str(row.get(k, '')) for k in key_fields)


@contextlib.contextmanager
def file_lock(path, waiting=None):
    """Hold an exclusive lock on the file ``path`` (created if absent) for the ``with``
    block; other processes, on this machine or another one sharing the filesystem, wait.
    ``waiting``: a line printed when the lock is busy, before waiting for it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            if waiting:
                print(waiting, flush=True)
            fcntl.lockf(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)        # releases the lock


def lock_path(path):
    """The lock file that guards the results file ``path``."""
    path = Path(path)
    return path.with_name(f'.{path.name}.lock')


def append_rows(path, new_rows, fields=FIELDS, key_fields=KEY_FIELDS):
    """Add rows, replacing any earlier row with the same key fields; atomic, and under the
    file's lock (the read and the rewrite are one step for concurrent writers)."""
    keys = {row_key(r, key_fields) for r in new_rows}
    with file_lock(lock_path(path)):
        rows = [r for r in read_rows(path) if row_key(r, key_fields) not in keys]
        _write_atomic(path, fields, rows + list(new_rows))


PACKAGE_DIR = Path(__file__).resolve().parents[1]


def git_commit(repo=None):
    """Short commit of the code that made a row, ``-dirty`` when tracked files had changes
    (such a row cannot be reproduced from the commit alone); None when the code is not a git
    checkout (``repo``: a checkout; default this package's, not a repository that merely
    contains an installed copy)."""
    def git(*args):
        return subprocess.run(['git', *args], capture_output=True, text=True,
                              cwd=repo or PACKAGE_DIR, timeout=10).stdout.strip()
    try:
        top = git('rev-parse', '--show-toplevel')
        if not top or (repo is None and Path(top).resolve() != PACKAGE_DIR.parent):
            return None
        commit = git('rev-parse', '--short', 'HEAD')
        if not commit:
            return None
        # status (not diff-index) refreshes the index: a touched but unchanged file is clean
        dirty = bool(git('status', '--porcelain', '--untracked-files=no'))
        return commit + ('-dirty' if dirty else '')
    except (OSError, subprocess.SubprocessError):
        return None


def config_hash(cfg_dict):
    text = json.dumps(cfg_dict, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def now():
    return datetime.datetime.now().isoformat(timespec='seconds')


def per_class_rows(row, per_class):
    """The ``per_class.csv`` rows of a result row: its key, then one row per class."""
    keys = {k: row[k] for k in KEY_FIELDS}
    return [dict(keys, class_index=c['index'], class_name=c['name'], split=c['split'],
                 IoU=round(c['IoU'], 2), Acc=round(c['Acc'], 2), gt_pixels=c['gt_pixels'],
                 pred_pixels=c['pred_pixels'])
            for c in per_class]


def json_dir(results_csv):
    """The folder of the per-run JSON files of ``results_csv``: ``results/`` beside it."""
    return Path(results_csv).parent / 'results'


def json_path(results_csv, row):
    """``results/<cell>.json`` beside ``results_csv``: method, dataset, seed and a hash of
    the whole key (backbone, weights and training data included) name the file."""
    digest = hashlib.sha1('\0'.join(row_key(row)).encode()).hexdigest()[:8]
    return json_dir(results_csv) / f'{row["method"]}_{row["dataset"]}_s{row["seed"]}_{digest}' \
                                   '.json'


# The distributions whose versions a run records (those that can move a number).
VERSIONED = ('torch', 'torchvision', 'open_clip_torch', 'mmsegmentation', 'mmengine', 'mmcv',
             'transformers', 'ovseg_bench')
SCHEMA_ID = 'ovseg-bench-run/1'

_SCALAR = ['string', 'number', 'boolean', 'null']
_NUMBER = ['number', 'null']            # null: NaN, a metric undefined on this data
RUN_SCHEMA = {
    '$schema': 'https://json-schema.org/draft/2020-12/schema',
    '$id': SCHEMA_ID,
    'type': 'object',
    'required': ['schema', 'row', 'metrics', 'per_class', 'protocol', 'vocabulary', 'config',
                 'versions', 'git_commit', 'world_size'],
    'additionalProperties': False,
    'properties': {
        'schema': {'enum': [SCHEMA_ID]},
        # the results.csv row as written there (flat; the CSV's columns)
        'row': {'type': 'object', 'required': KEY_FIELDS + ['mIoU', 'mAcc', 'aAcc'],
                'additionalProperties': False,
                'properties': {**{f: {'type': _SCALAR} for f in FIELDS},
                               **{f: {'type': _NUMBER} for f in METRIC_FIELDS}}},
        'metrics': {'type': 'object', 'required': ['mIoU', 'mAcc', 'aAcc'],
                    'additionalProperties': {'type': _NUMBER}},     # percent, unrounded
        'per_class': {'type': 'array', 'items': {
            'type': 'object', 'additionalProperties': False,
            'required': ['index', 'name', 'split', 'IoU', 'Acc', 'gt_pixels', 'pred_pixels'],
            'properties': {'index': {'type': 'integer'}, 'name': {'type': 'string'},
                           'split': {'enum': ['seen', 'unseen']}, 'IoU': {'type': _NUMBER},
                           'Acc': {'type': _NUMBER}, 'gt_pixels': {'type': 'integer'},
                           'pred_pixels': {'type': 'integer'}}}},
        'protocol': {'type': 'object'},
        'vocabulary': {'type': 'object', 'required': ['label', 'sha1', 'classes'],
                       'properties': {'label': {'type': 'string'}, 'sha1': {'type': 'string'},
                                      'classes': {'type': 'array'}}},
        'config': {'type': 'object'},
        'versions': {'type': 'object', 'required': ['python', *VERSIONED, 'cuda'],
                     'additionalProperties': {'type': ['string', 'null']}},
        'git_commit': {'type': ['string', 'null']},
        'world_size': {'type': 'integer', 'minimum': 1},
    },
}


# Reading results back: a results.csv (with per_class.csv beside it), or per-run JSON files
# (one file, or a folder of them).

def validate(value, schema, where='$'):
    """The first place where ``value`` departs from ``schema`` (the JSON Schema keywords
    :data:`RUN_SCHEMA` uses: type, enum, required, properties, additionalProperties, items,
    minimum), as text; None when it conforms."""
    kinds = {'object': dict, 'array': list, 'string': str, 'boolean': bool,
             'null': type(None), 'number': (int, float), 'integer': int}
    wanted = schema.get('type')
    if wanted is not None:
        wanted = [wanted] if isinstance(wanted, str) else wanted
        # JSON's true/false are not numbers, though Python's bool is an int
        if not any(isinstance(value, kinds[t]) and not (isinstance(value, bool) and t in (
                'number', 'integer')) for t in wanted):
            return f'{where} is {type(value).__name__}, not {" or ".join(wanted)}'
    if 'enum' in schema and value not in schema['enum']:
        return f'{where} is {value!r}, not one of {schema["enum"]}'
    if 'minimum' in schema and value < schema['minimum']:
        return f'{where} is {value}, below {schema["minimum"]}'
    if isinstance(value, dict):
        missing = [k for k in schema.get('required', ()) if k not in value]
        if missing:
            return f'{where} has no {missing[0]!r}'
        for k, v in value.items():
            sub = schema.get('properties', {}).get(k, schema.get('additionalProperties', {}))
            if sub is False:
                return f'{where} has an unknown key {k!r}'
            problem = validate(v, sub, f'{where}.{k}')
            if problem:
                return problem
    if isinstance(value, list) and 'items' in schema:
        for i, v in enumerate(value):
            problem = validate(v, schema['items'], f'{where}[{i}]')
            if problem:
                return problem
    return None


def read_run(path):
    """A per-run JSON, checked against :data:`RUN_SCHEMA` (``ValueError`` naming the file and
    the first departure)."""
    try:
        doc = json.loads(Path(path).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f'{path} is not a JSON file ({err})') from None
    problem = validate(doc, RUN_SCHEMA)
    if problem:
        raise ValueError(f'{path} is not an ovseg-bench per-run JSON ({SCHEMA_ID}): {problem}')
    return doc


def _csv_text(field, value, metrics):
    """A JSON value as ``csv`` writes and reads it back: None is NaN for a metric, else ''."""
    if value is None:
        return 'nan' if field in metrics else ''
    return str(value)


def _json_rows(doc, table):
    row = doc['row']
    if table == 'results':
        return [{f: _csv_text(f, row[f], METRIC_FIELDS) if f in row else ''
                 for f in FIELDS}]
    per_class = [{k: float('nan') if v is None else v for k, v in c.items()}
                 for c in doc['per_class']]
    return [{f: _csv_text(f, r.get(f), ()) for f in PER_CLASS_FIELDS}
            for r in per_class_rows(row, per_class)]


def is_json_source(path):
    path = Path(path)
    return path.suffix == '.json' or path.is_dir()


def read_table(path, table='results'):
    """``(columns, [(where, row)])`` of the ``table`` (``'results'`` or ``'per_class'``) of
    a results source: a ``results.csv`` (its ``per_class.csv`` beside it) or per-run JSON
    (a file, or a folder of them); every value as the CSV holds it (text), ``where`` names
    the file and line. An absent source has no rows."""
    path = Path(path)
    if is_json_source(path):
        files = (list(path.glob('*.json')) if path.is_dir()
                 else [path] if path.is_file() else [])
        docs = [(str(f), read_run(f), f.stat().st_mtime_ns) for f in files]
        # in the order the runs were recorded, as a results.csv lists its rows
        docs.sort(key=lambda d: (d[1]['row'].get('timestamp') or '', d[2], d[0]))
        fields = FIELDS if table == 'results' else PER_CLASS_FIELDS
        return fields, [(f, row) for f, doc, _ in docs for row in _json_rows(doc, table)]
    if table == 'per_class':
        path = path.with_name('per_class.csv')
    if not path.is_file():
        return [], []
    with open(path, newline='') as f:
        reader = csv.DictReader(f)
        entries = [(f'{path} line {reader.line_num}', row) for row in reader]
        return reader.fieldnames or [], entries
