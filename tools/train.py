#!/usr/bin/env python
"""Train a method config with the common trainer (same as ``ovseg-bench train``).

    python tools/train.py configs/clip/clip_tiny_synth.py [--resume] [--work-dir D]
        [--cfg-options train.iters=100 ...] [--launcher pytorch]
    torchrun --nproc_per_node=2 tools/train.py CONFIG --launcher pytorch
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ovseg_bench.cli import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main(['train', *sys.argv[1:]]))
