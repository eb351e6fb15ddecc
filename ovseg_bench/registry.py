"""The project's registries, children of mmengine's root registries.

``METHODS`` holds method heads (built-ins in ``methods/``, installed as the package
``ovseg_bench_methods``; third-party plugins through the ``ovseg_bench.methods`` entry-point group
or a plugin file), each with its :class:`MethodInfo` record (:func:`register_method`,
:func:`method_info`). ``BACKBONES`` holds CLIP adapters; datasets are mmseg's ``DATASETS``
registry, to which ``ovseg_bench.data`` adds its own classes. Every build goes through
:func:`build`, which fails at once with the valid names for an unknown ``type``.
"""
import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import pkgutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from mmengine.registry import Registry

from .config import CONFIG_ROOT, check_kwargs, did_you_mean

# Own registries (not children of mmengine's MODELS): methods and backbones are built by this
# project's code, never looked up by mmengine's runner.
METHODS = Registry('method', scope='ovseg_bench')
BACKBONES = Registry('backbone', scope='ovseg_bench')
SETTINGS = ('open_vocab', 'zero_shot')

# What registers the built-in entries when imported. By name: these modules import this one
# (to register), so this one never imports them statically.
REGISTERING_PACKAGES = ('ovseg_bench.backbones', 'ovseg_bench.data')
BUILTIN_METHODS = 'ovseg_bench_methods'   # the repository's methods/ (setup.py)
_PLUGINS_LOADED = False
PLUGIN_FILES = []  # loaded with load_plugin_file, for worker processes to load again


def load_plugins():
    """Import every built-in method module and every entry-point plugin (once)."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    for name in REGISTERING_PACKAGES:
        importlib.import_module(name)
    methods = importlib.import_module(BUILTIN_METHODS)
    for info in pkgutil.iter_modules(methods.__path__):
        importlib.import_module(f'{BUILTIN_METHODS}.{info.name}')
    for ep in importlib.metadata.entry_points(group='ovseg_bench.methods'):
        ep.load()


def load_plugin_file(path):
    """Import a method plugin from a stand-alone ``.py`` file (``--plugin path.py``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'plugin file not found: {path}')
    if path.suffix != '.py':
        raise ValueError(f'plugin file {path} is not a .py file')
    spec = importlib.util.spec_from_file_location(f'ovseg_plugin_{path.stem}', path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module     # what inspect and dataclasses look a class's module up in
    try:
        spec.loader.exec_module(module)
    except KeyError as err:       # mmengine: a name registered twice
        del sys.modules[spec.name]
        raise KeyError(f'plugin {path}: {err.args[0] if err.args else err}; give the class '
                       f'another name (or register_module(name=...))') from None
    except Exception as err:      # the plugin's own code: anything
        del sys.modules[spec.name]
        raise ValueError(f'plugin {path} failed to import: {type(err).__name__}: {err} '
                         f'(--debug shows the traceback)') from None
    if str(path.resolve()) not in PLUGIN_FILES:
        PLUGIN_FILES.append(str(path.resolve()))
    return module


def freeze_imports():
    """Move every object alive now (the ~0.4 M of the imported libraries, in a process that
    has loaded its plugins) out of the garbage collector's reach. They live as long as the
    process, and each full collection would rescan them: mmengine runs one per dataset build,
    ~0.4 s each on 2 cores, 28 of them in the default benchmark's main process."""
    import gc
    gc.freeze()


@dataclass(frozen=True)
class MethodInfo:
    """What the framework knows about a method besides its code (one record per method).

    name:         the registered class name (``method.type`` in configs)
    display_name: how tables and figures print it (e.g. 'CLIP-ZSS')
    setting:      'open_vocab' (annotation-free) or 'zero_shot' (seen-class pixel labels)
    trainable:    False for training-free methods (the benchmark only evaluates them)
    train_views:  the per-method views its training batch needs by default (e.g.
                  ``('crops',)``); the data pipeline must provide them. A head built with
                  options that need fewer narrows its own ``train_views``.
    config:       absolute path of its default config (the one the default benchmark and the
                  contract checks use), or None
    source:       absolute path of the file that defines it
    """
    name: str
    display_name: str
    setting: str
    trainable: bool
    train_views: tuple
    config: Optional[str]
    source: str

    @property
    def source_sha(self):
        """SHA-256 of the defining file (the ``method_source_sha`` result column)."""
        return hashlib.sha256(Path(self.source).read_bytes()).hexdigest()


_INFO = {}


def _resolve_default_config(config, source):
    """A record's ``config``: absolute as given, else next to the defining file, else under the
    package's configs (``CONFIG_ROOT``)."""
    if config is None:
        return None
    path = Path(config)
    for candidate in (path, Path(source).parent / path, CONFIG_ROOT / path):
        if candidate.is_absolute() and candidate.is_file():
            return str(candidate.resolve())
    raise FileNotFoundError(f'default config {config} of the method in {source} not found '
                            f'(looked next to that file and in {CONFIG_ROOT})')


def register_method(display_name=None, setting='open_vocab', trainable=True, train_views=(),
                    config=None):
    """Class decorator: register a :class:`~ovseg_bench.head.MethodHead` in ``METHODS`` with
    its :class:`MethodInfo`. ``config`` is relative to the defining file or to the package's
    configs (``'maskclip/maskclip_tiny_synth.py'``), or absolute."""
    if setting not in SETTINGS:
        raise ValueError(f'register_method: setting must be one of {SETTINGS}, got {setting!r}')

    def register(cls):
        source = str(Path(inspect.getfile(cls)).resolve())
        info = MethodInfo(
            name=cls.__name__, display_name=display_name or cls.__name__, setting=setting,
            trainable=bool(trainable), train_views=tuple(train_views),
            config=_resolve_default_config(config, source), source=source)
        METHODS.register_module(module=cls)
        _INFO[cls.__name__] = info
        # The head's own defaults, read where only the instance is at hand (the trainer).
        cls.trainable, cls.setting, cls.train_views = bool(trainable), setting, tuple(train_views)
        return cls
    return register


def method_info(name):
    """The :class:`MethodInfo` of a registered method (``KeyError`` listing the valid names).

    A class registered with plain ``METHODS.register_module()`` gets a record from its class
    attributes (``trainable``, ``setting``, ``train_views``), its name as display name and no
    default config."""
    check_name(METHODS, name)
    if name not in _INFO:
        cls = METHODS.get(name)
        _INFO[name] = MethodInfo(
            name=name, display_name=name, setting=getattr(cls, 'setting', 'open_vocab'),
            trainable=bool(getattr(cls, 'trainable', True)),
            train_views=tuple(getattr(cls, 'train_views', ())), config=None,
            source=str(Path(inspect.getfile(cls)).resolve()))
    return _INFO[name]


def names(registry):
    load_plugins()
    return sorted(registry.module_dict)


def describe(registry):
    """``{name: first docstring line}`` for every entry of ``registry``."""
    load_plugins()
    out = {}
    for name, cls in sorted(registry.module_dict.items()):
        doc = (cls.__doc__ or '').strip().splitlines()
        out[name] = doc[0] if doc else ''
    return out


def check_name(registry, name, what=None):
    """Raise a ``KeyError`` listing the valid names (closest first) if ``name`` is unknown."""
    load_plugins()
    if name in registry.module_dict:
        return
    valid = sorted(registry.module_dict)
    hint = did_you_mean(name, valid)
    raise KeyError(f'unknown {what or registry.name} {name!r}.{hint} '
                   f'Valid: {", ".join(valid)}')


def build(registry, cfg, **kwargs):
    """Instantiate ``cfg['type']`` from ``registry`` with the other keys (and ``kwargs``).

    Fails early and readably for an unknown type or argument. Calls the class directly rather than
    ``registry.build``, which would search the scope of whatever mmengine runner ran last.
    """
    cfg = dict(cfg)
    name = cfg.pop('type', None)
    check_name(registry, name)
    check_kwargs(registry.get(name), cfg, registry.name, provided=tuple(kwargs))
    return registry.get(name)(**kwargs, **cfg)
