"""One evaluated cell on record: its ``results.csv`` row, its per-class rows, and its per-run
JSON (``results/<cell>.json`` beside the CSV: resolved config, protocol, vocabulary, package
versions, commit, metrics and per-class results, in the shape of :data:`RUN_SCHEMA`); and
results read back from either form.
"""
import csv
import hashlib
import json
import math
import platform
from importlib import metadata
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.dist import is_main_process

from ..config import load_config
from ..engine.evaluate import evaluate
from . import results

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
        'row': {'type': 'object', 'required': results.KEY_FIELDS + ['mIoU', 'mAcc', 'aAcc'],
                'additionalProperties': False,
                'properties': {**{f: {'type': _SCALAR} for f in results.FIELDS},
                               **{f: {'type': _NUMBER} for f in results.METRIC_FIELDS}}},
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


def _scalar(value):
    """A row value as one CSV cell holds it: numbers, text and None as they are, anything
    else (a tuple of dilations, a path) as its text, so the CSV and the JSON agree."""
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


def make_row(cfg, ev, extra=None):
    """The ``results.csv`` row of the :class:`~ovseg_bench.engine.evaluate.Evaluation` ``ev``
    of ``cfg`` (metrics to two decimals, every protocol field, cost, provenance)."""
    key = results.cell_key(cfg, ev.dataset)
    if ev.untrained:
        key['train_data'] = 'none'      # not the trained cell's row: these weights saw none
    protocol = ev.protocol
    row = dict(
        **key,
        **{k: round(v, 2) for k, v in ev.metrics.items()},
        protocol=protocol['name'], vocabulary=ev.vocabulary,
        **{k: protocol[k] for k in results.PROTOCOL_FIELDS if k in protocol},
        params_trainable=ev.params_trainable, params_total=ev.params_total,
        eval_time_s=round(ev.eval_time_s, 2), images_per_s=round(ev.images_per_s, 2),
        peak_mem_mb=round(ev.peak_mem_mb, 1), device=ev.device,
        git_commit=results.git_commit(), config_hash=results.config_hash(cfg.to_dict()),
        timestamp=results.now(), config=cfg.filename or '', **(extra or {}))
    return {k: _scalar(row[k]) for k in results.FIELDS if k in row}


def per_class_rows(row, per_class):
    """The ``per_class.csv`` rows of a result row: its key, then one row per class."""
    keys = {k: row[k] for k in results.KEY_FIELDS}
    return [dict(keys, class_index=c['index'], class_name=c['name'], split=c['split'],
                 IoU=round(c['IoU'], 2), Acc=round(c['Acc'], 2), gt_pixels=c['gt_pixels'],
                 pred_pixels=c['pred_pixels'])
            for c in per_class]


def versions():
    """{distribution: installed version or None} of :data:`VERSIONED`, Python's and the
    CUDA version torch was built for."""
    def version(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None
    return {'python': platform.python_version(), **{n: version(n) for n in VERSIONED},
            'cuda': torch.version.cuda}          # the CUDA torch was built for (or None)


def _no_nan(value):
    """``value`` with every NaN as None (JSON has no NaN; null reads back as undefined)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_no_nan(v) for v in value]
    return value


def run_document(cfg, ev, row):
    """The per-run JSON of a result ``row`` (see :data:`RUN_SCHEMA`)."""
    classes = json.dumps(ev.classes, default=str)
    doc = dict(
        schema=SCHEMA_ID, row=row, metrics=ev.metrics, per_class=ev.per_class,
        protocol=ev.protocol,
        vocabulary=dict(label=ev.vocabulary, sha1=hashlib.sha1(classes.encode()).hexdigest(),
                        classes=ev.classes),
        config=cfg.to_dict(), versions=versions(), git_commit=row['git_commit'],
        world_size=ev.world_size)
    # through JSON text once: tuples become lists, paths and other objects their text
    return _no_nan(json.loads(json.dumps(doc, default=str)))


def json_dir(results_csv):
    """The folder of the per-run JSON files of ``results_csv``: ``results/`` beside it."""
    return Path(results_csv).parent / 'results'


def json_path(results_csv, row):
    """``results/<cell>.json`` beside ``results_csv``: method, dataset, seed and a hash of
    the whole key (backbone, weights and training data included) name the file."""
    digest = hashlib.sha1('\0'.join(results.row_key(row)).encode()).hexdigest()[:8]
    return json_dir(results_csv) / f'{row["method"]}_{row["dataset"]}_s{row["seed"]}_{digest}.json'


def record(results_csv, cfg, ev, row):
    """Write the cell's per-class rows, its per-run JSON and, last, its row (the summary row
    marks a finished cell: a kill in between leaves none, so the cell is redone)."""
    results.append_rows(Path(results_csv).with_name('per_class.csv'),
                        per_class_rows(row, ev.per_class), results.PER_CLASS_FIELDS)
    results.write_text_atomic(json_path(results_csv, row),
                              json.dumps(run_document(cfg, ev, row), indent=1,
                                         allow_nan=False) + '\n')
    results.append_rows(results_csv, [row])


def evaluate_row(cfg, dataset, work_dir, results_csv=None, extra=None, **kwargs):
    """Evaluate ``cfg`` on ``dataset`` (``kwargs``: :func:`evaluate`'s) and return its result
    row; with ``results_csv``, rank 0 records it there (:func:`record`)."""
    cfg = cfg if isinstance(cfg, Config) else load_config(cfg)
    if results_csv:
        results.check_writable(results_csv)
    ev = evaluate(cfg, dataset, work_dir, **kwargs)
    row = make_row(cfg, ev, extra)
    if results_csv and is_main_process():
        record(results_csv, cfg, ev, row)
    return row


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
        return [{f: _csv_text(f, row[f], results.METRIC_FIELDS) if f in row else ''
                 for f in results.FIELDS}]
    per_class = [{k: float('nan') if v is None else v for k, v in c.items()}
                 for c in doc['per_class']]
    return [{f: _csv_text(f, r.get(f), ()) for f in results.PER_CLASS_FIELDS}
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
        fields = results.FIELDS if table == 'results' else results.PER_CLASS_FIELDS
        return fields, [(f, row) for f, doc, _ in docs for row in _json_rows(doc, table)]
    if table == 'per_class':
        path = path.with_name('per_class.csv')
    if not path.is_file():
        return [], []
    with open(path, newline='') as f:
        reader = csv.DictReader(f)
        entries = [(f'{path} line {reader.line_num}', row) for row in reader]
        return reader.fieldnames or [], entries
