# Every target sets itself up from nothing: a venv in .venv, the project installed into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint types unit bench clean catalogue

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip

# The project is installed editable as a plain path entry (setuptools' compat mode), not through setuptools' import
# hook: the hook costs every Python start in this venv about 20 ms, which an install from a wheel does not, and the
# start-up and critical-path benchmarks would measure it. A setuptools without compat mode gets the default.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[network,test]' \
		--config-settings editable_mode=compat 2>/dev/null \
		|| $(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[network,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/preflight demo

lint: $(STAMP)
	$(BIN)/ruff check .

types: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

test: lint types unit

bench: $(STAMP)
	$(BIN)/python bench/run.py

catalogue: $(STAMP)
	$(BIN)/python -c "from preflight.catalogue import sync_readme; sync_readme('README.md')"

clean:
	rm -rf $(VENV) reports/*.json reports/*.xml reports/*.md reports/*.html
