"""``ovseg-bench``: thin subcommands over the library (see ``ovseg-bench -h``).

Each subcommand is a few lines that call one library function, next to its arguments in
:func:`build_parser`; with ~15 subcommands that is over 400 lines, kept in one module so the
whole command line reads in one place."""
import argparse
import os
import re
import sys
from pathlib import Path


def cmd_list(args):
    from .data.catalog import describe_datasets
    from .registry import BACKBONES, METHODS, describe, method_info
    from .text import TEMPLATES, vocabulary_names
    methods = {}
    for name, doc in describe(METHODS).items():
        info = method_info(name)
        kind = 'trainable' if info.trainable else 'training-free'
        methods[name] = f'{info.setting:<10}  {kind:<13}  {doc}'
    sections = [('methods', methods), ('backbones', describe(BACKBONES)),
                ('datasets', describe_datasets())]
    for title, entries in sections:
        print(f'{title}:')
        width = max(map(len, entries), default=0)
        for name, text in entries.items():
            print(f'  {name:<{width}}  {text}')
    print('templates:\n  ' + ', '.join(f'{k} ({len(v)})' for k, v in TEMPLATES.items()))
    print('vocabularies:\n  ' + ', '.join(vocabulary_names()))


def _width_height(value, flag):
    """``'500x375'`` -> ``(500, 375)``; ``ValueError`` naming ``flag`` otherwise."""
    parts = value.lower().split('x')
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f'{flag} must be WIDTHxHEIGHT, e.g. 500x375; got {value!r}')
    return tuple(map(int, parts))


def cmd_check(args):
    from .contract import contract_config, run_checks
    from .data.catalog import load_dataset_cfg
    cfg = contract_config(args.config)
    dataset = args.dataset or (cfg.get('datasets') or [None])[0]
    if not dataset:
        raise KeyError(f'config {args.config} names no `datasets`; pass --dataset NAME')
    load_dataset_cfg(dataset)           # an unknown name fails before any check runs
    work_dir = Path(args.work_dir or Path('work_dirs') / 'check' / Path(args.config).stem)
    print(f'checking {cfg.method.type} ({args.config}) on random weights, evaluated on '
          f'{dataset}')
    failed = run_checks(cfg, dataset, work_dir, data_root=args.data_root,
                        report=lambda line: print(' ', line, flush=True))
    print(f'{cfg.method.type}: ' + (f'{failed} check(s) failed' if failed else
                                     'meets the plugin contract'))
    return 1 if failed else 0


def cmd_make_synthetic(args):
    from .data.synthetic import make_synthetic
    size = _width_height(args.size, '--size')
    make_synthetic(args.out, seed=args.seed, n_val=args.n_val, n_seg_train=args.n_seg_train,
                   n_caption_train=args.n_caption_train, n_caption_val=args.n_caption_val,
                   size=size, layouts=args.layouts.split(','))


def cmd_prepare(args):
    from .data.prepare import main_prepare
    return main_prepare(args.dataset, args.src, args.out, splits=args.split, force=args.force)


def cmd_check_data(args):
    from .data.check_data import main_check_data
    return main_check_data(args.data_root, args.dataset, strict=args.strict, sample=args.sample)


def cmd_test(args):
    from mmengine.dist import is_main_process

    from .bench.record import evaluate_row
    from .bench.results import json_dir
    from .config import load_config
    from .engine.evaluate import untrained_row
    cfg = load_config(args.config, args.cfg_options)
    datasets = args.dataset or cfg.get('datasets')
    if not datasets:
        raise SystemExit('no dataset: pass --dataset NAME (see `ovseg-bench list`)')
    if untrained_row(cfg, checkpoint=args.checkpoint):
        print(f'note: {args.config} trains {cfg.method.type}, but no --checkpoint was given: '
              f'evaluating the untrained head (its rows have train_data=none)', file=sys.stderr)
    work_dir = Path(args.work_dir or Path('work_dirs') / Path(args.config).stem)
    out = Path(args.out or work_dir / 'results.csv')
    for name in datasets:
        # Under a launcher every rank scores its share of the images; rank 0 writes the row.
        row = evaluate_row(cfg, name, work_dir / name, results_csv=out,
                           data_root=args.data_root, checkpoint=args.checkpoint,
                           save_pred=args.save_pred, launcher=args.launcher)
        if not is_main_process():
            continue
        extra = ''.join(f'  {k} {row[k]:.2f}' for k in ('mIoU_seen', 'mIoU_unseen', 'hIoU')
                        if k in row)
        print(f'{row["method"]:<12} {name:<16} mIoU {row["mIoU"]:6.2f}  mAcc {row["mAcc"]:6.2f}'
              f'  aAcc {row["aAcc"]:6.2f}{extra}  ({row["images_per_s"]:.1f} img/s)', flush=True)
    if _end_process_group() == 0:
        print(f'results: {out}  per-class: {out.with_name("per_class.csv")}  per-run JSON: '
              f'{json_dir(out)}/')


def _end_process_group():
    """This process's rank (0 when not distributed). Under ``torchrun`` every rank waits for
    the others, then closes its process group: a rank leaving with gloo's threads still
    running aborts ("terminate called without an active exception") and fails the launch."""
    import torch.distributed as dist
    if not dist.is_initialized():
        return 0
    rank = dist.get_rank()
    dist.barrier()
    dist.destroy_process_group()
    return rank


def cmd_train(args):
    from .engine.trainer import train
    s = train(args.config, cfg_options=args.cfg_options, resume=args.resume,
              work_dir=args.work_dir, launcher=args.launcher)
    if _end_process_group() > 0:
        return
    print(f'trained {s["iters"]} iterations in {s["train_time_s"]:.0f} s, peak memory '
          f'{s["peak_mem_mb"]:.0f} MB; weights in {s["work_dir"]}', flush=True)


def cmd_bench(args):
    from .bench.runner import run_matrix
    failures = run_matrix(args.matrix, only=args.only, force=args.force, out_dir=args.out_dir,
                          dry_run=args.dry_run, shard=args.shard)
    if args.shard and not args.dry_run:
        print('one shard of the matrix: once every shard is done, `ovseg-bench leaderboard '
              'OUT_DIR/results.csv --out-dir OUT_DIR` makes the leaderboard')
    elif not (args.no_leaderboard or args.dry_run):
        from .config import read_config_file
        matrix = read_config_file(args.matrix)
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


def _csv_list(values):
    """``['a,b', 'c']`` -> ``['a', 'b', 'c']`` (options given with commas or repeated)."""
    return [v for value in values or () for v in str(value).split(',') if v]


def _gpu_report(args):
    from .bench.speed.gpu_report import run_gpu_report
    backbones = _csv_list(args.backbones) or ['vit-b16']
    sizes = _csv_list(args.sizes) or ['224']
    if len(backbones) > 1 or len(sizes) > 1:
        raise ValueError(f'--gpu-report measures one backbone at one size; got --backbones '
                         f'{",".join(backbones)} --sizes {",".join(sizes)}')
    return run_gpu_report(
        out=args.out, device=args.device, backbone=backbones[0], batch=args.batch or 64,
        size=int(sizes[0]), warmup=5 if args.warmup is None else args.warmup,
        reps=args.reps or 20, peak_tflops=args.peak_tflops, compile_model=args.compile,
        n_images=args.eval_images, image_size=_width_height(args.eval_size, '--eval-size'),
        eval_batch=args.eval_batch, workers=args.eval_workers, ddp_procs=args.ddp_procs,
        data_root=args.data_root)


def cmd_speed(args):
    if args.gpu_report:
        return _gpu_report(args)
    from .bench.speed.run import run_speed
    failures = run_speed(
        methods=_csv_list(args.methods) or None,
        backbones=_csv_list(args.backbones) or ['tiny', 'vit-b16'],
        sizes=[int(s) for s in _csv_list(args.sizes) or ['224']], device=args.device,
        out=args.out, modes=_csv_list(args.modes),
        warmup=1 if args.warmup is None else args.warmup, reps=args.reps or 2,
        batch=args.batch,
        train_batch=args.train_batch, classes=args.classes, crop=args.crop,
        stride=args.stride, compare=args.compare,
        precisions=_csv_list(args.precision) or None, compile_model=args.compile,
        text_vocabulary=None if args.text_vocabulary == 'none' else args.text_vocabulary,
        text_templates=args.text_templates,
        dataset=None if args.dataset == 'none' else args.dataset, data_root=args.data_root,
        threads=args.threads)
    return 1 if failures else 0


VERBOSE_HELP = ("stream every run's full mmengine log (environment, config, each logged "
                "iteration); always in the run's work dir")


def _verbose_flag(parser):
    """``-v`` after the subcommand too (``ovseg-bench bench -v``)."""
    parser.add_argument('-v', '--verbose', action='store_true', default=argparse.SUPPRESS,
                        help=VERBOSE_HELP)


def build_parser():
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(prog='ovseg-bench', description=__doc__)
    p.add_argument('--debug', action='store_true',
                   help='show the full traceback of an error (also: OVSEG_DEBUG=1)')
    p.add_argument('--plugin', action='append', default=[],
                   help='import a method plugin from a .py file (repeatable)')
    p.add_argument('-v', '--verbose', action='store_true', help=VERBOSE_HELP)
    sub = p.add_subparsers(dest='command', required=True)

    s = sub.add_parser('list', help='registered methods, backbones, datasets')
    s.set_defaults(func=cmd_list)

    s = sub.add_parser('check', help='run the plugin contract checks on a method config '
                       '(docs/plugin_contract.md); exit 1 if one fails')
    s.add_argument('config', help='a method config (anywhere; load a plugin file with '
                   '--plugin before the subcommand)')
    s.add_argument('--dataset', help="evaluated end to end (default: the config's first)")
    s.add_argument('--data-root', help="the dataset's root folder, if not its config's own")
    s.add_argument('--work-dir', help='default: work_dirs/check/<config name>')
    s.set_defaults(func=cmd_check)

    s = sub.add_parser('make-synthetic', help='write the synthetic world in the real layouts')
    s.add_argument('--out', default='data/synth')
    s.add_argument('--seed', type=int, default=0)
    s.add_argument('--n-val', type=int, default=100)
    s.add_argument('--n-seg-train', type=int, default=300)
    s.add_argument('--n-caption-train', type=int, default=3000)
    s.add_argument('--n-caption-val', type=int, default=300)
    s.add_argument('--size', default='128x96', help='WIDTHxHEIGHT of every image (500x375: '
                   "VOC's typical size)")
    s.add_argument('--layouts', default='voc,context,coco_stuff,ade,captions',
                   help='comma-separated subset of the layouts to write')
    s.set_defaults(func=cmd_make_synthetic)

    s = sub.add_parser('prepare', help='convert an official dataset download to the layout '
                       'the dataset configs read (docs/datasets/)')
    s.add_argument('dataset', help='voc, context, coco-stuff, coco-object, ade20k, cityscapes, '
                   'context459 or ade847 (or a dataset config name: voc21, context59, ...)')
    s.add_argument('--src', required=True, help='folder of the extracted official download')
    s.add_argument('--out', required=True, help='data root (the configs read data/)')
    s.add_argument('--split', action='append', choices=['train', 'val'],
                   help='repeatable; default: every split the raw files have')
    s.add_argument('--force', action='store_true', help='redo outputs already up to date')
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser('check-data', help='validate a prepared data root (exit 1 on problems)')
    s.add_argument('data_root')
    s.add_argument('--dataset', action='append', help='voc, context, coco-stuff, coco-object, '
                   'ade20k (repeatable); default: every dataset found')
    s.add_argument('--strict', action='store_true',
                   help='count mismatches with the official splits are errors')
    s.add_argument('--sample', type=int, metavar='N', help='read N masks per split, not all')
    s.set_defaults(func=cmd_check_data)

    s = sub.add_parser('test', help='evaluate a method config on named datasets')
    s.add_argument('config')
    s.add_argument('--dataset', action='append', help='dataset name (repeatable); '
                   "default: the config's `datasets`")
    s.add_argument('--data-root', help="override the dataset config's root folder")
    s.add_argument('--checkpoint', help='trained head weights (head.pt) for a trained method')
    s.add_argument('--work-dir')
    s.add_argument('--out', help='results CSV (default: WORK_DIR/results.csv)')
    s.add_argument('--save-pred', metavar='DIR',
                   help="write every prediction as a label PNG (the dataset's class indices, "
                        "uint8; 255 is never predicted) to DIR/<dataset>/<image stem>.png")
    s.add_argument('--launcher', default='none', choices=['none', 'pytorch', 'slurm'],
                   help='under torchrun (pytorch) or srun (slurm): the ranks share the images, '
                   'rank 0 writes the rows')
    s.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys')
    _verbose_flag(s)
    s.set_defaults(func=cmd_test)

    s = sub.add_parser('train', help='train a method config with the common trainer')
    s.add_argument('config')
    s.add_argument('--work-dir')
    s.add_argument('--resume', action='store_true', help='continue from the latest checkpoint')
    s.add_argument('--launcher', default='none', choices=['none', 'pytorch', 'slurm'])
    s.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys')
    _verbose_flag(s)
    s.set_defaults(func=cmd_train)

    s = sub.add_parser('bench', help='run a benchmark matrix (resumes; writes a leaderboard)')
    s.add_argument('matrix', nargs='?', default='configs/bench/default.py')
    s.add_argument('--only', default='', help='a slice, e.g. method=PACL,dataset=synth_*')
    s.add_argument('--force', action='store_true', help='rerun cells already in the results')
    s.add_argument('--out-dir', help="default: the matrix's out_dir")
    s.add_argument('--no-leaderboard', action='store_true')
    s.add_argument('--dry-run', action='store_true',
                   help='print the cells still to run (and which need training), run nothing')
    s.add_argument('--shard', metavar='K/N', help='run the K-th of N deterministic parts of '
                   'the matrix (a training and its cells stay together), e.g. from a Slurm '
                   'job array; shards share results.csv safely; no leaderboard')
    _verbose_flag(s)
    s.set_defaults(func=cmd_bench)

    s = sub.add_parser('leaderboard', help='pivot result CSVs into leaderboard tables/figures')
    s.add_argument('results', nargs='+', help='results.csv files, or per-run JSON files or '
                   'folders (results/ beside a results.csv); several runs, machines or shards')
    s.add_argument('--out-dir', default='work_dirs/leaderboard')
    s.add_argument('--metric', default='mIoU', help='mIoU, mAcc, aAcc, hIoU, ...')
    s.add_argument('--pred-root', help="a bench's eval/ folder, for the qualitative grids")
    s.add_argument('--data-root', help="the datasets' root folder, if not the configs' own")
    s.set_defaults(func=cmd_leaderboard)

    s = sub.add_parser('speed', help='images/s, FLOPs, memory of every method x backbone x '
                       'size (random weights; docs/speed.md)')
    s.add_argument('--methods', nargs='+', help='default: every registered method')
    s.add_argument('--backbones', nargs='+', help='tiny, vit-b16, vit-l14 or any open_clip '
                   'model name (default: tiny,vit-b16; --gpu-report: vit-b16)')
    s.add_argument('--sizes', nargs='+', help='square input sizes, px (default: 224)')
    s.add_argument('--device', choices=['cpu', 'cuda'], help='default: cuda if available')
    s.add_argument('--out', default='work_dirs/speed', help='speed.csv, speed.md and '
                   'speed.png go here (rows are added; a rerun of a cell replaces its row)')
    s.add_argument('--modes', nargs='+', default=['whole,slide,train'],
                   help='whole, slide and/or train')
    s.add_argument('--warmup', type=int, help='untimed calls per measurement (default: 1; '
                   '--gpu-report: 5)')
    s.add_argument('--reps', type=int, help='timed calls per measurement (default: 2; '
                   '--gpu-report: 20)')
    s.add_argument('--batch', type=int, help='images per inference call (default: 1 on '
                   'CPU, 16 on CUDA; --gpu-report: 64)')
    s.add_argument('--train-batch', type=int, help='samples per training step (default: 2 '
                   'on CPU, 16 on CUDA)')
    s.add_argument('--classes', type=int, default=21, help='class embeddings at inference')
    s.add_argument('--crop', type=int, help='slide window (default: half the size)')
    s.add_argument('--stride', type=int, help='slide stride (default: half the window)')
    s.add_argument('--no-compare', dest='compare', action='store_false',
                   help='skip the naive paths (per-window slide, matmul attention, text '
                   'without cache)')
    s.add_argument('--precision', nargs='+', help='fp32 and/or bf16 (default: fp32 on CPU, '
                   'both on CUDA)')
    s.add_argument('--compile', action='store_true',
                   help='also time torch.compile(predict_dense) (--gpu-report: of the '
                   'backbone\'s forward_dense); slow to compile on CPU')
    s.add_argument('--text-vocabulary', default='synth_voc',
                   help="first vs cached class embeddings of this vocabulary ('none': skip)")
    s.add_argument('--text-templates', default='single', help='single or imagenet80')
    s.add_argument('--dataset', default='synth_voc',
                   help="evaluation data loading with 0 and 2 workers ('none': skip; skipped "
                   'when the data is absent)')
    s.add_argument('--data-root', help="the dataset's root folder, if not the config's own")
    s.add_argument('--threads', type=int, help="torch CPU threads (default: torch's, one per "
                   'core); recorded in the device column')
    g = s.add_argument_group('the one-command GPU check (tools/gpu_check.sh; docs/speed.md)')
    g.add_argument('--gpu-report', action='store_true', help='MFU of the backbone\'s bf16 '
                   'dense forward, evaluation throughput batched vs per-window, DDP rows: '
                   'OUT/gpu_report.md')
    g.add_argument('--peak-tflops', type=float, help='the device\'s dense bf16 peak for '
                   'MFU (default: by device name; none on CPU)')
    g.add_argument('--eval-images', type=int, default=1449, help='synthetic evaluation '
                   'images (default: VOC val\'s 1449)')
    g.add_argument('--eval-size', default='500x375', help='their WIDTHxHEIGHT')
    g.add_argument('--eval-batch', type=int, help='images per evaluation batch (default: 16 '
                   'on CUDA, 2 on CPU)')
    g.add_argument('--eval-workers', type=int, help='DataLoader workers (default: 8 or the '
                   'cores, if fewer)')
    g.add_argument('--ddp-procs', type=int, help='processes of the DDP row (default: the '
                   'visible GPUs; under 2: skipped)')
    s.set_defaults(func=cmd_speed)
    return p


def _user_errors():
    """Exceptions that mean bad input or a failed run the user can act on, not a bug: files
    (missing, unreadable, not writable), bad values and names, unsafe or damaged checkpoints,
    a diverged training."""
    from .engine.hooks import NonFiniteLossError
    return KeyError, OSError, ValueError, NonFiniteLossError


def one_line(err):
    """The message of a user error, for one line: a KeyError's own text (not its repr), and
    of an error raised in a DataLoader worker (which carries the worker's whole traceback)
    only the original message."""
    text = str(err.args[0] if isinstance(err, KeyError) and err.args else err)
    if 'Original Traceback' in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        text = re.sub(r'^[\w.]+(Error|Exception)[\w]*: ', '', last.strip()).strip('"\'')
    return text


def main(argv=None):
    args = build_parser().parse_args(argv)
    debug = args.debug or bool(os.environ.get('OVSEG_DEBUG'))
    try:
        from .console import configure
        configure(args.verbose)
        from .registry import freeze_imports, load_plugin_file, load_plugins
        load_plugins()
        for path in args.plugin:
            load_plugin_file(path)
        freeze_imports()
        return args.func(args) or 0
    except _user_errors() as e:
        # The one place that turns bad input into one line and exit code 2 (--debug: raise).
        if debug:
            raise
        print(f'ovseg-bench: error: {one_line(e)}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        print('ovseg-bench: interrupted (finished rows and checkpoints are kept; rerun to '
              'resume)', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
