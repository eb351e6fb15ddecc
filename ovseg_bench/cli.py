"""``ovseg-bench``: thin subcommands over the library (see ``ovseg-bench -h``)."""
import argparse
import sys
from pathlib import Path


def cmd_list(args):
    from .data.catalog import describe_datasets
    from .registry import BACKBONES, METHODS, describe
    from .text import TEMPLATES, vocabulary_names
    sections = [('methods', describe(METHODS)), ('backbones', describe(BACKBONES)),
                ('datasets', describe_datasets())]
    for title, entries in sections:
        print(f'{title}:')
        width = max(map(len, entries), default=0)
        for name, text in entries.items():
            print(f'  {name:<{width}}  {text}')
    print('templates:\n  ' + ', '.join(f'{k} ({len(v)})' for k, v in TEMPLATES.items()))
    print('vocabularies:\n  ' + ', '.join(vocabulary_names()))


def cmd_make_synthetic(args):
    from .data.synthetic import make_synthetic
    make_synthetic(args.out, seed=args.seed, n_val=args.n_val, n_seg_train=args.n_seg_train,
                   n_caption_train=args.n_caption_train, n_caption_val=args.n_caption_val)


def _load_cfg(path, options):
    from mmengine.config import Config
    if not Path(path).is_file():
        raise FileNotFoundError(f'config not found: {path}')
    cfg = Config.fromfile(path)
    if options:
        cfg.merge_from_dict(options)
    return cfg


def cmd_test(args):
    from .engine.evaluate import evaluate
    cfg = _load_cfg(args.config, args.cfg_options)
    datasets = args.dataset or cfg.get('datasets')
    if not datasets:
        raise SystemExit('no dataset: pass --dataset NAME (see `ovseg-bench list`)')
    work_dir = Path(args.work_dir or Path('work_dirs') / Path(args.config).stem)
    out = Path(args.out or work_dir / 'results.csv')
    for name in datasets:
        row = evaluate(cfg, name, work_dir / name, data_root=args.data_root,
                       checkpoint=args.checkpoint, results_csv=out)
        extra = ''.join(f'  {k} {row[k]:.2f}' for k in ('mIoU_seen', 'mIoU_unseen', 'hIoU')
                        if k in row)
        print(f'{row["method"]:<12} {name:<16} mIoU {row["mIoU"]:6.2f}  mAcc {row["mAcc"]:6.2f}'
              f'  aAcc {row["aAcc"]:6.2f}{extra}  ({row["images_per_s"]:.1f} img/s)', flush=True)
    print(f'results: {out}  per-class: {out.with_name("per_class.csv")}')


def cmd_train(args):
    from .engine.trainer import train
    s = train(args.config, cfg_options=args.cfg_options, resume=args.resume,
              work_dir=args.work_dir, launcher=args.launcher)
    print(f'trained {s["iters"]} iterations in {s["train_time_s"]:.0f} s, peak memory '
          f'{s["peak_mem_mb"]:.0f} MB; weights in {s["work_dir"]}', flush=True)


def cmd_bench(args):
    from .bench.runner import run_matrix
    failures = run_matrix(args.matrix, only=args.only, force=args.force, out_dir=args.out_dir)
    if not args.no_leaderboard:
        from mmengine.config import Config
        matrix = Config.fromfile(args.matrix)
        out_dir = Path(args.out_dir or matrix.out_dir)
        _leaderboard([out_dir / 'results.csv'], out_dir, pred_root=out_dir / 'eval',
                     data_root=matrix.get('data_root'))
    return 1 if failures else 0


def _leaderboard(csvs, out_dir, pred_root=None, metric='mIoU', data_root=None):
    from .bench.leaderboard import build
    out = build(csvs, out_dir, metric=metric, pred_root=pred_root, data_root=data_root)
    print((out / 'leaderboard.md').read_text())
    print(f'leaderboard: {out}/leaderboard.{{csv,md,png}}, per_class.png, qualitative_*.png')


def cmd_leaderboard(args):
    _leaderboard(args.results, args.out_dir, pred_root=args.pred_root, metric=args.metric,
                 data_root=args.data_root)


def build_parser():
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(prog='ovseg-bench', description=__doc__)
    p.add_argument('--plugin', action='append', default=[],
                   help='import a method plugin from a .py file (repeatable)')
    sub = p.add_subparsers(dest='command', required=True)

    s = sub.add_parser('list', help='registered methods, backbones, datasets')
    s.set_defaults(func=cmd_list)

    s = sub.add_parser('make-synthetic', help='write the synthetic world in the real layouts')
    s.add_argument('--out', default='data/synth')
    s.add_argument('--seed', type=int, default=0)
    s.add_argument('--n-val', type=int, default=100)
    s.add_argument('--n-seg-train', type=int, default=300)
    s.add_argument('--n-caption-train', type=int, default=3000)
    s.add_argument('--n-caption-val', type=int, default=300)
    s.set_defaults(func=cmd_make_synthetic)

    s = sub.add_parser('test', help='evaluate a method config on named datasets')
    s.add_argument('config')
    s.add_argument('--dataset', action='append', help='dataset name (repeatable); '
                   "default: the config's `datasets`")
    s.add_argument('--data-root', help="override the dataset config's root folder")
    s.add_argument('--checkpoint', help='trained head weights (head.pt) for a trained method')
    s.add_argument('--work-dir')
    s.add_argument('--out', help='results CSV (default: WORK_DIR/results.csv)')
    s.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys')
    s.set_defaults(func=cmd_test)

    s = sub.add_parser('train', help='train a method config with the common trainer')
    s.add_argument('config')
    s.add_argument('--work-dir')
    s.add_argument('--resume', action='store_true', help='continue from the latest checkpoint')
    s.add_argument('--launcher', default='none', choices=['none', 'pytorch', 'slurm'])
    s.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys')
    s.set_defaults(func=cmd_train)

    s = sub.add_parser('bench', help='run a benchmark matrix (resumes; writes a leaderboard)')
    s.add_argument('matrix', nargs='?', default='configs/bench/default.py')
    s.add_argument('--only', default='', help='a slice, e.g. method=PACL,dataset=synth_*')
    s.add_argument('--force', action='store_true', help='rerun cells already in the results')
    s.add_argument('--out-dir', help="default: the matrix's out_dir")
    s.add_argument('--no-leaderboard', action='store_true')
    s.set_defaults(func=cmd_bench)

    s = sub.add_parser('leaderboard', help='pivot result CSVs into leaderboard tables/figures')
    s.add_argument('results', nargs='+', help='results.csv files (several runs/machines)')
    s.add_argument('--out-dir', default='work_dirs/leaderboard')
    s.add_argument('--metric', default='mIoU', help='mIoU, mAcc, aAcc, hIoU, ...')
    s.add_argument('--pred-root', help="a bench's eval/ folder, for the qualitative grids")
    s.add_argument('--data-root', help="the datasets' root folder, if not the configs' own")
    s.set_defaults(func=cmd_leaderboard)
    return p


def _user_errors():
    """Exceptions that mean bad input or a failed run the user can act on, not a bug."""
    from .engine.hooks import NonFiniteLossError
    return KeyError, FileNotFoundError, ValueError, NonFiniteLossError


def main(argv=None):
    args = build_parser().parse_args(argv)
    from .registry import load_plugin_file, load_plugins
    load_plugins()
    for path in args.plugin:
        load_plugin_file(path)
    try:
        return args.func(args) or 0
    except _user_errors() as e:
        # Bad input or a diverged run: one clear line, no traceback (OVSEG_DEBUG=1 shows it).
        import os
        if os.environ.get('OVSEG_DEBUG'):
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f'ovseg-bench: error: {msg}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
