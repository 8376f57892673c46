# One command to set up and run the quickstart; one to set up and run the tests.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= dev
comma := ,

.PHONY: setup system-deps quickstart test test-all lint bench

$(VENV)/.installed-$(EXTRAS): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	touch $@

# Extras whose native libraries need system packages (envpool's Procgen: Qt 5) get them
# here, through apt-get when root, else a stop with the exact command (scripts/system-deps.sh).
# The test extra (dev) also gets Debian's Chromium for the report's browser test, where it
# can be installed (--optional: without root or apt-get that test skips and says why).
system-deps:
ifneq ($(filter envpool all,$(subst $(comma), ,$(EXTRAS))),)
	bash scripts/system-deps.sh
endif
ifneq ($(filter dev,$(subst $(comma), ,$(EXTRAS))),)
	bash scripts/system-deps.sh chromium --optional
endif

setup: system-deps $(VENV)/.installed-$(EXTRAS)

quickstart: setup
	$(BIN)/plasticine-jax run configs/quickstart.yaml

# Two pytest workers (pytest-xdist), one test file each at a time so that a file's shared
# compiled fixtures are built once; XLA runs single-threaded in tests (tests/conftest.py),
# so the two cores each take a worker. WORKERS=0 runs in one process.
WORKERS ?= 2
test: setup
	$(BIN)/python -m pytest -q --durations=15 $(if $(filter 0,$(WORKERS)),,-n $(WORKERS) --dist loadfile)

# What CI runs (.ci/run): the same suite with every optional backend installed (craftax,
# brax, envpool), so their adapter tests run instead of skipping. Procgen also needs Qt 5,
# which setup installs (system-deps).
test-all:
	$(MAKE) test EXTRAS=dev,all

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python benchmarks/throughput.py
