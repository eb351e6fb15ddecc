"""Data: the synthetic world (``synthetic``), the on-disk layouts (``layouts``) and their
converters (``prepare``), dataset classes registered into mmseg's ``DATASETS`` (``datasets``,
the image-text sets and views of ``image_text``, the zero-shot training transforms of
``zero_shot``: imported here so they register) and named dataset configs and their splits
(``catalog``, which registers ``NamedSplit``)."""
from . import catalog  # noqa: F401  (registers NamedSplit)
from . import datasets  # noqa: F401  (registers the dataset classes)
from . import image_text  # noqa: F401  (registers the caption datasets and views)
from . import zero_shot  # noqa: F401  (registers the zero-shot training transforms)
