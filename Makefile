# axflow — `make evolve EPS=0.005` and `make test` do all set-up on a fresh Debian machine.

PYTHON_SYS ?= python3
VENV       := .venv
PY         := $(VENV)/bin/python
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PKGS   := yosys iverilog verilator opensta qflow-tech-osu018 qflow-tech-osu035 qflow-tech-osu050

# Settings of the main job (see `python flow.py evolve --help` for all of them).
EPS     ?= 0.005
BITS    ?= 8
SIGNED  ?= 1
SEED    ?= 1
BUDGET  ?= 600
TECH    ?= osu018
SEED_ARCH ?= auto
TAG     ?=
ARGS    ?=
JOBS    ?= 2
COST    ?= area
MAE_LIMIT  ?=
BIAS_LIMIT ?=
MSE_LIMIT  ?=
# the objective and the application's error limits (issue 14), shared by evolve, sweep and library
APP_FLAGS = --cost $(COST) $(if $(MAE_LIMIT),--mae-limit $(MAE_LIMIT)) $(if $(BIAS_LIMIT),--bias-limit $(BIAS_LIMIT)) \
            $(if $(MSE_LIMIT),--mse-limit $(MSE_LIMIT))

EVOLVE_FLAGS = --eps $(EPS) --bits $(BITS) $(if $(filter 1 yes true,$(SIGNED)),--signed,--no-signed) \
               --seed $(SEED) --budget $(BUDGET) --tech $(TECH) --seed-arch $(SEED_ARCH) $(if $(TAG),--tag $(TAG)) \
               $(APP_FLAGS) $(if $(filter-out uniform,$(OPERANDS)),--operands $(OPERANDS)) $(ARGS)

.PHONY: all evolve sweep library test test-all bench lint deps venv clean help accel dnn dnn-setup array

all: help

help:
	@echo "make evolve EPS=0.005   evolve, verify and characterise an approximate multiplier"
	@echo "make sweep EPS='0.001 0.002 0.005 0.01 0.02 0.05' [SCHEDULER=tcp://HOST:8786]   a grid over EPS on Dask, with plots"
	@echo "make library SEEDS='1 2' [EPS='0.001 0.01'] [SCHEDULER=tcp://HOST:8786]   a multiplier library on Dask"
	@echo "make test               the test suite (slow tests: make test-all)"
	@echo "make bench              evaluation-speed and quality benchmarks"
	@echo "make lint               ruff, mypy and the import layers (lint-imports)"
	@echo "make accel NET=resnet18 ACCEL_ARRAY=128x128 ACCEL_PODS=4   time/traffic/energy on a systolic accelerator"
	@echo "make array ROWS=8 COLS=8 PODS=1 MULT=runs/mul8s/eps0.005-seed1   a systolic array, verified and costed"
	@echo "make dnn MULTS='runs/mul8s/*'   assign multipliers to a network's layers (DNN level)"
	@echo "make dnn-setup          PyTorch (CPU), captum, scikit-learn, mlxtend, Fashion-MNIST"

evolve: venv
	$(PY) flow.py evolve $(EVOLVE_FLAGS)

sweep: venv
	$(PY) flow.py sweep --eps $(EPS) --bits $(BITS) $(if $(filter 1 yes true,$(SIGNED)),--signed,--no-signed) \
		--seed $(SEED) --budget $(BUDGET) --tech $(TECH) --seed-arch $(SEED_ARCH) $(APP_FLAGS) \
		--operands $(OPERANDS) $(if $(SCHEDULER),--scheduler $(SCHEDULER)) $(ARGS)

# ---- multiplier library on Dask (evolve/library.py, issue 14): `python flow.py library --help` ----
# EPS only when given (else the library's grid 0.001 ... 0.3); BUDGET is per member. SCHEDULER (a running
# Dask scheduler, tcp://HOST:PORT; default: a local cluster) serves sweep too.
SEEDS       ?= 1 2
OPERANDS    ?= uniform
MEMBER_JOBS ?= 1
SCHEDULER   ?=
REFERENCE   ?=
LIBRARY     ?=
LIBRARY_EPS = $(if $(filter command line environment,$(origin EPS)),--eps $(EPS))

library: venv
	$(PY) flow.py library $(LIBRARY_EPS) --seeds $(SEEDS) --bits $(BITS) \
		$(if $(filter 1 yes true,$(SIGNED)),--signed,--no-signed) --tech $(TECH) --operands $(OPERANDS) \
		--budget $(BUDGET) --jobs $(MEMBER_JOBS) --seed-arch $(SEED_ARCH) $(APP_FLAGS) \
		$(if $(SCHEDULER),--scheduler $(SCHEDULER)) \
		$(if $(REFERENCE),--reference $(REFERENCE)) $(if $(LIBRARY),--run-dir $(LIBRARY)) $(ARGS)
# ---- end of multiplier library ----

# The DNN tests need PyTorch and the data sets (CI sets NOSKIP=1, so they must not skip): dnn-setup.
test: venv dnn-setup
	$(PY) -m pytest -m "not slow" -n $(JOBS) $(ARGS)

test-all: venv dnn-setup
	$(PY) -m pytest -n $(JOBS) $(ARGS)

bench: venv dnn-setup
	$(PY) flow.py bench $(ARGS)

lint: venv
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports --no-cache

# ---- accelerator models (accel_models/, issue 4): `python flow.py accel --help` lists every option ----
# ACCEL_ARRAY and ACCEL_PODS are accel's --array and --pods (the array target's ROWS, COLS, PODS are its own)
accel: NET ?= resnet18
ACCEL_ARRAY ?= 128x128
ACCEL_PODS  ?= 4
DATAFLOW    ?= ws
CYCLE_MODEL ?= rtl
ASSIGN      ?=
SPARSITY    ?= 0

accel: venv
	$(PY) flow.py accel --net $(NET) --array $(ACCEL_ARRAY) --pods $(ACCEL_PODS) --dataflow $(DATAFLOW) \
		--cycle-model $(CYCLE_MODEL) --sparsity $(SPARSITY) $(if $(ASSIGN),--assign $(ASSIGN)) $(ARGS)
# ---- end of accelerator models ----

# ---- systolic and multi-pod arrays (rtl_gen/array/, issue 5): `python flow.py array --help` ----
ROWS ?= 8
COLS ?= 8
PODS ?= 1
MULT ?= exact

array: venv
	$(PY) flow.py array --rows $(ROWS) --cols $(COLS) --pods $(PODS) --dataflow $(DATAFLOW) --mult $(MULT) $(ARGS)

# System packages: installed only when something is missing.
deps:
	@missing=""; \
	command -v yosys >/dev/null 2>&1 || missing="$$missing yosys"; \
	command -v iverilog >/dev/null 2>&1 || missing="$$missing iverilog"; \
	command -v verilator >/dev/null 2>&1 || missing="$$missing verilator"; \
	command -v sta >/dev/null 2>&1 || missing="$$missing opensta"; \
	[ -f /usr/share/qflow/tech/osu018/osu018_stdcells.lib ] || missing="$$missing qflow-tech-osu018"; \
	[ -f /usr/share/qflow/tech/osu035/osu035_stdcells.lib ] || missing="$$missing qflow-tech-osu035"; \
	[ -f /usr/share/qflow/tech/osu050/osu05_stdcells.lib ] || missing="$$missing qflow-tech-osu050"; \
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

# ---------------------------------------------------------------- DNN level (dnn/, issue 6)
# `make dnn MULTS='runs/mul8s/eps0.005-seed1 runs/mul8s/eps0.01-seed1'` picks a multiplier per layer of
# NET trained on DATA with at most MAX_ACC_LOSS accuracy lost; see `python flow.py dnn --help`.
dnn: NET ?= lenet5
DATA         ?= mnist
MULTS        ?=
LIBRARY      ?=
MAX_ACC_LOSS ?= 0.01
METHOD       ?= hawx
DNN_APT_PKGS := dataset-fashion-mnist

dnn: dnn-setup
	$(PY) flow.py dnn --net $(NET) --data $(DATA) $(if $(MULTS),--mults $(MULTS)) \
		$(if $(LIBRARY),--library $(LIBRARY)) --max-acc-loss $(MAX_ACC_LOSS) \
		--method $(METHOD) $(ARGS)

dnn-setup: venv $(VENV)/.stamp-dnn
	@[ -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ] || { \
		echo "installing Debian packages: $(DNN_APT_PKGS)"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DNN_APT_PKGS); }

# exactly torch==2.13.0: pip takes the local CPU build (any other spelling downloads CUDA wheels)
$(VENV)/.stamp-dnn: requirements-dnn.txt $(VENV)/.stamp-requirements
	$(PY) -m pip install -q -r requirements-dnn.txt
	touch $@
