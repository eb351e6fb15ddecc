"""The evaluation protocol: the one home of its fields, their defaults and legal values, and
which of them make two results comparable.

:class:`OVSegmentor <ovseg_bench.segmentor.OVSegmentor>` reads a :class:`Protocol`, the results
schema's protocol columns are :func:`result_columns`, and the field table of
``docs/protocol.md`` is held to this class by ``tests/test_protocol.py``. What each field means
in full is in that table; the comments here are its short form.
"""
import dataclasses
from dataclasses import dataclass, field

from .config import did_you_mean

MODES = ('whole', 'slide')
PADS = ('end', 'center', 'none')
MERGES = ('logit_max', 'prob_max')
BG_RULES = ('probability', 'group_score')
POSTPROCESSES = ('none', 'pamr')
PRECISIONS = ('fp32', 'bf16')


def _field(default, comparable=True, choices=None):
    """A protocol field; ``comparable``: it can change a prediction, so every result row
    records it and two rows are comparable only when these agree (the others are labels or
    only change speed)."""
    kind = dict(default_factory=dict) if isinstance(default, dict) else dict(default=default)
    return field(**kind, metadata=dict(comparable=comparable, choices=choices))


@dataclass
class Protocol:
    name: str = _field('custom', comparable=False)   # label of the preset, its own column
    short_side: int = _field(224)            # test images resized to this short side ...
    max_long_side: int = _field(2048)        # ... unless the long side would pass this
    mode: str = _field('slide', choices=MODES)
    crop: int = _field(224)                  # slide window size
    stride: int = _field(112)                # slide window step
    window_pad: str = _field('end', choices=PADS)  # windows off the patch grid
    pad_multiple: int = _field(0)            # pad to a multiple of this (0: the patch size)
    templates: str = _field('imagenet80')    # prompt templates (text.TEMPLATES)
    vocabularies: str = _field('ovseg')      # class-name files (text.VOCABULARY_SETS)
    synonym_merge: str = _field('logit_max', choices=MERGES)
    logit_scale: float = _field(100.0)       # temperature of the softmax thresholds read
    bg_rule: str = _field('probability', choices=BG_RULES)
    bg_threshold: float = _field(0.0)        # background below this class probability
    area_threshold: float = _field(0.0)      # drop classes on at most this share (SCLIP)
    postprocess: str = _field('none', choices=POSTPROCESSES)  # 'pamr': pamr.py
    pamr_steps: int = _field(10)
    pamr_dilations: tuple = _field((8, 16))
    precision: str = _field('fp32', choices=PRECISIONS)
    window_batch: int = _field(64, comparable=False)      # windows per forward pass
    batched_windows: bool = _field(True, comparable=False)  # False: the naive loop
    batch_size: int = _field(1, comparable=False)
    num_workers: int = _field(2, comparable=False)        # dataloader workers
    pin_memory: object = _field('auto', comparable=False)  # auto: on CUDA
    text_cache: str = _field('~/.cache/ovseg_bench/text', comparable=False)
    per_dataset: dict = _field({}, comparable=False)  # {dataset: {field: value}}

    def __post_init__(self):
        for f in dataclasses.fields(self):
            choices = f.metadata['choices']
            if choices and getattr(self, f.name) not in choices:
                raise ValueError(f'protocol.{f.name} must be one of {choices}, got '
                                 f'{getattr(self, f.name)!r}')

    @classmethod
    def from_dict(cls, values):
        """A protocol from a config dict: ``KeyError`` naming a misspelt field and the valid
        ones, ``ValueError`` naming a value outside a field's legal ones."""
        values = dict(values or {})
        _check_names(values)
        return cls(**values)


def _check_names(values, where=''):
    names = field_names()
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise KeyError(f'unknown protocol field(s) {", ".join(unknown)}{where}.'
                       f'{did_you_mean(unknown[0], names, n=1)} valid: {", ".join(names)}')


def field_names():
    return [f.name for f in dataclasses.fields(Protocol)]


def defaults():
    """``{field: default}`` of every protocol field."""
    return dataclasses.asdict(Protocol())


def result_columns():
    """The protocol columns of a result row: the preset's name (``protocol``), the class-name
    files read with a hash of their content (``vocabulary``, what ``vocabularies`` resolves
    to), then every other comparable field in declaration order."""
    return ['protocol', 'vocabulary'] + [
        f.name for f in dataclasses.fields(Protocol)
        if f.metadata['comparable'] and f.name != 'vocabularies']


def resolve_protocol(protocol, dataset):
    """The flat protocol a dataset is scored with, as a dict: defaults, then the config's
    fields, then that dataset's entry of ``per_dataset`` (a preset's published per-dataset
    values, e.g. SCLIP's thresholds). The result is what every row records."""
    protocol = dict(protocol or {})
    _check_names(protocol)
    overrides = dict(protocol.pop('per_dataset', None) or {}).get(dataset, {})
    _check_names(overrides, f' in per_dataset.{dataset}')
    resolved = dataclasses.asdict(Protocol(**{**protocol, **overrides}))
    del resolved['per_dataset']
    return resolved
