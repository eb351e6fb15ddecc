# Two commands do everything: `make bench` and `make test`. Both install first when needed.
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
UV      := $(PY) -m uv
WHEELS  ?= $(HOME)/.cache/ovseg_bench/wheels
STAMP   := $(VENV)/.installed
# Byte-compiled at install: where PYTHONDONTWRITEBYTECODE is set (as on these machines) every
# process would otherwise recompile torch/mmseg/transformers from source (~40 s per import).
UVPIP   := $(UV) pip install -q --compile-bytecode --python $(VPY)
# The verified stack (../shared/DESIGN.md, section 2). torch/torchvision are the registry's CUDA
# builds: they run on CPU, and the CPU-only torch wheel breaks the registry's torchvision.
STACK   := torch==2.13.0 torchvision==0.28.0 mmengine==0.10.7 mmsegmentation==1.2.2 \
           open_clip_torch==3.3.0 transformers pycocotools pytest scikit-image matplotlib \
           ftfy regex "setuptools<80" wheel ninja
MMCV    := mmcv==2.1.0

.PHONY: install test bench clean-venv
install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml Makefile
	$(PY) -m pip install -q --disable-pip-version-check uv
	$(UV) venv -q --allow-existing --seed --python $(PY) $(VENV)
	$(UVPIP) $(STACK)
	@# mmcv 2.1.0 with its ops has no wheel for this torch: build it once, then reuse the wheel.
	@if ! ls $(WHEELS)/mmcv-2.1.0-*.whl >/dev/null 2>&1; then \
	  echo "building mmcv 2.1.0 with ops (once, ~7 min on 2 cores; cached in $(WHEELS))"; \
	  mkdir -p $(WHEELS) && CUDA_VISIBLE_DEVICES= MMCV_WITH_OPS=1 MAX_JOBS=$$(nproc) \
	  $(VPY) -m pip wheel -q --no-deps --no-build-isolation -w $(WHEELS) $(MMCV) || exit 1; \
	fi
	$(UVPIP) --no-deps $(WHEELS)/mmcv-2.1.0-*.whl
	$(UVPIP) addict yapf "opencv-python-headless" -e .
	@touch $(STAMP)

test: install
	$(VPY) -m pytest -q tests

bench: install
	$(VPY) -m ovseg_bench.cli bench

clean-venv:
	rm -rf $(VENV)
