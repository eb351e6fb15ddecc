"""``ovseg-bench speed``: throughput, FLOPs and memory of every method on every backbone
(random weights, synthetic inputs; ``docs/speed.md``), and the one-command GPU check.

Modules, each one job: :mod:`.flops` (FLOP counting and the devices' peaks), :mod:`.measure`
(timing, peak memory, other processes' load), :mod:`.inputs` (methods on random backbones,
synthetic images and training batches), :mod:`.train_step` (the trainer's own optimiser
step), :mod:`.run` (the ``speed`` command: the measurements and their rows), :mod:`.report`
(``speed.csv``'s columns, its table and plot), :mod:`.gpu_check` (what the one-command GPU
check measures) and :mod:`.gpu_report` (its report, ``speed --gpu-report``).
"""
