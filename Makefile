# All set-up happens here: a fresh machine needs only python3, make and apt-get.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
CONFIG  ?= configs/default.yaml
JOBS    ?= 2

.PHONY: setup flow test test-slow bench verilog clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU wheel first: with it installed no dependency can pull a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	@command -v iverilog >/dev/null || { (apt-get update -qq && apt-get install -y -qq iverilog) || \
	  { echo "error: Icarus Verilog (iverilog) is missing and apt-get could not install it" >&2; exit 1; }; }
	touch $@

flow: setup
	$(VENV)/bin/edgecodec flow --config $(CONFIG)

test: setup
	$(PY) -m pytest -q -m "not slow"

test-slow: setup
	$(PY) -m pytest -q -m slow

bench: setup
	$(PY) bench/cell_bench.py --config $(CONFIG)

verilog: setup
	$(VENV)/bin/edgecodec verilog --config $(CONFIG)

clean:
	rm -rf build
