# The two set-up commands of the README: `make lab` (the main job) and `make test`.
PYTHON ?= python3
PORT ?= 8888

.PHONY: lab test install install-test chromium

install:
	$(PYTHON) -m pip install --quiet -e ".[notebook]"

install-test:
	$(PYTHON) -m pip install --quiet -e ".[test]"

# Debian's chromium for the real-browser test (Playwright never downloads a browser here).
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

lab: install
	$(PYTHON) -m jupyter lab --no-browser --allow-root --ip=127.0.0.1 --port=$(PORT) \
	  --ServerApp.root_dir=notebooks

test: install-test chromium
	$(PYTHON) -m ruff check pmviz tests benchmarks sample_data
	$(PYTHON) -m mypy pmviz
	$(PYTHON) -m pytest -q
