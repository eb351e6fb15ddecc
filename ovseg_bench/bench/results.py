"""The results schema: one CSV row per evaluated cell, per-class IoU in a long CSV beside it.

Rows are appended atomically (the whole file is rewritten to a temporary file and renamed), so
a kill at any moment leaves a valid CSV holding every finished row.
"""
import csv
import datetime
import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path

KEY_FIELDS = ['method', 'backbone', 'pretrained', 'train_data', 'dataset', 'setting', 'seed']
METRIC_FIELDS = ['mIoU', 'mAcc', 'aAcc', 'mIoU_seen', 'mIoU_unseen', 'hIoU']
PROTOCOL_FIELDS = ['protocol', 'short_side', 'mode', 'crop', 'stride', 'templates',
                   'logit_scale', 'bg_threshold', 'area_threshold', 'postprocess',
                   'precision', 'vocabulary', 'max_long_side', 'window_pad', 'pad_multiple',
                   'synonym_merge', 'bg_rule', 'pamr_steps', 'pamr_dilations']
COST_FIELDS = ['params_trainable', 'params_total', 'train_time_s', 'eval_time_s',
               'images_per_s', 'peak_mem_mb', 'device']
PROVENANCE_FIELDS = ['git_commit', 'config_hash', 'timestamp', 'config', 'method_source_sha']
FIELDS = KEY_FIELDS + METRIC_FIELDS + PROTOCOL_FIELDS + COST_FIELDS + PROVENANCE_FIELDS
PER_CLASS_FIELDS = KEY_FIELDS + ['class_index', 'class_name', 'split', 'IoU', 'Acc',
                                 'gt_pixels', 'pred_pixels']


def read_rows(path):
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


def _replace_with(path, write):
    """Write a file whole through ``write(f)`` on a temporary text file beside ``path``,
    flushed to disk, then renamed over ``path``: readers see the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    with os.fdopen(fd, 'w', newline='') as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the results from other users
    os.replace(tmp, path)


def _write_atomic(path, fields, rows):
    def write(f):
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction='ignore')
        writer.writeheader()
        writer.writerows(rows)
    _replace_with(path, write)


def write_text_atomic(path, text):
    _replace_with(path, lambda f: f.write(text))


def check_writable(path):
    """``PermissionError`` naming the folder if a results file cannot be written at ``path``
    (checked before an evaluation, not after it)."""
    folder = Path(path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as err:
        raise PermissionError(f'cannot write results into {folder} ({err.strerror}); choose '
                              f'a writable folder (--out / --work-dir / --out-dir)') from None


def cell_key(cfg, dataset):
    """The key fields of the result row of ``cfg``'s method on ``dataset`` (known before running:
    the runner skips cells whose key is already in the results)."""
    from ..registry import METHODS, check_name
    check_name(METHODS, cfg['method']['type'])
    head_cls = METHODS.get(cfg['method']['type'])
    backbone = cfg['backbone']
    data = cfg.get('train_data') if head_cls.trainable else None
    return dict(
        method=cfg['method']['type'],
        backbone=backbone.get('model') or backbone.get('path', ''),
        pretrained=backbone.get('pretrained') or 'none',
        train_data=(f"{data['type']}:{data.get('data_root') or data.get('name', '')}"
                    if data else 'none'),
        dataset=dataset, setting=head_cls.setting,
        seed=cfg.get('train', {}).get('seed', cfg.get('seed', 0)))


def row_key(row, key_fields=KEY_FIELDS):
    return tuple(str(row.get(k, '')) for k in key_fields)


def append_rows(path, new_rows, fields=FIELDS, key_fields=KEY_FIELDS):
    """Add rows, replacing any earlier row with the same key fields; atomic."""
    keys = {row_key(r, key_fields) for r in new_rows}
    rows = [r for r in read_rows(path) if row_key(r, key_fields) not in keys] + list(new_rows)
    _write_atomic(path, fields, rows)


def fmt(value):
    return f'{value:.2f}' if isinstance(value, float) else value


def git_commit(repo=None):
    """Short commit of the code that made a row (``repo``: this package's checkout),
    ``-dirty`` when tracked files had changes (such a row cannot be reproduced from the
    commit alone)."""
    def git(*args):
        return subprocess.run(['git', *args], capture_output=True, text=True,
                              cwd=repo or Path(__file__).parent, timeout=10)
    try:
        commit = git('rev-parse', '--short', 'HEAD').stdout.strip()
        if not commit:
            return 'unknown'
        # status (not diff-index) refreshes the index: a touched but unchanged file is clean
        dirty = bool(git('status', '--porcelain', '--untracked-files=no').stdout.strip())
        return commit + ('-dirty' if dirty else '')
    except (OSError, subprocess.SubprocessError):
        return 'unknown'


def config_hash(cfg_dict):
    text = json.dumps(cfg_dict, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def now():
    return datetime.datetime.now().isoformat(timespec='seconds')

