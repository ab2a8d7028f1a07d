# Two entry points (see README): `make demo` and `make test`. Both create .venv if missing.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint clean

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

# The collaborate/defect game: the RQE oracle, then IPPO (free-rides) and SRPO (both
# collaborate, near the tau = 10 RQE) trained into a registry in out/demo/.
DEMO := SRPO_REGISTRY=out/demo/srpo.db $(BIN)/srpo
demo: $(STAMP)
	rm -rf out/demo && mkdir -p out/demo
	$(DEMO) equilibria --game collab-defect --tau 0 --eps 0.2
	$(DEMO) equilibria --game collab-defect --tau 10 --eps 0.2
	$(DEMO) train --env matrix --game collab-defect --algo ippo --eps 0.2 --seed 0
	$(DEMO) train --env matrix --game collab-defect --algo srpo --tau 10 --eps 0.2 --seed 0
	$(DEMO) runs list
	@echo "registry: out/demo/srpo.db  (inspect a run: $(DEMO) runs show RUN_ID)"

test: $(STAMP)
	$(BIN)/ruff check srpo_core srpo_cli tests
	$(BIN)/python -m pytest -q -n 2

lint: $(STAMP)
	$(BIN)/ruff check srpo_core srpo_cli tests

clean:
	rm -rf $(VENV)
