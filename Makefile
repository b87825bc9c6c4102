# Everything a fresh Debian/Ubuntu machine needs: `make run`, `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# docker-compose: the benchmark compares Dockpool with `docker-compose build --parallel` + push.
# openssh-client: the BuildKit tests give a build step a real ssh-agent and key.
# containerd: the tests export images with its ctr, as the containerd image store does.
# locales: the tests compile a Windows code page's locale (GBK, cp936) with its localedef data.
SYSTEM_PACKAGES := docker.io containerd docker-registry busybox-static docker-compose openssh-client locales
# Qt's offscreen plugin needs these shared libraries even when nothing is shown...
QT_PACKAGES := libgl1 libegl1 libxkbcommon0 libfontconfig1 libdbus-1-3 libglib2.0-0
# ...and its xcb plugin (a real desktop) these; Xvfb runs the window on real xcb in the tests.
XCB_PACKAGES := libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 \
	libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0 xvfb xauth

.PHONY: run run-cli test bench bench-push bench-large-push bench-tls bench-cli-start bench-memory bench-window package system-deps venv clean

# A failed `apt-get update` (one unreachable index) must not stop an install whose
# packages the existing indexes already have.
system-deps:
	@missing=$$(packaging/linux/missing-packages.sh $(SYSTEM_PACKAGES) $(QT_PACKAGES) $(XCB_PACKAGES)); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  $(SUDO) apt-get update -qq || echo "apt-get update failed; installing from the indexes at hand"; \
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

# Then the engine's process handling and the direct push's files once more as on Windows:
# workers started by spawn (the fork server is the default on Linux and macOS), and no
# process may delete, rename or replace a file that one holds open (tests/windows_files).
WINDOWS_TESTS := twelve_images or worker_killed or cancel_stops or dead_idle or forty_builders or lowering_limits \
	or stall_held_open or below_the_callers or engine_gone or second_run or windows_file_rules
test: system-deps venv
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest
	DOCKPOOL_START_METHOD=spawn DOCKPOOL_WINDOWS_FILES=1 PYTHONPATH=$(CURDIR)/tests/windows_files $(PY) -m pytest -q \
	  tests/test_pipeline.py tests/test_direct_push.py tests/test_windows_files.py -k "$(WINDOWS_TESTS)"

bench: system-deps venv
	$(PY) -m gui.devservices run -- $(PY) tests/bench/pipeline_bench.py --registry {registry} $(BENCH_ARGS)

bench-push: system-deps venv
	$(PY) -m gui.devservices run -- $(PY) tests/bench/push_bench.py $(BENCH_ARGS)

bench-large-push: system-deps venv
	$(PY) -m gui.devservices run -- $(PY) tests/bench/large_push_bench.py $(BENCH_ARGS)

bench-tls: system-deps venv
	$(PY) -m gui.devservices run -- $(PY) tests/bench/tls_bench.py $(BENCH_ARGS)

bench-cli-start: system-deps venv
	$(PY) -m gui.devservices run -- $(PY) tests/bench/cli_start.py --registry {registry} $(BENCH_ARGS)

bench-memory: system-deps venv
	$(PY) -m gui.devservices run -- $(PY) tests/bench/memory_bench.py --registry {registry}

bench-window: system-deps venv
	QT_QPA_PLATFORM=offscreen $(PY) -m gui.devservices run -- $(PY) tests/bench/window_bench.py --registry {registry}

# The one-folder bundle in dist/Dockpool (Dockpool = window, dockpool = CLI).
package: venv
	$(PY) -m pip install -q -e '.[package]'
	$(VENV)/bin/pyinstaller --noconfirm --clean --distpath dist --workpath build/pyinstaller \
	  packaging/dockpool.spec

clean:
	rm -rf $(VENV) build dist *.egg-info
