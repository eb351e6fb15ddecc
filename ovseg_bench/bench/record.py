"""One evaluated cell on record: its ``results.csv`` row, its per-class rows, and its per-run
JSON (``results/<cell>.json`` beside the CSV: resolved config, protocol, vocabulary, package
versions, commit, metrics and per-class results, in the shape of
:data:`ovseg_bench.bench.results.RUN_SCHEMA`).
"""
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
from ..fileio import write_text_atomic
from ..registry import method_info
from . import results


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
        timestamp=results.now(), config=cfg.filename or '',
        method_source_sha=method_info(cfg.method.type).source_sha, **(extra or {}))
    return {k: _scalar(row[k]) for k in results.FIELDS if k in row}


def versions():
    """{distribution: installed version or None} of ``results.VERSIONED``, Python's and the
    CUDA version torch was built for."""
    def version(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None
    return {'python': platform.python_version(), **{n: version(n) for n in results.VERSIONED},
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
    """The per-run JSON of a result ``row`` (see ``results.RUN_SCHEMA``)."""
    classes = json.dumps(ev.classes, default=str)
    doc = dict(
        schema=results.SCHEMA_ID, row=row, metrics=ev.metrics, per_class=ev.per_class,
        protocol=ev.protocol,
        vocabulary=dict(label=ev.vocabulary, sha1=hashlib.sha1(classes.encode()).hexdigest(),
                        classes=ev.classes),
        config=cfg.to_dict(), versions=versions(), git_commit=row['git_commit'],
        world_size=ev.world_size)
    # through JSON text once: tuples become lists, paths and other objects their text
    return _no_nan(json.loads(json.dumps(doc, default=str)))


def record(results_csv, cfg, ev, row):
    """Write the cell's per-class rows, its per-run JSON and, last, its row (the summary row
    marks a finished cell: a kill in between leaves none, so the cell is redone)."""
    results.append_rows(Path(results_csv).with_name('per_class.csv'),
                        results.per_class_rows(row, ev.per_class), results.PER_CLASS_FIELDS)
    write_text_atomic(results.json_path(results_csv, row),
                      json.dumps(run_document(cfg, ev, row), indent=1, allow_nan=False) + '\n')
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


