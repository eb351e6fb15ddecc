"""The project's registries, children of mmengine's root registries.

``METHODS`` holds method heads (built-ins in ``methods/``, third-party plugins through the
``ovseg_bench.methods`` entry-point group), ``BACKBONES`` holds CLIP adapters; datasets are
mmseg's ``DATASETS`` registry, to which ``ovseg_bench.data`` adds its own classes. Every build
goes through :func:`build`, which fails at once with the valid names for an unknown ``type``.
"""
import importlib
import importlib.metadata
import pkgutil
from dataclasses import dataclass

from mmengine.registry import Registry

from .config import check_kwargs, did_you_mean

# Own registries (not children of mmengine's MODELS): methods and backbones are built by this
# project's code, never looked up by mmengine's runner.
METHODS = Registry('method', scope='ovseg_bench', locations=['methods'])
BACKBONES = Registry('backbone', scope='ovseg_bench', locations=['ovseg_bench.backbones'])

_PLUGINS_LOADED = False
PLUGIN_FILES = []  # loaded with load_plugin_file, for worker processes to load again


def load_plugins():
    """Import every built-in method module and every entry-point plugin (once)."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    import methods
    import ovseg_bench.backbones  # noqa: F401  (registers the adapters)
    import ovseg_bench.data  # noqa: F401  (registers the dataset classes)
    for info in pkgutil.iter_modules(methods.__path__):
        importlib.import_module(f'methods.{info.name}')
    for ep in importlib.metadata.entry_points(group='ovseg_bench.methods'):
        ep.load()


def load_plugin_file(path):
    """Import a method plugin from a stand-alone ``.py`` file (``--plugin path.py``)."""
    import importlib.util
    import pathlib
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'plugin file not found: {path}')
    if path.suffix != '.py':
        raise ValueError(f'plugin file {path} is not a .py file')
    spec = importlib.util.spec_from_file_location(f'ovseg_plugin_{path.stem}', path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except KeyError as err:       # mmengine: a name registered twice
        raise KeyError(f'plugin {path}: {err.args[0] if err.args else err}; give the class '
                       f'another name (or register_module(name=...))') from None
    except Exception as err:      # the plugin's own code: anything
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


@dataclass(frozen=True)
class MethodInfo:
    """What the benchmark shows about a registered method, from its class attributes."""
    name: str              # the registered name (results' ``method`` column)
    display_name: str      # as the paper writes it (``display_name``, else the name)
    setting: str           # 'open_vocab' (annotation-free) or 'zero_shot' (seen-class masks)
    trainable: bool        # False: a training-free baseline


def method_info(name):
    """:class:`MethodInfo` of the registered method ``name`` (``KeyError`` if unknown)."""
    check_name(METHODS, name, 'method')
    cls = METHODS.get(name)
    return MethodInfo(name, getattr(cls, 'display_name', None) or name, cls.setting,
                      bool(cls.trainable))
