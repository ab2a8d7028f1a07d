# Two entry points (see README): `make demo` and `make test`. Both create .venv if missing.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-slow lint clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	# CPU torch wheel first where no torch is present: a bare range would pull CUDA (GBs).
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install torch==2.13.0
	# hanabi-learning-environment builds with CMake; CMake 4 needs this policy floor.
	CMAKE_POLICY_VERSION_MINIMUM=3.5 $(BIN)/python -m pip install -e '.[dev]'
	# overcooked-ai declares gym/pygame/ipython; its real needs are listed in pyproject.
	$(BIN)/python -m pip install --no-deps overcooked-ai==1.1.0
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m srpo_cli.demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check srpo_core srpo_cli tests

clean:
	rm -rf $(VENV)
