import open_clip

from ..config import MODEL_CONFIG_DIR
from .base import Backbone, DenseFeatures, LastBlock, merge_heads, split_heads  # noqa: F401

# The project's own open_clip model configs (``ovseg-tiny``, the embedded default's CLIP).
if 'ovseg-tiny' not in open_clip.list_models():
    open_clip.add_model_config(MODEL_CONFIG_DIR)

from .hf_clip import HFCLIPBackbone  # noqa: E402,F401
from .open_clip import OpenCLIPBackbone  # noqa: E402,F401
from .open_clip_timm import OpenCLIPTimmBackbone  # noqa: E402,F401  (the timm-tower adapter)
from .vfm import TimmVFM  # noqa: E402,F401
