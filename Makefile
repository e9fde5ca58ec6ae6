# The two commands of the README: `make demo` and `make test`. Both set everything up first.
VENV ?= .venv
PYTHON ?= python3
SIRENA = $(VENV)/bin/sirena
PYTEST_ARGS ?=

.PHONY: demo test setup venv lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

setup: venv
	$(SIRENA) setup

demo: setup
	$(SIRENA) demo

test: venv
	$(SIRENA) setup --browser
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy
	# --reruns 1: a test that fails is run once more and reported as RERUN, so a timing hiccup on a
	# shared 2-core machine does not hide the suite's result; a real fault fails twice.
	$(VENV)/bin/pytest -n 2 --dist loadgroup --reruns 1 $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
