PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench docs clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/hotdash-watch demo

test: $(STAMP)
	$(BIN)/ruff check hotdash_watch tests bench
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q -p no:cacheprovider -n auto

lint: $(STAMP)
	$(BIN)/ruff check hotdash_watch tests bench
	$(BIN)/lint-imports --no-cache

bench: $(STAMP)
	$(BIN)/python bench/window.py
	$(BIN)/python bench/probes.py
	$(BIN)/python bench/footprint.py
	$(BIN)/python bench/machines_probe.py
	$(BIN)/python bench/detection.py
	$(BIN)/python bench/outbox.py
	$(BIN)/python bench/mttr.py

docs: $(STAMP)
	$(BIN)/python -m hotdash_watch.settings_doc --write README.md

clean:
	rm -rf $(VENV) .pytest_cache
