# Two commands do all the set-up on a fresh machine:
#   make generate PROMPT="a red cube" OUT=red_cube.glb   # builds .venv if needed, then generates an asset
#   make test                                            # builds .venv if needed, then runs the test suite
# torch is pinned so CPU machines take the local CPU build instead of a multi-GB CUDA download.
# The ray extra is part of the set-up: the suite tests the Ray runner (python -m engine.serve --runner ray).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
TORCH_PIN := torch==2.13.0
PROMPT ?= a red cube
OUT ?= red_cube.glb
ARGS ?=

.PHONY: setup generate test lint clean-venv

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e ".[dev,ray]"
	touch $@

setup: $(VENV)/.installed

generate: $(VENV)/.installed
	$(PY) -m engine.generate "$(PROMPT)" --out "$(OUT)" $(ARGS)

# The Khronos glTF-Validator (npm) for the export tests, installed into .ci/node/ (git-ignored).
GLTF_VALIDATOR := .ci/node/node_modules/gltf-validator/package.json

$(GLTF_VALIDATOR): $(VENV)/.installed
	$(PY) -m tests.export.gltf_validator

test: $(VENV)/.installed $(GLTF_VALIDATOR)
	$(PY) -m pytest -q $(ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check engine tests scripts blender_addon
	$(VENV)/bin/ruff format --check engine tests scripts blender_addon

clean-venv:
	rm -rf $(VENV)
