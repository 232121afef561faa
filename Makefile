# The two set-up commands of the README: `make lab` (the main job) and `make test`.
PYTHON ?= python3
PORT ?= 8888

.PHONY: lab test install install-test system-deps

install:
	$(PYTHON) -m pip install --quiet -e ".[notebook]"

install-test:
	$(PYTHON) -m pip install --quiet -e ".[test]"

# Debian's chromium for the real-browser test (Playwright never downloads a browser here), and
# the real programs the write-tracking tests run under injection.
SYSTEM_DEPS = chromium sqlite3 redis-server redis-tools gcc
system-deps:
	@missing=$$(for p in $(SYSTEM_DEPS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

lab: install
	$(PYTHON) -m jupyter lab --no-browser --allow-root --ip=127.0.0.1 --port=$(PORT) \
	  --ServerApp.root_dir=notebooks

test: install-test system-deps
	$(PYTHON) -m ruff check pmviz tests benchmarks sample_data
	$(PYTHON) -m mypy pmviz
	$(PYTHON) -m pytest -q
