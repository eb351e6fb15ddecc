"""Data: the synthetic world (``synthetic``), dataset classes registered into mmseg's
``DATASETS`` (``datasets``, imported here so they register) and named dataset configs
(``catalog``)."""
from . import datasets  # noqa: F401  (registers the dataset classes)
