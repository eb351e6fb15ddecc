from .base import Backbone, DenseFeatures  # noqa: F401
