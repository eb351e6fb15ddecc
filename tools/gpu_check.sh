#!/usr/bin/env bash
# The one-command GPU check (docs/speed.md): ViT-B/16 dense-forward MFU in bf16 at batch 64
# (eager and compiled), SCLIP evaluation of 1449 synthetic 500x375 images batched vs the
# batch-1 fp32 per-window loop, and DDP evaluation on every visible GPU; random weights.
# Writes work_dirs/gpu_check/gpu_report.md; extra arguments go to `ovseg-bench speed`
# (e.g. --peak-tflops 989 for a device the peak table does not know).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
[ -x "$python" ] || python=python3
exec "$python" -m ovseg_bench.cli speed --gpu-report --device cuda --compile \
    --out work_dirs/gpu_check "$@"
