"""Config loading and key checking shared by training and evaluation.

A typo in a config must fail before any work starts, naming the key and the closest valid one,
instead of being silently ignored (mmengine's ``Config`` accepts any key). Two checks:

* :func:`check_keys` -- the keys of one config dict against an explicit list;
* :func:`check_kwargs` -- the arguments given to a class (or function) against what its
  constructor accepts (``inspect.signature``, following ``**kwargs`` up the base classes).

Both raise ``KeyError`` with a one-line message (the CLI prints it without a traceback).
"""
import contextlib
import copy
import difflib
import inspect
from pathlib import Path

from mmengine.config import Config

# Every top-level key a method config may hold, training and evaluation together (a method
# config is used for both), with what it is for.
# The project's own open_clip model configs (``ovseg-tiny``): data, found by name without
# importing open_clip (the runner hashes them into its fingerprints).
MODEL_CONFIG_DIR = Path(__file__).parent / 'backbones' / 'model_configs'
# The project's configs: the repository's top-level ``configs/`` in a source checkout, the copy
# the wheel ships inside the package (setup.cfg maps ``configs/`` to ``ovseg_bench/configs``).
_PACKAGED_CONFIGS = Path(__file__).parent / 'configs'
CONFIG_ROOT = (_PACKAGED_CONFIGS if _PACKAGED_CONFIGS.is_dir()
               else Path(__file__).resolve().parents[1] / 'configs')

TOP_LEVEL_KEYS = {
    'backbone': 'the CLIP backbone (a BACKBONES type and its arguments)',
    'method': 'the method head (a METHODS type and its arguments)',
    'train_data': 'the training dataset (a DATASETS type, its arguments and pipeline)',
    'train': 'the training schedule (ovseg_bench.engine.trainer.TRAIN_DEFAULTS)',
    'work_dir': 'where checkpoints, logs and the exported weights go',
    'zeroshot': 'zero-shot image classification run at the end of training',
    'protocol': 'the evaluation protocol (ovseg_bench.protocol.Protocol)',
    'datasets': 'evaluation datasets by name',
    'seed': 'the seed of this benchmark cell',
    'cell_name': "this benchmark cell's name (its folder under the bench's eval/)",
    'unseen_classes': 'zero-shot setting: unseen class names per evaluation dataset',
    'zero_shot_splits': 'the seen/unseen splits (configs/_base_/zero_shot/splits.py)',
}


def config_seed(cfg):
    """The seed a config runs with: ``train.seed``, else the top-level ``seed`` (a benchmark
    cell's), else 0. Model init, data order and the untrained head all follow it."""
    seed = (cfg.get('train') or {}).get('seed', cfg.get('seed'))
    return 0 if seed is None else seed


def did_you_mean(name, valid, n=3, cutoff=0.6, prefix=''):
    """`` Did you mean X?`` for the valid names closest to ``name`` ('' if none is close): a
    name differing only in case first (``SegClip`` -> ``SegCLIP``), else difflib's nearest,
    compared case-insensitively. The one home of this hint for every name the user types."""
    lowered = {}
    for v in valid:
        lowered.setdefault(str(v).lower(), str(v))
    same = [v for v in map(str, valid) if v.lower() == str(name).lower()]
    close = same or [lowered[c] for c in difflib.get_close_matches(
        str(name).lower(), list(lowered), n=n, cutoff=cutoff)]
    return f' Did you mean {", ".join(prefix + c for c in close[:n])}?' if close else ''


def resolve_config_path(path):
    """``path`` if it is a file; else, for a relative ``configs/...`` path (what the README's
    commands name), the same file in the project's configs (``CONFIG_ROOT``), so they work
    from any folder with an installed package. ``FileNotFoundError`` if neither exists."""
    path = Path(path)
    if path.is_file():
        return path
    parts = path.parts
    if not path.is_absolute() and parts and parts[0] == 'configs':
        packaged = CONFIG_ROOT.joinpath(*parts[1:])
        if packaged.is_file():
            return packaged
    raise FileNotFoundError(f'config not found: {path}')


@contextlib.contextmanager
def _bases_from_config_root():
    """While reading a config, a ``_base_`` not found relative to the file that names it is
    looked up in the project's configs (``CONFIG_ROOT``): a config anywhere can build on
    ``_base_ = ['_base_/backbones/tiny_synth.py', '_base_/protocols/synth.py']``."""
    original = Config.__dict__['_get_cfg_path']

    def get_cfg_path(cfg_path, filename):
        path, scope = original.__func__(cfg_path, filename)
        if scope is None and not Path(path).is_file():
            fallback = CONFIG_ROOT / cfg_path
            if not fallback.is_file():
                raise FileNotFoundError(f'config {filename}: _base_ {cfg_path} found neither '
                                        f'next to it nor in {CONFIG_ROOT}')
            path = str(fallback)
        return path, scope
    Config._get_cfg_path = staticmethod(get_cfg_path)
    try:
        yield
    finally:
        Config._get_cfg_path = original


def read_config_file(path):
    """``Config.fromfile`` with one-line errors naming the file (missing, or a syntax or
    other error while executing it); the path and its ``_base_`` files may also be found in
    the project's configs (:func:`resolve_config_path`, :func:`_bases_from_config_root`)."""
    path = resolve_config_path(path)
    try:
        with _bases_from_config_root():
            return Config.fromfile(str(path))
    except SyntaxError as err:      # mmengine's message: its own prefix, then Python's
        text = str(err).splitlines()[0].split(f'{path}: ')[-1].replace('(<unknown>, ', '(')
        raise ValueError(f'config {path} has a syntax error: {text}') from None
    except Exception as err:   # the config is Python: anything may be raised executing it
        if isinstance(err, (FileNotFoundError, KeyError)):
            raise
        raise ValueError(f'config {path} cannot be read: {type(err).__name__}: '
                         f'{str(err).splitlines()[0] if str(err) else ""}') from None


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_types(values, reference, where=''):
    """``ValueError`` naming the key when a value of ``values`` is text where ``reference``
    has a number or a bool: what a mistyped ``--cfg-options`` gives (``train.iters=abc``),
    which would otherwise fail later as a bare ``int('abc')``. Other kinds pass (an int's
    place may hold a tuple: ``size=(h, w)``); dicts are checked key by key."""
    for key, value in values.items():
        ref = reference.get(key) if isinstance(reference, dict) else None
        path = f'{where}.{key}' if where else str(key)
        if isinstance(ref, dict) and isinstance(value, dict):
            check_types(value, ref, path)
            continue
        if not isinstance(value, str):
            continue
        kinds = ((_is_number, 'a number'), (lambda v: isinstance(v, bool), 'true or false'))
        for test, kind in kinds:
            if test(ref):
                raise ValueError(f'config key {path} must be {kind} (like {ref!r}), got '
                                 f'{value!r}; fix the value given for it (--cfg-options '
                                 f'{path}=...)')


def load_config(cfg, cfg_options=None):
    """A ``Config`` from a path, a dict or a ``Config`` (copied), with ``cfg_options`` merged
    (each of the kind of the value it replaces, :func:`check_types`)."""
    if isinstance(cfg, (str, Path)):
        cfg = read_config_file(cfg)
    elif isinstance(cfg, Config):
        cfg = copy.deepcopy(cfg)
    elif isinstance(cfg, dict):
        cfg = Config(copy.deepcopy(cfg))
    else:
        raise TypeError(f'a config is a path, a dict or a Config, got {type(cfg).__name__}')
    if cfg_options:
        options = Config()
        options.merge_from_dict(dict(cfg_options))     # dotted keys -> nested dicts
        check_types(options.to_dict(), cfg.to_dict())
        cfg.merge_from_dict(dict(cfg_options))
    return cfg


def _unknown_key_error(key, valid, where):
    valid = sorted(valid)
    path = f'{where}.{key}' if where else str(key)
    hint = did_you_mean(key, valid, n=1, cutoff=0.5, prefix=f'{where}.' if where else '')
    return KeyError(f'unknown config key {path!r}.{hint} Valid keys'
                    f'{f" in {where}" if where else ""}: {", ".join(valid)}')


def check_keys(cfg_dict, allowed, where=''):
    """``KeyError`` naming the first key of ``cfg_dict`` not in ``allowed`` and the nearest
    valid key (difflib). Keys starting with ``_`` (``_base_``, private) are ignored."""
    allowed = set(allowed)
    for key in cfg_dict:
        if str(key).startswith('_') or key in allowed:
            continue
        raise _unknown_key_error(key, allowed, where)


def accepted_kwargs(obj):
    """``(names, open)``: the keyword arguments ``obj`` (a class or function) accepts.

    For a class, the ``__init__`` of each class in the MRO is read as long as the one before
    forwards ``**kwargs``; ``open`` is True when some ``**kwargs`` is not accounted for (a
    function with ``**kwargs``), in which case nothing can be rejected.
    """
    if not inspect.isclass(obj):
        params = inspect.signature(obj).parameters.values()
        names = {p.name for p in params
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        return names, any(p.kind == p.VAR_KEYWORD for p in params)
    names, forwarded = set(), False
    for klass in obj.__mro__:
        if klass is object:
            # object.__init__ takes nothing more: a **kwargs that gets this far is consumed by
            # the class itself (e.g. mmcv's RandomResize passes it on to Resize), so open
            return names, forwarded
        init = vars(klass).get('__init__')
        if init is None:
            continue
        try:
            params = list(inspect.signature(init).parameters.values())[1:]   # drop self
        except (TypeError, ValueError):      # a builtin/extension __init__: cannot tell
            return names, True
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return names, False
        forwarded = True
    return names, False


def check_kwargs(obj, kwargs, where, provided=()):
    """``KeyError`` if ``kwargs`` (a config dict; ``type`` is skipped) holds an argument that
    ``obj`` does not accept; ``provided`` are arguments the caller fills in itself (e.g. a
    head's ``backbone``), which the config must not set either."""
    names, is_open = accepted_kwargs(obj)
    valid = names - set(provided)
    for key in kwargs:
        if key == 'type':
            continue
        if key in provided:
            raise KeyError(f'config key {where}.{key} is set by the framework and cannot be '
                           f'given in the config')
        if key not in valid and not is_open:
            raise _unknown_key_error(key, valid, where)
    check_types({k: v for k, v in kwargs.items() if k != 'type'}, default_values(obj), where)


def default_values(obj):
    """``{argument: default}`` of ``obj``'s own signature (its ``__init__`` for a class)."""
    try:
        params = inspect.signature(obj.__init__ if inspect.isclass(obj) else obj).parameters
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in params.values() if p.default is not p.empty}


def check_typed(registry, cfg, where, provided=()):
    """Check a ``dict(type=..., **kwargs)`` against the class its registry holds: an unknown
    type lists the valid names, an unknown argument names the nearest valid one."""
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise KeyError(f'{where} must be a dict with a "type" key, got {cfg!r}')
    typ = cfg['type']
    if not isinstance(typ, str):
        cls = typ
    else:
        cls = registry.get(typ)
        if cls is None:
            valid = sorted(registry.module_dict)
            parent = registry.parent
            while parent is not None:
                valid = sorted(set(valid) | set(parent.module_dict))
                parent = parent.parent
            hint = did_you_mean(typ, valid)
            raise KeyError(f'unknown {where}.type {typ!r} (not in the {registry.name} '
                           f'registry).{hint}')
    check_kwargs(cls, cfg, where, provided)
    return cls
