"""A benchmark matrix: its keys and checks, the cells it names (config x backbone x training
set x seed, each with its datasets), ``--only`` selections and ``--shard K/N`` parts."""
import copy
import fnmatch
import glob
import itertools
from pathlib import Path

from mmengine.config import Config

from .. import config as C
from ..protocol import Protocol
from ..registry import METHODS, check_name, load_plugins, method_info, names
from . import results
from .trainings import needs_training


# Every key a matrix config may hold, with what it is for.
MATRIX_KEYS = {
    'methods': "registered method names, or 'all' (plugins included)",
    'exclude': 'method names left out of `all`',
    'method_configs': "glob(s) of method configs; every match is a cell (per method type); "
                      "absent: each method's default config (its MethodInfo.config)",
    'plugin_base': 'configs merged for a plugin method that has no config of its own',
    'backbones': "backbone dicts (None: each config's own)",
    'train_sets': "train_data dicts for trainable methods (None: each config's own)",
    'train': 'training keys set in every trainable cell (e.g. a shorter schedule)',
    'datasets': "evaluation datasets (None: each config's own `datasets`)",
    'seeds': 'seeds; each seed of a trainable method is its own training run',
    'protocol': 'protocol keys set in every cell',
    'data_root': "the datasets' root folder, if not the dataset configs' own",
    'synthetic': 'a synthetic world written first if absent (folder or make_synthetic kwargs)',
    'pretrain': 'configs trained first (once; cached) that the cells start from',
    'train_workers': 'trainings run side by side, each in its own process',
    'save_predictions': 'predictions saved per cell for the qualitative grids',
    'out_dir': 'where results.csv, per_class.csv, eval/ and the leaderboard go',
}


def check_matrix(matrix):
    """Keys, and every method and dataset the matrix names, checked before anything runs."""
    from ..data.catalog import load_dataset_cfg
    C.check_keys({k: v for k, v in matrix.items() if not k.startswith('_')}, MATRIX_KEYS, '')
    for key in ('methods', 'datasets', 'seeds'):
        if key not in matrix:
            raise KeyError(f'matrix {matrix.filename or ""} has no {key!r} ({MATRIX_KEYS[key]})')
    load_plugins()
    named = [] if matrix.methods == 'all' else list(matrix.methods)
    for method in named + list(matrix.get('exclude', [])):
        check_name(METHODS, method, f'method (in matrix {matrix.filename or ""})')
    for dataset in matrix.datasets or ():
        load_dataset_cfg(dataset)
    Protocol.from_dict(matrix.get('protocol'))


def method_configs(patterns):
    """{method type: [config paths]} for every config matching ``patterns`` (a glob or list)."""
    found = {}
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        for path in sorted(glob.glob(pattern)):
            method = C.read_config_file(path).get('method', {}).get('type')
            if method and path not in found.get(method, []):
                found.setdefault(method, []).append(path)
    return found


def plugin_config(paths, method, matrix_name):
    """A config for a plugin that brought none: ``paths`` merged in order, its method type."""
    cfg = Config()
    for path in paths:
        cfg.merge_from_dict(C.read_config_file(path).to_dict())
    cfg.method = dict(type=method)
    cfg.work_dir = f'work_dirs/{method.lower()}_{matrix_name}'
    return cfg


def _variant(cfg, key, value):
    """Set ``cfg[key] = value`` and return a work_dir tag when that changes the config."""
    if value is None or cfg.get(key) == value:
        return ''
    cfg[key] = copy.deepcopy(value)
    kind = value.get('model') or value.get('name') or value.get('type') or key
    return f'_{Path(str(kind)).stem}-{results.config_hash(value)[:6]}'


def cell_configs(matrix):
    """One config per (method config, backbone, training set, seed), as the matrix asks.

    A cell that departs from its config (another backbone, training set, schedule or seed)
    gets its own work_dir, so that no two training runs share one."""
    load_plugins()
    wanted = names(METHODS) if matrix.methods == 'all' else list(matrix.methods)
    known = (method_configs(matrix.method_configs) if matrix.get('method_configs') else
             {m: [method_info(m).config] for m in wanted if method_info(m).config})
    out = []
    for method in wanted:
        if method in matrix.get('exclude', []):
            continue
        bases = ([C.read_config_file(p) for p in known[method]] if method in known
                 else [plugin_config(matrix.plugin_base, method,
                                     Path(matrix.filename or 'bench').stem)])
        trainable = METHODS.get(method).trainable
        train_sets = (matrix.get('train_sets') or [None]) if trainable else [None]
        for base, backbone, train_set in itertools.product(
                bases, matrix.get('backbones') or [None], train_sets):
            trains = trainable and bool(train_set or base.get('train_data'))
            for seed in matrix.seeds if trains else matrix.seeds[:1]:
                cfg = copy.deepcopy(base)
                tag = _variant(cfg, 'backbone', backbone)
                if trains:
                    tag += _variant(cfg, 'train_data', train_set)
                    if matrix.get('train'):
                        train = {**cfg.get('train', {}), **matrix.train}
                        tag += _variant(cfg, 'train', train)
                    # Another seed is another training run (the config's own seed keeps its
                    # work_dir, so e.g. the pretraining run is reused as the CLIP cell).
                    if C.config_seed(cfg) != seed:
                        cfg.setdefault('train', {})['seed'] = seed
                        tag += f'_s{seed}'
                if tag:
                    cfg.work_dir = f'{cfg.get("work_dir", f"work_dirs/{method.lower()}")}{tag}'
                model = cfg.backbone.get('model') or Path(cfg.backbone.get('path', '')).name
                stem = f'-{Path(base.filename).stem}' if len(bases) > 1 else ''
                cfg.cell_name = f'{method}-{model}-s{seed}{stem}{tag}'
                if 'protocol' in matrix:
                    cfg.protocol = {**cfg.get('protocol', {}), **matrix.protocol}
                cfg.seed = seed
                out.append(cfg)
    return out


def cell_datasets(matrix, cfg):
    """The matrix's datasets, or (``datasets = None``) the cell config's own."""
    datasets = matrix.datasets if matrix.datasets is not None else cfg.get('datasets')
    if not datasets:
        raise KeyError(f'{cfg.method.type}: the matrix has datasets=None and its config '
                       f'{cfg.filename or ""} names no `datasets`')
    return list(datasets)


def parse_only(text):
    """``method=PACL,dataset=synth_voc`` -> {'method': ['PACL'], 'dataset': ['synth_voc']}."""
    only = {}
    for part in filter(None, (text or '').split(',')):
        key, _, value = part.partition('=')
        if key not in results.KEY_FIELDS:
            raise KeyError(f'--only key {key!r} is not one of {", ".join(results.KEY_FIELDS)}.'
                           f'{C.did_you_mean(key, results.KEY_FIELDS)}')
        only.setdefault(key, []).append(value)
    return only


def check_only(only, keys):
    """``KeyError`` naming the valid values when a ``--only`` pattern matches no cell of the
    matrix (``keys``: the key dicts of all its cells), instead of "nothing to do"."""
    for key, patterns in only.items():
        values = sorted({str(k[key]) for k in keys})
        for pattern in patterns:
            if not any(fnmatch.fnmatch(v, pattern) for v in values):
                raise KeyError(f'--only {key}={pattern} matches no cell of the matrix.'
                               f'{C.did_you_mean(pattern, values)} Valid {key} values: '
                               f'{", ".join(values)}')


def selected(key, only):
    return all(any(fnmatch.fnmatch(str(key[k]), p) for p in pats) for k, pats in only.items())


def parse_shard(text):
    """``'K/N'`` -> ``(K, N)`` with 1 <= K <= N; None for None."""
    if text is None:
        return None
    k, _, n = str(text).partition('/')
    if not (k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise ValueError(f'--shard must be K/N with 1 <= K <= N, e.g. 2/4 for the second of '
                         f'four shards; got {text!r}')
    return int(k), int(n)


def shard_cells(cells, shard):
    """The cell configs of ``shard`` ``(K, N)``: a deterministic 1/N of them.

    A training run is shared by every cell config that trains in its work_dir (each of its
    datasets is a cell), so the unit dealt out is the run: all its cells go to one shard,
    and no run is trained by two shards. Runs are dealt round-robin in matrix order, those
    that train first, so that every shard gets its share of the trainings."""
    if shard is None:
        return cells
    k, n = shard
    units = {}
    for cfg in sorted(cells, key=lambda c: not needs_training(c)):    # stable
        units.setdefault(cfg.work_dir if needs_training(cfg) else cfg.cell_name, []).append(cfg)
    mine = {id(c) for i, unit in enumerate(units.values()) if i % n == k - 1 for c in unit}
    return [c for c in cells if id(c) in mine]
