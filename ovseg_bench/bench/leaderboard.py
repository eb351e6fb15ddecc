"""Leaderboards from result CSVs: method x dataset tables (CSV, Markdown) and figures.

Methods go by their display names (``registry.method_info``). Rows are grouped by setting
(annotation-free first, then zero-shot), training-free baselines before trained methods, and
the bar chart gives each setting a panel of its own: the settings see different supervision,
so no bar stands beside one it cannot be compared with. Measured rows are averaged over seeds
(with the standard deviation when there are several). Published numbers
(``reference_results.csv``, with source and protocol) are appended as separate rows marked
``reference``; they are never averaged with measured ones.
"""
import csv
import statistics
import sys
from collections import defaultdict, namedtuple
from pathlib import Path

import numpy as np

from ..registry import method_info
from . import results

REFERENCE_CSV = Path(__file__).with_name('reference_results.csv')


# Columns read as numbers (validated: a foreign or damaged file never gives a wrong number).
NUMERIC = results.METRIC_FIELDS + ['params_trainable', 'params_total', 'train_time_s',
                                   'eval_time_s', 'images_per_s', 'peak_mem_mb']
PER_CLASS_NUMERIC = ['class_index', 'IoU', 'Acc', 'gt_pixels', 'pred_pixels']


def _number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


# The columns a results file must have to be read (what the tables group by and show); key
# columns added later to the schema may be absent from older files.
REQUIRED = ['method', 'backbone', 'dataset', 'setting', 'seed', 'mIoU']


def read_checked(path, required=REQUIRED, numeric=NUMERIC, table='results'):
    """The rows of a results source (a results CSV, or per-run JSON: a file or a folder;
    ``table``: its ``'results'`` or ``'per_class'`` rows) whose schema is checked
    (``ValueError`` naming the missing columns of a foreign file) and whose every row is whole
    and numeric where it must be: a row cut short (a partial last line) or with a non-number
    is reported by line and skipped."""
    header, entries = results.read_table(path, table)
    if not header:
        return []
    missing = [c for c in required if c not in header]
    if missing:
        raise ValueError(f'{path} is not an ovseg-bench results file: no column '
                         f'{", ".join(missing)} (its columns: {", ".join(header[:8]) or "none"}'
                         f'{", ..." if len(header) > 8 else ""})')
    rows = []
    for where, row in entries:
        problem = None
        if None in row or None in row.values():
            given = len(header) - sum(v is None for v in row.values())
            problem = f'cut short ({given} of {len(header)} fields)'
        else:
            bad = [k for k in numeric if row.get(k) and not _number(row[k])]
            if bad:
                problem = f'{bad[0]}={row[bad[0]]!r} is not a number'
        if problem:
            print(f'leaderboard: skipping {where}: {problem}', file=sys.stderr, flush=True)
            continue
        rows.append(row)
    return rows


def load(paths, key=results.row_key, **check):
    """Rows of several results CSVs (several runs or machines); later files win on equal keys."""
    merged = {}
    for path in paths:
        for row in read_checked(path, **check):
            merged[key(row)] = row
    return list(merged.values())


def per_class_key(row):
    return results.row_key(row) + (row['class_index'],)


def check_metric(metric, rows):
    """``KeyError`` for a metric that is not a numeric results column (with the valid ones),
    ``ValueError`` when no row has a value for it."""
    if metric not in NUMERIC:
        from ..config import did_you_mean
        raise KeyError(f'unknown --metric {metric!r}.{did_you_mean(metric, NUMERIC)} Valid: '
                       f'{", ".join(NUMERIC)}')
    if not any(r.get(metric) for r in rows):
        raise ValueError(f'no result row has a value for {metric} (mIoU_seen, mIoU_unseen and '
                         f'hIoU are in zero-shot rows only)')


# The settings in the order shown, each with what its methods were trained on.
SETTINGS = {'open_vocab': 'annotation-free (image-text pairs or no training)',
            'zero_shot': 'zero-shot (trained with the seen classes\' masks)'}
# How a row's weights came about, in the order shown within a setting.
TRAINING = ('training-free', 'untrained', 'trained')

Entry = namedtuple('Entry', 'label setting training cells')


def method_meta(method):
    """(display name, training-free?) of a results ``method``; a method not registered here
    (a plugin not loaded) keeps its name and counts as trained (None: unknown)."""
    try:
        info = method_info(method)
    except KeyError:
        return method, None
    return info.display_name, not info.trainable


def training_kind(method, train_data):
    free = method_meta(method)[1]
    if free or (free is None and train_data in ('', 'none')):
        return 'training-free'
    return 'untrained' if train_data in ('', 'none') else 'trained'


def entry_order(entry):
    """The leaderboard's row order: setting, then training-free baselines, untrained heads
    and trained methods, then name."""
    setting = list(SETTINGS).index(entry.setting) if entry.setting in SETTINGS else len(SETTINGS)
    return setting, entry.setting, TRAINING.index(entry.training), entry.label


def table(rows, metric='mIoU'):
    """[:class:`Entry`(label, setting, training, {dataset: (mean, std, n)}), ...] in the
    leaderboard's order (:func:`entry_order`) and the dataset order.

    Rows differing only in seed are averaged. A method whose runs differ in starting weights
    or training data on one dataset gets a line per run, labelled with what differs."""
    cells = defaultdict(list)
    datasets = []
    for r in rows:
        if r.get(metric) in ('', None):
            continue
        run = (r['method'], r['backbone'], r['setting'], r.get('pretrained', ''),
               r.get('train_data', ''))
        cells[run + (r['dataset'],)].append(float(r[metric]))
        if r['dataset'] not in datasets:
            datasets.append(r['dataset'])
    runs = defaultdict(set)          # (method, backbone, setting, dataset) -> its runs
    for method, backbone, setting, pretrained, train_data, dataset in cells:
        runs[(method, backbone, setting, dataset)].add((pretrained, train_data))
    split = {k[:3] for k, v in runs.items() if len(v) > 1}
    out = defaultdict(dict)
    for (method, backbone, setting, pretrained, train_data, dataset), values in cells.items():
        label = f'{method_meta(method)[0]} ({backbone})'
        if (method, backbone, setting) in split:
            label += f' [weights {Path(pretrained).name}; trained on {train_data}]'
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        key = (label, setting, training_kind(method, train_data))
        out[key][dataset] = (statistics.mean(values), std, len(values))
    return sorted((Entry(*k, v) for k, v in out.items()), key=entry_order), datasets


def reference_rows(datasets, metric='mIoU', path=REFERENCE_CSV):
    """Published numbers on the same dataset names: [(label, {dataset: value}), ...]."""
    refs = defaultdict(dict)
    for r in results.read_rows(path):
        if r['dataset'] in datasets and r.get('metric', 'mIoU') == metric:
            refs[f'{r["method"]} ({r["backbone"]}) [reference: {r["source"]}; '
                 f'{r["protocol"]}]'][r['dataset']] = float(r['value'])
    return sorted(refs.items())


def fmt_cell(cell):
    if cell is None:
        return '-'
    mean, std, n = cell
    return f'{mean:.2f} ± {std:.2f}' if n > 1 else f'{mean:.2f}'


def write_tables(rows, out_dir, metric='mIoU', reference=REFERENCE_CSV):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries, datasets = table(rows, metric)
    header = ['method', 'kind', 'setting', 'training'] + datasets + ['mean', 'seeds']
    lines = []
    for e in entries:
        means = [e.cells[d][0] for d in datasets if d in e.cells]
        mean = sum(means) / len(means) if len(means) == len(datasets) else None
        n = max(c[2] for c in e.cells.values())
        lines.append([e.label, 'measured', e.setting, e.training]
                     + [fmt_cell(e.cells.get(d)) for d in datasets]
                     + [f'{mean:.2f}' if mean is not None else '-', n])
    for label, values in reference_rows(datasets, metric, reference):
        present = [values[d] for d in datasets if d in values]
        mean = sum(present) / len(present) if len(present) == len(datasets) else None
        lines.append([label, 'reference', '', ''] + [f'{values[d]:.2f}' if d in values else '-'
                                                     for d in datasets]
                     + [f'{mean:.2f}' if mean is not None else '-', ''])
    with open(out_dir / 'leaderboard.csv', 'w', newline='') as f:
        csv.writer(f).writerows([header] + lines)
    md = [f'| {" | ".join(header)} |', '|' + '---|' * len(header)]
    md += [f'| {" | ".join(map(str, line))} |' for line in lines]
    settings = '; '.join(f'{k} = {v}' for k, v in SETTINGS.items()
                         if any(e.setting == k for e in entries))
    (out_dir / 'leaderboard.md').write_text(
        f'{metric} (%) per dataset; measured rows are means over seeds (± std). Settings are '
        f'not comparable with each other: {settings}.\n\n' + '\n'.join(md) + '\n')
    return entries, datasets


def plot_bars(entries, datasets, path, metric='mIoU'):
    """One panel per setting (same y axis), its methods' bars per dataset; training-free
    baselines hatched."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    panels = defaultdict(list)
    for e in entries:
        panels[e.setting].append(e)
    most = max(len(p) for p in panels.values())
    fig, axes = plt.subplots(len(panels), 1, squeeze=False, sharey=True, layout='constrained',
                             figsize=(
        max(6, 1.6 * len(datasets) + 0.4 * most * len(datasets)), 0.5 + 3.6 * len(panels)))
    x = np.arange(len(datasets))
    for ax, (setting, group) in zip(axes[:, 0], panels.items()):
        width = 0.8 / most              # the same bar width in every panel
        for i, e in enumerate(group):
            means = [e.cells.get(d, (np.nan, 0, 0))[0] for d in datasets]
            stds = [e.cells.get(d, (0, 0, 0))[1] for d in datasets]
            bars = ax.bar(x + (i - (len(group) - 1) / 2) * width, means, width,
                          label=f'{e.label}, {e.training}',
                          hatch='//' if e.training == 'training-free' else None,
                          yerr=stds if any(stds) else None, capsize=2)  # none for one seed
            ax.bar_label(bars, fmt='%.1f', fontsize=7, padding=1)
        ax.set_xticks(x, datasets)
        ax.set_ylabel(f'{metric} (%)')
        ax.set_title(f'{setting}: {SETTINGS.get(setting, "another setting")}', fontsize=10)
        ax.legend(fontsize=8, loc='upper left', bbox_to_anchor=(1.0, 1.0))
        ax.grid(axis='y', alpha=0.3)
    fig.suptitle(f'{metric} per dataset (measured; compare bars within a panel only)',
                 fontsize=11)
    fig.savefig(path, dpi=120, bbox_inches='tight')    # the legends beside the panels
    plt.close(fig)


def plot_heatmap(per_class_rows, path):
    """Per-class IoU, one panel per dataset: methods x classes, the value in each cell;
    a class some method held out as unseen is marked ``*``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    by_dataset = defaultdict(lambda: defaultdict(dict))
    unseen = defaultdict(set)
    for r in per_class_rows:
        if r['IoU'] not in ('', 'nan'):
            method = method_meta(r['method'])[0]
            by_dataset[r['dataset']][method][r['class_name']] = float(r['IoU'])
        if r.get('split') == 'unseen':
            unseen[r['dataset']].add(r['class_name'])
    if not by_dataset:
        return
    fig, axes = plt.subplots(len(by_dataset), 1, squeeze=False,
                             figsize=(12, 2.2 + 0.9 * sum(len(m) for m in by_dataset.values())))
    for ax, (dataset, methods) in zip(axes[:, 0], sorted(by_dataset.items())):
        classes = list(dict.fromkeys(c for m in methods.values() for c in m))
        grid = np.array([[methods[m].get(c, np.nan) for c in classes] for m in sorted(methods)])
        im = ax.imshow(grid, vmin=0, vmax=100, cmap='viridis', aspect='auto')
        for (i, j), value in np.ndenumerate(grid):
            if not np.isnan(value):
                ax.text(j, i, f'{value:.0f}', ha='center', va='center', fontsize=7,
                        color='black' if value > 60 else 'white')
        ax.set_yticks(range(len(methods)), sorted(methods), fontsize=8)
        ax.set_xticks(range(len(classes)),
                      [f'{c}*' if c in unseen[dataset] else c for c in classes],
                      rotation=60, ha='right', fontsize=7)
        ax.set_title(f'{dataset}: per-class IoU (%)'
                     + ('; * unseen in zero-shot training' if unseen[dataset] else ''), fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.02)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def palette(n, seed=3):
    """256 RGB colours: tab20's distinct ones for up to 20 classes, random ones beyond."""
    from matplotlib import colormaps
    colours = np.random.default_rng(seed).integers(40, 255, (max(n, 256), 3), dtype=np.uint8)
    if n <= 20:
        colours[:20] = (np.array(colormaps['tab20'].colors) * 255).astype(np.uint8)
    colours[255] = 0  # ignore: black
    return colours


def plot_qualitative(pred_dirs, dataset, path, n_images=4, data_root=None):
    """Image, ground truth and each method's prediction for the first ``n_images`` val images.

    ``pred_dirs`` maps a method label to the folder of its saved label PNGs for ``dataset``.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from mmseg.registry import DATASETS
    from PIL import Image

    from ..data.catalog import load_dataset_cfg, split_cfg
    from ..text import load_vocabulary
    ds = load_dataset_cfg(dataset, data_root)
    data = DATASETS.build(split_cfg(ds, 'eval'))
    items = [data.get_data_info(i) for i in range(min(n_images, len(data)))]
    vocabulary = load_vocabulary(ds['vocabulary'])
    colours = palette(len(vocabulary))
    shown = set()  # class indices in any panel, for the colour legend
    cols = 2 + len(pred_dirs)
    fig, axes = plt.subplots(len(items), cols, squeeze=False, figsize=(2.2 * cols, 1.8 * len(items)))
    for r, item in enumerate(items):
        gt = np.asarray(Image.open(item['seg_map_path'])).astype(np.int64)
        if item.get('reduce_zero_label'):
            gt = np.where(gt == 0, 255, gt - 1)
        stem = Path(item['img_path']).stem
        panels = [('image', np.asarray(Image.open(item['img_path']).convert('RGB'))),
                  ('ground truth', colours[gt.clip(0, 255)])]
        shown.update(np.unique(gt).tolist())
        for label, folder in pred_dirs.items():
            pred = Path(folder) / f'{stem}.png'
            pred = np.asarray(Image.open(pred)) if pred.is_file() else None
            shown.update(np.unique(pred).tolist() if pred is not None else [])
            panels.append((label, colours[pred] if pred is not None
                           else np.zeros_like(panels[0][1])))
        for c, (title, img) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(img, interpolation='nearest')
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=8)
    from matplotlib.patches import Patch
    names = {**{i: v[0] if isinstance(v, (list, tuple)) else v  # a class's first name
                for i, v in enumerate(vocabulary)}, 255: 'ignore'}
    handles = [Patch(color=colours[i] / 255, label=names.get(i, str(i))) for i in sorted(shown)]
    fig.legend(handles=handles, loc='lower center', ncol=min(len(handles), 10), fontsize=7,
               frameon=False)
    fig.suptitle(f'{dataset}: predictions on the first validation images', fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 1))  # room for the legend
    fig.savefig(path, dpi=110)
    plt.close(fig)


def build(result_csvs, out_dir, metric='mIoU', pred_root=None, data_root=None,
          reference=REFERENCE_CSV):
    """Write leaderboard.csv/.md, leaderboard.png and per_class.png into ``out_dir`` (and,
    given ``pred_root`` = a bench's ``eval`` folder, one qualitative_<dataset>.png each)."""
    absent = [str(p) for p in result_csvs if not Path(p).exists()]
    if absent:
        raise FileNotFoundError(f'results file not found: {", ".join(absent)}')
    rows = load(result_csvs)
    if not rows:
        raise FileNotFoundError(f'no result rows in {", ".join(map(str, result_csvs))}')
    check_metric(metric, rows)
    entries, datasets = write_tables(rows, out_dir, metric, reference)
    plot_bars(entries, datasets, Path(out_dir) / 'leaderboard.png', metric)
    per_class = load(result_csvs, per_class_key, table='per_class',
                     required=REQUIRED[:-1] + ['class_index', 'IoU'],
                     numeric=PER_CLASS_NUMERIC)
    plot_heatmap(per_class, Path(out_dir) / 'per_class.png')
    if pred_root and Path(pred_root).is_dir():
        for dataset in datasets:
            dirs = {method_meta(p.parent.parent.name.split('-')[0])[0]: p
                    for p in sorted(Path(pred_root).glob(f'*/{dataset}/predictions'))}
            if dirs:
                plot_qualitative(dirs, dataset, Path(out_dir) / f'qualitative_{dataset}.png',
                                 data_root=data_root)
    return Path(out_dir)
