# AgentGym fabric. `make serve` and `make test` work on a fresh machine: they install what is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
# Extras installed into the venv (train pulls torch+transformers: torch is installed first from
# the pinned CPU wheel so no CUDA build is pulled in).
EXTRAS ?= dev,train,ray,webarena
TORCH_VERSION ?= 2.13.0
ARGS ?=

PROTOS := $(wildcard protos/agentgym/v1/*.proto)
STUBS := $(PROTOS:.proto=_pb2.py)
comma := ,
INSTALLED := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: install proto data node browser serve serve-node test test-fast bench lint format wheel clean

# The Node.js env server (envs/node): its npm packages, reinstalled when the lock file changes.
NODE_DIR := envs/node
NODE_DEPS := $(NODE_DIR)/node_modules/.package-lock.json
# `make serve NODE=1` also starts the Node server, on NODE_PORT, with NODE_ARGS.
NODE ?=
NODE_PORT ?= 50052
NODE_ARGS ?=

install: $(INSTALLED) $(STUBS) data node browser

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

# `npm ci` when node_modules is missing or older than the lock file; skipped (with a note) when
# Node.js is not installed, in which case the Node server's tests skip themselves.
node:
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory $(NODE_DEPS); \
	else echo "node/npm not found: skipping the Node.js env server ($(NODE_DIR)); its tests will be skipped"; fi

$(NODE_DEPS): $(NODE_DIR)/package-lock.json $(NODE_DIR)/package.json
	npm ci --prefix $(NODE_DIR) --no-audit --no-fund --loglevel=error
	@touch $@

# Debian's Chromium, for the viewer's browser tests (Playwright drives it through executable_path;
# no browser is ever downloaded). Installed with apt-get when missing and we are root; otherwise a
# note, and those tests skip themselves.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [[ "$$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium not found and cannot install it (needs root and apt-get): the viewer's browser tests will be skipped"; fi; }

# Serve every built-in env on 127.0.0.1:50051 (override: make serve ARGS="--envs maze --port 6000").
# With NODE=1, the Node.js server runs beside it on NODE_PORT; Ctrl-C stops both.
serve: install
	@if [[ "$(NODE)" == 1 ]]; then \
	  node $(NODE_DIR)/src/main.js --port $(NODE_PORT) $(NODE_ARGS) & node_pid=$$!; \
	  trap 'kill -TERM $$node_pid 2>/dev/null; wait $$node_pid' EXIT; \
	  $(BIN)/agentgym serve $(ARGS); \
	else \
	  $(BIN)/agentgym serve $(ARGS); \
	fi

# Only the Node.js server (Sokoban), on NODE_PORT (override: make serve-node NODE_ARGS="--envs sokoban,conformance").
serve-node: node
	node $(NODE_DIR)/src/main.js --port $(NODE_PORT) $(NODE_ARGS)

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(INSTALLED)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: install lint
	$(BIN)/pytest $(ARGS)

# Every benchmark in bench/, one after another, each printing its own table (bench/fake_sglang.py
# and bench/pingpong_server.py are servers the others start). QUICK=1, the default, runs each at a
# small size (about 14 minutes in all on 2 cores); QUICK=0 at the sizes the README's figures come
# from (an hour or more). ARGS go to bench/fabric.py. The Node server's benchmark needs Node.js.
QUICK ?= 1
quick = $(if $(filter 0,$(QUICK)),$(2),$(1))
bench: install
	$(PY) bench/fabric.py $(call quick,--seconds 1 --levels 1$(comma)64 --open 1000) $(ARGS)
	$(PY) bench/rollout_overhead.py $(call quick,--episodes 256 --rounds 4 --delay 0.2)
	$(PY) bench/env_cost.py $(call quick,--seconds 1 --episodes 20 --concurrency 4,--seconds 5)
	$(PY) bench/engine_envs.py $(call quick,--episodes 2 --repeat 1)
	$(PY) bench/tool_envs.py $(call quick,--seconds 1 --concurrency 8 --live 50)
	$(PY) bench/webshop.py $(call quick,--tasks 50 --episodes 100 --concurrency 8)
	$(PY) bench/webarena.py $(call quick,--concurrency 1$(comma)8 --steps 6 --live 1$(comma)8)
	@if command -v node >/dev/null 2>&1; then \
	  $(PY) bench/node_sokoban.py $(call quick,--seconds 1 --concurrency 1$(comma)16); \
	else echo "node not found: skipping bench/node_sokoban.py"; fi
	$(PY) bench/trainer_store.py $(call quick,--n 500 --tokens 500)
	$(PY) bench/trainer_query.py $(call quick,--quick)
	$(PY) bench/viewer_paging.py $(call quick,--n 20000 --repeat 5)
	$(PY) bench/rl_overlap.py $(call quick,--steps 2 --tasks 2 --group 2 --repeats 1)
	$(PY) bench/evol_overhead.py $(call quick,--iterations 1 --explore 16 --eval-tasks 8 --bc-tasks 30 --epochs 1)
	$(PY) bench/soak.py $(call quick,--duration 20 --warmup 10 --concurrency 64 --think 0.5 --client-kill-every 8 --worker-kill-every 3 --idle-timeout 5 --sample-every 5,--duration 600 --warmup 60)
	$(PY) bench/fleet.py $(call quick,--seconds 1 --repeat 1 --live 2000 --window 5)
	$(PY) bench/heap_growth.py $(call quick,--warmup 500 --runs 1000$(comma)2000)

wheel: install
	$(PY) -m pip wheel --no-deps -w dist .

clean:
	rm -rf $(VENV) build dist *.egg-info protos/agentgym/v1/*_pb2*.py protos/agentgym/v1/*_pb2*.pyi envs/data $(NODE_DIR)/node_modules
