"""Training and evaluation glue on mmengine: the common trainer (``trainer``), its hooks
(``hooks``), zero-shot classification (``zeroshot``), the evaluator (``evaluate``), the
metric (``metrics``) and what both kinds of run share (``runtime``: the CPU process group,
peak memory). Submodules are imported on use, so importing this package is cheap."""
