# Everything a fresh Debian/Ubuntu machine needs: `make run`, `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SYSTEM_PACKAGES := docker.io docker-registry busybox-static
# Qt's xcb/offscreen plugins need these shared libraries even when nothing is shown.
QT_PACKAGES := libgl1 libegl1 libxkbcommon0 libfontconfig1 libdbus-1-3 libglib2.0-0

.PHONY: run run-cli test bench bench-window package system-deps venv clean

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES) $(QT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

# The window on the demo project (needs a desktop session; see run-cli for a terminal).
run: system-deps venv
	$(PY) -m gui.devservices run -- $(PY) -m gui resources/demo/dockpool.toml --registry {registry}

run-cli: system-deps venv
	$(PY) -m gui.devservices run -- $(PY) -m gui run resources/demo/dockpool.toml --registry {registry}

test: system-deps venv
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest

bench: system-deps venv
	$(PY) -m gui.devservices run -- $(PY) tests/bench/pipeline_bench.py --registry {registry}

bench-window: system-deps venv
	QT_QPA_PLATFORM=offscreen $(PY) -m gui.devservices run -- $(PY) tests/bench/window_bench.py --registry {registry}

# The one-folder bundle in dist/Dockpool (Dockpool = window, dockpool = CLI).
package: venv
	$(PY) -m pip install -q -e '.[package]'
	$(VENV)/bin/pyinstaller --noconfirm --clean --distpath dist --workpath build/pyinstaller \
	  packaging/dockpool.spec

clean:
	rm -rf $(VENV) build dist *.egg-info
