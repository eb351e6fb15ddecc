"""``speed.csv``'s columns and what is drawn from its rows: ``speed.md`` (a Markdown table)
and ``speed.png`` (bars of images/s per method)."""
from pathlib import Path

from .inputs import BACKBONE_MODELS, backbone_model

MODES = ('whole', 'slide', 'train')
FIELDS = ['method', 'backbone', 'size', 'mode', 'batch', 'path', 'precision', 'compiled',
          'device', 'torch', 'git_commit', 'timestamp', 'images_per_s', 'seconds',
          'flops_per_image', 'tflops', 'mfu', 'peak_mem_mb', 'other_load', 'note']
KEY_FIELDS = ['method', 'backbone', 'size', 'mode', 'batch', 'path', 'precision', 'compiled',
              'device']
BUSY_LOAD = 0.5   # other processes' cores above which a figure is starred in the plot


def markdown_table(rows):
    """The rows as a Markdown table (device, torch and commit stated once per combination
    above it; empty cells as '-')."""
    def cell(row, key, scale=1.0, fmt='{:.3g}'):
        value = row.get(key, '')
        return fmt.format(float(value) * scale) if value not in ('', None) else '-'

    out = []
    setups = sorted({(r['device'], r['torch'], r['git_commit']) for r in rows})
    for device, version, commit in setups:
        out.append(f'Device {device}, torch {version}, commit {commit}.\n')
    out.append('| backbone | size | method | mode | path | precision | batch | images/s '
               '| GFLOP/image | TFLOP/s | MFU | peak MB | other load | note |')
    out.append('|' + '---|' * 14)
    for r in rows:
        out.append('| ' + ' | '.join([
            r['backbone'], str(r['size'] or '-'), r['method'], r['mode'],
            r['path'] + (' (compiled)' if str(r.get('compiled')) == '1' else ''),
            r['precision'] or '-', str(r['batch'] or '-'),
            cell(r, 'images_per_s') if r['mode'] != 'text' else cell(r, 'seconds', 1, '{:.3g} s'),
            cell(r, 'flops_per_image', 1e-9), cell(r, 'tflops', 1, '{:.2g}'),
            cell(r, 'mfu', 100, '{:.1f}%'), cell(r, 'peak_mem_mb', 1, '{:.0f}'),
            cell(r, 'other_load', 1, '{:.1f}'), r['note'] or '']) + ' |')
    return '\n'.join(out) + '\n'


def _series_label(row):
    label = row['mode'] if row['mode'] != 'slide' else f"slide ({row['path'].replace('_', '-')})"
    if row.get('precision', 'fp32') != 'fp32':
        label += f" {row['precision']}"
    if str(row.get('compiled', '0')) == '1':
        label += ' compiled'
    return label


def plot(rows, path):
    """Horizontal bars of images/s (training: samples/s) per method, one panel per
    (backbone, size, device), one colour per mode/path; values printed at the bar ends,
    starred when other processes kept :data:`BUSY_LOAD` cores or more busy meanwhile;
    training-free methods say so in their training slot."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r['mode'] in MODES]
    measured = [r for r in rows if r.get('images_per_s') not in ('', None)]
    if not measured:
        return None
    panels = {}
    for r in rows:
        panels.setdefault((r['backbone'], r['size'], r['device']), []).append(r)
    order = list(BACKBONE_MODELS)
    keys = sorted({(r['backbone'], r['size'], r['device']) for r in measured},
                  key=lambda k: (order.index(k[0]) if k[0] in order else len(order),
                                 k[0], int(k[1] or 0), k[2]))
    series = []
    for r in measured:
        label = _series_label(r)
        if label not in series:
            series.append(label)
    series.sort(key=lambda s: (['whole', 'slide', 'train'].index(s.split()[0]), s))
    colours = dict(zip(series, plt.get_cmap('tab10').colors))
    n_methods = max(len({r['method'] for r in panels[k]}) for k in keys)
    height = max(3.0, 0.22 * n_methods * len(series) + 1.8)
    fig, axes = plt.subplots(1, len(keys), figsize=(6.5 * len(keys), height), squeeze=False)
    starred = False
    for ax, key in zip(axes[0], keys):
        cells = {(r['method'], _series_label(r)): r for r in panels[key]}
        methods = sorted({m for m, _ in cells})
        bar = 0.8 / len(series)
        top = max(float(r['images_per_s']) for r in panels[key] if r['images_per_s'] != '')
        for j, label in enumerate(series):
            ys = [i + (j - (len(series) - 1) / 2) * bar for i in range(len(methods))]
            values = [float(cells[m, label]['images_per_s'])
                      if (m, label) in cells and cells[m, label]['images_per_s'] != '' else 0.0
                      for m in methods]
            ax.barh(ys, values, height=bar, color=colours[label], label=label)
            for y, v, m in zip(ys, values, methods):
                row = cells.get((m, label))
                if row is None:
                    continue
                if row['images_per_s'] == '':
                    text = row['note'] if row['note'] == 'training-free' else 'failed'
                    ax.text(top * 0.01, y, text, va='center', fontsize=7, color='0.4')
                    continue
                busy = row.get('other_load') not in ('', None) and \
                    float(row['other_load']) >= BUSY_LOAD
                starred |= busy
                ax.text(v + top * 0.01, y, f'{v:.3g}' + ('*' if busy else ''), va='center',
                        fontsize=7)
        ax.set_yticks(range(len(methods)))
        ax.set_yticklabels(methods)
        ax.invert_yaxis()
        ax.set_xlim(0, top * 1.2)
        ax.set_xlabel('images/s (train: samples/s)')
        ax.set_title(f'{backbone_model(key[0])} at {key[1]} px, {key[2]}', fontsize=10)
        ax.grid(axis='x', alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc='lower center', ncol=len(series), fontsize=9,
               frameon=False, bbox_to_anchor=(0.5, 0.02 if starred else 0.0))
    if starred:
        fig.text(0.5, 0.005, f'* measured while other processes kept {BUSY_LOAD} CPU cores or '
                 f'more busy', ha='center', va='bottom', fontsize=8, color='0.3')
    fig.suptitle('ovseg-bench speed (random weights, synthetic inputs; higher is faster)',
                 fontsize=11)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
