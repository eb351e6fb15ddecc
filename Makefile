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
# BUILD_STACK is what the mmcv build needs; the rest installs while mmcv compiles.
BUILD_STACK := torch==2.13.0 torchvision==0.28.0 "setuptools<80" wheel ninja
STACK   := mmengine==0.10.7 mmsegmentation==1.2.2 open_clip_torch==3.3.0 transformers \
           pycocotools pytest scikit-image matplotlib ftfy regex addict yapf \
           opencv-python-headless tqdm
MMCV    := mmcv==2.1.0
# mmcv 2.1.0 with its ops has no wheel for this torch: it is built once (CPU ops only), then the
# wheel is reused. CFLAGS replaces Python's default flags (-DNDEBUG -fwrapv -g -O3 -Wall),
# which spend most of the compile on debug info: without it (and at -O2) its 77 files compile
# in less than half the time (docs/measurements.md, "Install").
# tests/test_stack.py checks the built ops against plain PyTorch.
MMCV_CFLAGS := -DNDEBUG -fwrapv -O2 -g0
MMCV_LOG    := $(WHEELS)/mmcv-build.log

.PHONY: install test bench clean-venv
install: $(STAMP)

$(STAMP): setup.cfg setup.py pyproject.toml Makefile
	$(PY) -m pip install -q --disable-pip-version-check uv
	$(UV) venv -q --allow-existing --seed --python $(PY) $(VENV)
	$(UVPIP) $(BUILD_STACK)
	@set -e; build=; \
	if ! ls $(WHEELS)/mmcv-2.1.0-*.whl >/dev/null 2>&1; then \
	  mkdir -p $(WHEELS); \
	  echo "building mmcv 2.1.0 with its CPU ops in the background (once: ~4 min on 2 cores;" \
	       "cached in $(WHEELS); log: $(MMCV_LOG))"; \
	  CUDA_VISIBLE_DEVICES= MMCV_WITH_OPS=1 MAX_JOBS=$$(nproc) CFLAGS="$(MMCV_CFLAGS)" \
	    $(VPY) -m pip wheel -v --no-cache-dir --no-deps --no-build-isolation -w $(WHEELS) $(MMCV) \
	    > $(MMCV_LOG) 2>&1 & build=$$!; \
	fi; \
	echo "installing the rest of the stack"; \
	$(UVPIP) $(STACK); \
	if [ -n "$$build" ]; then \
	  while kill -0 $$build 2>/dev/null; do \
	    sleep 20; step=$$(grep -o '\[[0-9]*/[0-9]*\]' $(MMCV_LOG) | tail -n 1); \
	    echo "  mmcv: $${step:-preparing the build} $${step:+files compiled}"; \
	  done; \
	  if ! wait $$build; then \
	    grep -m 10 -E 'error:|Error|No space' $(MMCV_LOG) || tail -n 25 $(MMCV_LOG); \
	    echo "mmcv build failed (full log: $(MMCV_LOG)). Fix the cause above, then run" \
	         "'make install' again: the rest of the stack is kept."; \
	    exit 1; \
	  fi; \
	fi
	$(UVPIP) --no-deps $(WHEELS)/mmcv-2.1.0-*.whl
	$(UVPIP) -e .
	@touch $(STAMP)

test: install
	$(VPY) -m pytest -q tests

bench: install
	$(VPY) -m ovseg_bench.cli bench

clean-venv:
	rm -rf $(VENV)
