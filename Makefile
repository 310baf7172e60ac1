# All set-up happens here: a fresh machine needs only python3, make and apt-get.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
CONFIG  ?= configs/default.yaml
JOBS    ?= 2
FINN      := finn-plus==1.6.1
FINN_DEPS := "rich>=13.9.4,<14" pydantic scipy

.PHONY: setup flow test test-slow bench verilog clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU wheel first: with it installed no dependency can pull a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	# FINN (finn-plus) pins old brevitas/onnx: install it without its dependency pins (see docs/finn.md).
	$(PY) -m pip install -q --no-deps $(FINN)
	$(PY) -m pip install -q $(FINN_DEPS)
	@missing=""; command -v iverilog >/dev/null || missing="$$missing iverilog"; \
	  command -v chromium >/dev/null || missing="$$missing chromium"; \
	  command -v ffmpeg >/dev/null || missing="$$missing ffmpeg"; \
	  if [ -n "$$missing" ]; then (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) \
	    || { echo "error:$$missing missing and apt-get could not install it (Icarus Verilog; Chromium for the report test; ffmpeg for the codec baselines)" >&2; exit 1; }; fi
	touch $@

flow: setup
	$(VENV)/bin/edgecodec flow --config $(CONFIG)

test: setup
	$(PY) -m pytest -q -m "not slow" -n $(JOBS) --dist loadfile --durations=15

test-slow: setup
	$(PY) -m pytest -q -m slow --durations=15

bench: setup
	$(PY) bench/cell_bench.py --config $(CONFIG)
	$(PY) bench/impl_bench.py --config $(CONFIG)
	$(PY) bench/codec_bench.py --config $(CONFIG)
	$(PY) bench/stae_bench.py --config $(CONFIG)
	$(PY) bench/entropy_bench.py

verilog: setup
	$(VENV)/bin/edgecodec verilog --config $(CONFIG)

clean:
	rm -rf build
