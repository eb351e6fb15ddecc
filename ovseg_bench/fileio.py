"""Atomic file replacement: the one way this package writes a file that others may be reading
(results, checkpoints, exported weights, the shared text-embedding cache)."""
import contextlib
import os
import tempfile
from pathlib import Path


def _default_mode():
    """The permissions ``open()`` gives a new file: 0666 less the umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path):
    """A temporary path beside ``path`` to write the new file to: on leaving the block it is
    flushed to disk and renamed over ``path`` (:func:`replace_durably`), so readers see the old
    file or the new one and a kill never leaves a partial one; on an error it is removed. The
    file gets the permissions of one made by ``open()`` (``mkstemp``'s 0600 would hide a
    shared cache or results from other users)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    os.close(fd)
    tmp = Path(tmp)
    try:
        os.chmod(tmp, _default_mode())
        yield tmp
        replace_durably(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def replace_durably(tmp, path):
    """``os.replace(tmp, path)`` after flushing ``tmp`` to disk, then the folder entry."""
    with open(tmp, 'rb+') as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(Path(path).parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomic(path, text):
    with atomic_path(path) as tmp:
        tmp.write_text(text)
