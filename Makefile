# axflow — `make evolve EPS=0.005` and `make test` do all set-up on a fresh Debian machine.

PYTHON_SYS ?= python3
VENV       := .venv
PY         := $(VENV)/bin/python
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PKGS   := yosys iverilog opensta qflow-tech-osu018

# Settings of the main job (see `python flow.py evolve --help` for all of them).
EPS     ?= 0.005
BITS    ?= 8
SIGNED  ?= 1
SEED    ?= 1
BUDGET  ?= 600
TECH    ?= osu018
TAG     ?=
ARGS    ?=
JOBS    ?= 2

EVOLVE_FLAGS = --eps $(EPS) --bits $(BITS) $(if $(filter 1 yes true,$(SIGNED)),--signed,--no-signed) \
               --seed $(SEED) --budget $(BUDGET) --tech $(TECH) $(if $(TAG),--tag $(TAG)) $(ARGS)

.PHONY: all evolve sweep test test-all bench lint deps venv clean help accel

all: help

help:
	@echo "make evolve EPS=0.005   evolve, verify and characterise an approximate multiplier"
	@echo "make sweep EPS='0.001 0.002 0.005 0.01 0.02 0.05'   a grid over EPS, with plots"
	@echo "make test               the test suite (slow tests: make test-all)"
	@echo "make bench              evaluation-speed and quality benchmarks"
	@echo "make lint               ruff and mypy"
	@echo "make accel NET=resnet18 ARRAY=128x128 PODS=4   time/traffic/energy on a systolic accelerator"

evolve: venv
	$(PY) flow.py evolve $(EVOLVE_FLAGS)

sweep: venv
	$(PY) flow.py sweep --eps $(EPS) --bits $(BITS) $(if $(filter 1 yes true,$(SIGNED)),--signed,--no-signed) \
		--seed $(SEED) --budget $(BUDGET) --tech $(TECH) $(ARGS)

test: venv
	$(PY) -m pytest -m "not slow" -n $(JOBS) $(ARGS)

test-all: venv
	$(PY) -m pytest -n $(JOBS) $(ARGS)

bench: venv
	$(PY) flow.py bench $(ARGS)

lint: venv
	$(PY) -m ruff check .
	$(PY) -m mypy

# ---- accelerator models (accel_models/, issue 4): `python flow.py accel --help` lists every option ----
NET         ?= resnet18
ARRAY       ?= 128x128
PODS        ?= 4
DATAFLOW    ?= ws
CYCLE_MODEL ?= rtl
ASSIGN      ?=
SPARSITY    ?= 0

accel: venv
	$(PY) flow.py accel --net $(NET) --array $(ARRAY) --pods $(PODS) --dataflow $(DATAFLOW) \
		--cycle-model $(CYCLE_MODEL) --sparsity $(SPARSITY) $(if $(ASSIGN),--assign $(ASSIGN)) $(ARGS)
# ---- end of accelerator models ----

# System packages: installed only when something is missing.
deps:
	@missing=""; \
	command -v yosys >/dev/null 2>&1 || missing="$$missing yosys"; \
	command -v iverilog >/dev/null 2>&1 || missing="$$missing iverilog"; \
	command -v sta >/dev/null 2>&1 || missing="$$missing opensta"; \
	[ -f /usr/share/qflow/tech/osu018/osu018_stdcells.lib ] || missing="$$missing qflow-tech-osu018"; \
	$(PYTHON_SYS) -c 'import venv, ensurepip' >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

venv: deps $(VENV)/.stamp-requirements

$(VENV)/.stamp-requirements: requirements.txt
	@[ -x $(PY) ] || $(PYTHON_SYS) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

clean:
	rm -rf sim_build .pytest_cache .ruff_cache .mypy_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
