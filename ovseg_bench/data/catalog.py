"""Named dataset configs: ``configs/_base_/datasets/<name>.py`` (preparation: docs/datasets/),
read from the project's configs (shipped inside the package by a wheel, ``CONFIG_ROOT``)."""
from pathlib import Path

from mmengine.config import Config
from mmseg.registry import DATASETS

from ..config import CONFIG_ROOT, did_you_mean
from .datasets import check_dataset_cfg

DATASET_DIR = CONFIG_ROOT / '_base_' / 'datasets'


def dataset_names():
    return sorted(p.stem for p in DATASET_DIR.glob('*.py'))


def load_dataset_cfg(name, root=None):
    """The ``dataset`` dict of a named dataset config, with ``root`` overridden if given."""
    path = DATASET_DIR / f'{name}.py'
    if not path.is_file():
        valid = dataset_names()
        raise KeyError(f'unknown dataset {name!r}.{did_you_mean(name, valid)} '
                       f'Valid: {", ".join(valid)}')
    ds = Config.fromfile(str(path)).dataset.to_dict()
    if root is not None:
        ds['root'] = str(root)
    return ds


def split_cfg(ds, split='eval', pipeline=()):
    """The mmseg dataset config of one split, with ``data_root`` and ``pipeline`` filled in.

    Its files are checked first: a missing folder or split file fails with the expected
    layout and the command that prepares it.
    """
    if split not in ds:
        raise KeyError(f'dataset {ds["name"]!r} has no {split!r} split; it has: '
                       f'{", ".join(k for k in ("eval", "train") if k in ds)}')
    cfg = dict(ds[split])
    cfg['data_root'] = str(Path(ds['root']) / ds['subdir'])
    cfg['pipeline'] = list(pipeline)
    check_dataset_cfg(cfg)
    return cfg


def describe_datasets():
    out = {}
    for name in dataset_names():
        out[name] = Config.fromfile(str(DATASET_DIR / f'{name}.py')).dataset.get(
            'description', '')
    return out


# ---------------------------------------------------------------- named splits
@DATASETS.register_module(name='NamedSplit')
def named_split(name, split='train', pipeline=(), root=None):
    """A split of a named dataset config (``configs/_base_/datasets/<name>.py``) as an mmseg
    dataset, e.g. seen-class pixel labels for training a zero-shot method::

        train_data = dict(type='NamedSplit', name='synth_coco', split='train', pipeline=[...])

    ``root`` overrides the dataset config's root folder."""
    return DATASETS.build(split_cfg(load_dataset_cfg(name, root), split, pipeline))
