"""Result rows: provenance."""
import subprocess

from ovseg_bench.bench import results


def test_git_commit_is_marked_dirty_when_tracked_files_changed(tmp_path):
    def git(*args):
        subprocess.run(['git', '-c', 'user.name=t', '-c', 'user.email=t@t', *args],
                       cwd=tmp_path, check=True, capture_output=True)
    git('init', '-q')
    (tmp_path / 'a.py').write_text('x = 1\n')
    git('add', 'a.py')
    git('commit', '-q', '-m', 'first')
    head = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=tmp_path,
                          capture_output=True, text=True).stdout.strip()
    assert results.git_commit(tmp_path) == head
    (tmp_path / 'untracked.txt').write_text('not part of the code\n')
    assert results.git_commit(tmp_path) == head
    (tmp_path / 'a.py').write_text('x = 2\n')
    assert results.git_commit(tmp_path) == head + '-dirty'


def test_git_commit_outside_a_repository_is_none(tmp_path):
    assert results.git_commit(tmp_path) is None
