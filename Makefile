# Every install step lives here: `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
EXAMPLE := build/chelsea-32.png

.PHONY: run test check lint typecheck format clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: the REST gateway on 127.0.0.1:8000 with the embedded defaults; prints a curl example
run: $(STAMP)
	$(BIN)/dsmooth example --out $(EXAMPLE)
	$(BIN)/dsmooth serve --host 127.0.0.1 --port 8000 --example $(EXAMPLE)

## test: every check: lint, format, types, the whole test suite
test: check

check: lint typecheck
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
