# AgentGym fabric. `make serve` and `make test` work on a fresh machine: they install what is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
# Extras installed into the venv (train pulls torch+transformers: torch is installed first from
# the pinned CPU wheel so no CUDA build is pulled in).
EXTRAS ?= dev
TORCH_VERSION ?= 2.13.0
ARGS ?=

PROTOS := $(wildcard protos/agentgym/v1/*.proto)
STUBS := $(PROTOS:.proto=_pb2.py)
comma := ,
INSTALLED := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: install proto data serve test test-fast bench lint format wheel clean

install: $(INSTALLED) $(STUBS) data

# The venv goes first on PATH while installing: fast-downward-textworld (ALFWorld's planner) builds
# from source with a bare `python`.
$(INSTALLED): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@if [[ ",$(EXTRAS)," == *",train,"* ]]; then $(PY) -m pip install -q torch==$(TORCH_VERSION); fi
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pip install -q -e '.[$(EXTRAS)]'
	@touch $@

# Python stubs for the contract. Generated, not committed: `make proto` rewrites them.
proto: $(INSTALLED)
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=protos --pyi_out=protos --grpc_python_out=protos $(PROTOS)

protos/agentgym/v1/%_pb2.py: protos/agentgym/v1/%.proto $(INSTALLED)
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=protos --pyi_out=protos --grpc_python_out=protos $(PROTOS)

# Env data derived from installed packages (recipes, word lists); also built on first use.
data: $(INSTALLED) $(STUBS)
	$(PY) -m agentgym.envs prepare

# Serve every built-in env on 127.0.0.1:50051 (override: make serve ARGS="--envs maze --port 6000").
serve: install
	$(BIN)/agentgym serve $(ARGS)

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(INSTALLED)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: install lint
	$(BIN)/pytest $(ARGS)

bench: install
	$(PY) bench/fabric.py $(ARGS)

wheel: install
	$(PY) -m pip wheel --no-deps -w dist .

clean:
	rm -rf $(VENV) build dist *.egg-info protos/agentgym/v1/*_pb2*.py protos/agentgym/v1/*_pb2*.pyi envs/data
