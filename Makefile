# The two set-up commands of the README: `make lab` (the main job) and `make test`.
PYTHON ?= python3
PORT ?= 8888

.PHONY: lab test install install-test kernelspec system-deps

install:
	$(PYTHON) -m pip install --quiet -e ".[notebook]"
	@$(MAKE) --no-print-directory kernelspec PYTHON="$(PYTHON)"

install-test:
	$(PYTHON) -m pip install --quiet -e ".[test]"
	@$(MAKE) --no-print-directory kernelspec PYTHON="$(PYTHON)"

# A Jupyter kernel of *this* environment, named for pmviz: the notebooks select it (and the
# tests run it), so JupyterLab never runs them in whatever `python3` kernelspec the user has
# registered elsewhere (a stale one in ~/.local is searched before this environment's).
kernelspec:
	$(PYTHON) -m ipykernel install --sys-prefix --name pmviz --display-name "Python (pmviz)" >/dev/null

# JUPYTER_PREFER_ENV_PATH: this environment's kernels and settings before ~/.local's.
# JUPYTER_CONFIG_PATH adds notebooks/.jupyter (the project's lab config: no "Jupyter news"
# prompt on first start) without replacing the user's own ~/.jupyter.
LAB_ENV = JUPYTER_PREFER_ENV_PATH=1 JUPYTER_CONFIG_PATH="$(CURDIR)/notebooks/.jupyter$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}"

# Debian's chromium for the real-browser test (Playwright never downloads a browser here), and
# the real programs the write-tracking tests run under injection.
SYSTEM_DEPS = chromium sqlite3 redis-server redis-tools gcc
system-deps:
	@missing=$$(for p in $(SYSTEM_DEPS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

lab: install
	$(LAB_ENV) $(PYTHON) -m jupyter lab --no-browser --allow-root --ip=127.0.0.1 --port=$(PORT) \
	  --ServerApp.root_dir=notebooks

test: install-test system-deps
	$(PYTHON) -m ruff check pmviz tests benchmarks sample_data
	$(PYTHON) -m mypy pmviz
	$(PYTHON) -m pytest -q
