"""Atomic replacement: old or new file, never a partial one, with ordinary permissions."""
import os
import stat

import pytest

from ovseg_bench.fileio import atomic_path, write_text_atomic


def test_the_new_file_gets_the_permissions_open_would_give(tmp_path):
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / 'a' / 'rows.csv', 'x\n')
    finally:
        os.umask(old)
    path = tmp_path / 'a' / 'rows.csv'
    assert path.read_text() == 'x\n'
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_an_error_while_writing_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / 'cache.pt'
    path.write_text('old')
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text('half')
        raise RuntimeError('killed')
    assert path.read_text() == 'old'
    assert [p.name for p in tmp_path.iterdir()] == ['cache.pt']
