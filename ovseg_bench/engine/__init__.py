"""Training and evaluation glue on mmengine: the common trainer (``trainer``), its hooks
(``hooks``), zero-shot classification (``zeroshot``), the evaluator (``evaluate``) and the
metric (``metrics``). Submodules are imported on use, so importing this package is cheap."""
