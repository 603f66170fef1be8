# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.autopeft-installed

.PHONY: setup browser demo test clean-demo

setup: $(STAMP)

# torch first, from the local CPU wheel: installing anything that depends on torch before it would pull
# a multi-GB CUDA build.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet torch==2.13.0
	$(PYTHON) -m pip install --quiet -e '.[all]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/autopeft search search_spaces/demo.yaml --out runs/demo

# The dashboard tests drive Debian's chromium headless (never a browser download).
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

test: setup browser
	$(PYTHON) -m pytest -q

clean-demo:
	rm -rf runs/demo
