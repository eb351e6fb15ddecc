"""Data: the synthetic world (``synthetic``), dataset classes registered into mmseg's
``DATASETS`` (``datasets``, and the image-text sets and views of ``image_text``, imported
here so they register) and named dataset configs and their splits (``catalog``, which
registers ``NamedSplit``)."""
from . import catalog  # noqa: F401  (registers NamedSplit)
from . import datasets  # noqa: F401  (registers the dataset classes)
from . import image_text  # noqa: F401  (registers the caption datasets and views)
