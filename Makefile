# Every target sets itself up from nothing: a venv in .venv, the project installed into it. `make demo` installs
# what the tool needs to run (and the network extra); `make test` adds the test extra. pip shows its progress.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --disable-pip-version-check
comma := ,
STAMP := $(VENV)/.installed
RUNTIME_STAMP := $(VENV)/.installed-runtime

.PHONY: demo test lint types contracts unit bench clean catalogue

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip

# The project is installed editable as a plain path entry (setuptools' compat mode), not through setuptools' import
# hook: the hook costs every Python start in this venv about 20 ms, which an install from a wheel does not, and the
# start-up and critical-path benchmarks would measure it. A setuptools without compat mode gets the default.
# $(1): the extras.
define install
	@echo "Installing dw-preflight with its dependencies and the extras [$(1)] into $(VENV) ..."
	$(PIP) -e '.[$(1)]' --config-settings editable_mode=compat 2>/dev/null \
		|| $(PIP) -e '.[$(1)]'
endef

# The runtime and the network extra: all `preflight demo` and `preflight run` need.
$(RUNTIME_STAMP): pyproject.toml | $(BIN)/python
	$(call install,network)
	touch $(RUNTIME_STAMP)

# Everything `make test` runs, too: pytest, ruff, mypy and the libraries the tests use.
$(STAMP): pyproject.toml | $(BIN)/python
	$(call install,network$(comma)test)
	touch $(RUNTIME_STAMP) $(STAMP)

demo: $(RUNTIME_STAMP)
	$(BIN)/preflight demo

lint: $(STAMP)
	$(BIN)/ruff check .

types: $(STAMP)
	$(BIN)/mypy

# The import contracts in pyproject.toml ([tool.importlinter]); the graph is quick to build, so no cache is kept.
contracts: $(STAMP)
	$(BIN)/lint-imports --no-cache

unit: $(STAMP)
	$(BIN)/pytest

test: lint types contracts unit

bench: $(STAMP)
	$(BIN)/python bench/run.py

catalogue: $(STAMP)
	$(BIN)/python -c "from preflight.cli.catalogue import sync_readme; sync_readme('README.md')"

clean:
	rm -rf $(VENV) reports/*.json reports/*.xml reports/*.md reports/*.html
