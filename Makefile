# The two commands the README promises. Everything the project needs is installed from here.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: test run lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-dev: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres]'
	touch $@ $(VENV)/.installed-run

$(VENV)/.installed-run: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[serve]'
	touch $@

## run: create .venv, the SQLite database and the demo data; serve on 127.0.0.1:8000
run: $(VENV)/.installed-run
	$(BIN)/blockwatch init-db
	$(BIN)/blockwatch load-fixtures
	$(BIN)/blockwatch serve --host 127.0.0.1 --port 8000

## test: create .venv, install .[dev], run ruff and the whole pytest suite
test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

## bench: print the geo index table (slow: builds 1M polygons)
bench: $(VENV)/.installed-dev
	$(BIN)/python bench/geo_bench.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis

## kinto-venv: create bench/.kinto-venv with Kinto (the peer of the sync bench; its own deps)
KINTO_VENV ?= bench/.kinto-venv
.PHONY: kinto-venv
kinto-venv:
	$(PYTHON) bench/kinto_peer.py --setup --venv $(KINTO_VENV)
