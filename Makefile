# Two entry points (see README): `make demo` and `make test`. Both create .venv if missing.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo docs test test-slow ci-report gpu-check lint clean

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

# The whole pipeline on the paper's gridworld, into out/demo/: IPPO and SRPO (tau 10), two
# seeds each, cross-played as a population; a frozen held-out zoo from two other seeds of
# each; cross-play with it, the leaderboard, and a Markdown report with figures.
DEMO := SRPO_REGISTRY=out/demo/srpo.db $(BIN)/srpo
GRID := --env gridworld --preset gridworld-srpo --tau 0,10 --eps 0.1 --seeds 2 --steps 300000
demo: $(STAMP)
	rm -rf out/demo && mkdir -p out/demo
	$(DEMO) ablate $(GRID) --name demo --crossplay
	$(DEMO) ablate $(GRID) --name demo-partners --first-seed 100
	$(DEMO) zoo build heldout --env gridworld --runs tag=ablation:demo-partners --held-out
	$(DEMO) zoo freeze heldout
	$(DEMO) crossplay --zoo heldout --agents tag=ablation:demo
	$(DEMO) leaderboard --zoo heldout
	$(DEMO) report --ablation demo --out out/demo/report
	@echo "report: out/demo/report/report.md  (registry: out/demo/srpo.db)"

# The demo's report, as the docs show it: every number in docs/demo/ comes from this run.
docs: demo
	rm -rf docs/demo && cp -r out/demo/report docs/demo
	@echo "docs/demo/report.md regenerated from out/demo/srpo.db"

# What .ci/run adds after the tests: a tiny sweep, a held-out zoo, cross-play and a report
# on the matrix game; `report --check` fails if a section or a figure is missing.
CI := SRPO_REGISTRY=out/ci/srpo.db $(BIN)/srpo
CIGRID := --env matrix --tau 0,10 --eps 0.2 --seeds 2 --steps 30000 --set run.log_every=5
ci-report: $(STAMP)
	rm -rf out/ci && mkdir -p out/ci
	$(CI) ablate $(CIGRID) --name ci --crossplay --episodes 50
	$(CI) ablate $(CIGRID) --name ci-partners --first-seed 2
	$(CI) zoo build heldout --env matrix --runs tag=ablation:ci-partners --held-out
	$(CI) zoo freeze heldout
	$(CI) crossplay --zoo heldout --agents tag=ablation:ci --episodes 50
	$(CI) report --ablation ci --out out/ci/report --episodes 50
	$(CI) report --check out/ci/report

# Registry tests run on SQLite and on PostgreSQL: each test worker starts a server of its own
# from the PostgreSQL server programs (initdb, pg_ctl); without them those tests skip, and
# under CI=true they fail (.ci/run installs them). The Ray cluster tests (the venv's `ray
# start`, from the dev extra) share one cluster, so they go to one worker (--dist loadgroup).
test: $(STAMP)
	$(BIN)/ruff check srpo_core srpo_cli tests docs/examples
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

# Long checks (pyproject's `slow` marker): learning tests, the SmolLM2 debate test.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# On a CUDA machine (after installing a CUDA torch build into .venv): the CUDA tests, then
# training throughput per batch size on the GPU, written to out/gpu/*.json.
GPUBENCH := $(BIN)/srpo bench --set run.device=cuda --seconds 10
gpu-check: $(STAMP)
	mkdir -p out/gpu
	$(BIN)/python -m pytest -q -n 0 tests/test_cuda.py tests/test_gridworld.py -k cuda
	$(GPUBENCH) --env gridworld --batch 8,64,512,4096 --out out/gpu/gridworld.json
	$(GPUBENCH) --env gridworld --algo srpo --batch 8,512 --out out/gpu/gridworld-srpo.json
	$(GPUBENCH) --env hanabi --batch 64,256 --out out/gpu/hanabi.json
	$(GPUBENCH) --env tag --batch 64 --out out/gpu/tag.json

lint: $(STAMP)
	$(BIN)/ruff check srpo_core srpo_cli tests docs/examples
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV)
