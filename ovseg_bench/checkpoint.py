"""Reading weight files without running code from them.

A ``.pt``/``.pth`` file is a pickle, and a pickle can name any Python callable (one that
writes files, starts processes...). Every checkpoint this project reads goes through
:func:`load`: ``torch.load(weights_only=True)``, which rebuilds tensors and plain containers
only, plus the few types of mmengine's own training checkpoints (:func:`trusted_types`: its
log buffers and the numpy arrays inside them, none of which can call anything). A file that
needs any other object is refused with one line naming the file and the object; a damaged one
fails with one line naming the file.
"""
import pickle
import re
from pathlib import Path

import torch


class CheckpointError(ValueError):
    """A weight file that cannot be loaded safely (unsafe content or damaged)."""


def trusted_types():
    """The non-tensor types of an mmengine checkpoint (``iter_N.pth``): its message hub keeps
    the loss history as ``HistoryBuffer`` objects holding numpy arrays."""
    import numpy as np
    from mmengine.logging import HistoryBuffer
    try:
        from numpy._core.multiarray import _reconstruct, scalar   # numpy 2
    except ImportError:
        from numpy.core.multiarray import _reconstruct, scalar
    dtypes = {type(np.dtype(t)) for t in ('float64', 'float32', 'int64', 'int32', 'bool')}
    return [HistoryBuffer, np.ndarray, np.dtype, _reconstruct, scalar, *dtypes,
            (_statistics_method, 'builtins.getattr')]


def _statistics_method(cls, name):
    """What a ``HistoryBuffer``'s pickled state asks ``getattr`` for (its statistics methods:
    ``getattr(HistoryBuffer, 'mean')``), and nothing else."""
    from mmengine.logging import HistoryBuffer
    if cls is not HistoryBuffer or name not in ('min', 'max', 'current', 'mean'):
        raise pickle.UnpicklingError(f'Unsupported global: GLOBAL builtins.getattr of '
                                     f'{getattr(cls, "__name__", type(cls).__name__)}.{name}')
    return getattr(HistoryBuffer, name)


def _reason(err):
    """The informative line of a ``torch.load`` error."""
    text = str(err)
    found = re.search(r'WeightsUnpickler error:\s*(.+)', text)
    line = found.group(1) if found else text.strip().splitlines()[0] if text.strip() else ''
    return line.split('. This is an internal')[0].rstrip('.') or type(err).__name__


def load(path, what='checkpoint', mmap=False):
    """``torch.load(path)`` on CPU with ``weights_only=True`` (and :func:`trusted_types`).

    ``FileNotFoundError`` if absent; :class:`CheckpointError` (one line naming the file) if it
    needs unpickling of anything else or is not a readable torch file. ``mmap``: map the
    tensor storages instead of reading them (a cheap check that the file is whole)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{what} not found: {path}')
    try:
        with torch.serialization.safe_globals(trusted_types()):
            return torch.load(path, map_location='cpu', weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        unsafe = re.search(r'GLOBAL ([\w.]+)', str(err))
        if unsafe:
            raise CheckpointError(
                f'refusing to load {what} {path}: it needs the Python object '
                f'{unsafe.group(1)}, and unpickling objects can run code; only weights '
                f'(tensors in plain containers) are loaded. Re-save its state dict from a '
                f"trusted copy: torch.save(model.state_dict(), 'weights.pt')") from None
        raise CheckpointError(f'cannot read {what} {path}: not a torch.save file, or damaged '
                              f'({_reason(err)})') from None
    except Exception as err:   # random bytes make the unpickler fail in any way
        raise CheckpointError(f'cannot read {what} {path}: not a torch.save file, or '
                              f'truncated/damaged ({_reason(err)})') from None
