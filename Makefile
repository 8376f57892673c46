# One command to set up and run the quickstart; one to set up and run the tests.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= dev

.PHONY: setup quickstart test test-all lint bench

$(VENV)/.installed-$(EXTRAS): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	touch $@

setup: $(VENV)/.installed-$(EXTRAS)

quickstart: setup
	$(BIN)/plasticine-jax run configs/quickstart.yaml

test: setup
	$(BIN)/python -m pytest -q --durations=15

# What CI runs (.ci/run): the same suite with every optional backend installed (craftax,
# brax, envpool), so their adapter tests run instead of skipping. Procgen also needs Qt 5
# (see README).
test-all:
	$(MAKE) test EXTRAS=dev,all

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python benchmarks/throughput.py
