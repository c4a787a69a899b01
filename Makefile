# ferkit: `make train` sets everything up and trains; `make test` runs the tests.
# ZenML and MLflow state stays in this folder (.ferkit/) unless you override
# FERKIT_HOME (or ZENML_CONFIG_PATH, for ZenML's part alone) on the command line or in the environment.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
FERKIT_HOME ?= $(CURDIR)/.ferkit
export ZENML_CONFIG_PATH ?= $(FERKIT_HOME)/zenml
export FERKIT_RESUME_DIR ?= $(FERKIT_HOME)/resume
export ZENML_ANALYTICS_OPT_IN ?= false
export ZENML_ENABLE_RICH_TRACEBACK ?= false
export ZENML_LOGGING_VERBOSITY ?= INFO
export AUTO_OPEN_DASHBOARD ?= false
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))

# The shared data folder beside the repository, when there is one; else set FER2013_PATH.
ifeq ($(origin FER2013_PATH), undefined)
  ifneq ($(wildcard $(CURDIR)/../shared/data/fer2013.zip),)
    export FER2013_PATH := $(abspath $(CURDIR)/../shared/data/fer2013.zip)
  endif
endif

STAMP := $(VENV)/.installed
UI_PORT ?= 5000
PYTEST_ARGS ?=
# Test processes: each test file runs whole in one of them (its fixtures and order kept). TEST_JOBS=0: one process.
TEST_JOBS ?= 2
# A literal comma for defaults inside $(or ...), whose arguments commas separate.
comma := ,

.PHONY: setup stack train test lint format bench ablation ablation-full gan-ablation seeds class-offsets compare tta ui clean help stack-kubernetes stack-kubeflow run-cluster

help:
	@echo "make train [CONFIG=configs/<name>.yaml] [FRESH=1] [BUDGET=<minutes>]  set up, register the stack, run fer_training"
	@echo "make test [TEST_JOBS=2]                  run the test suite (in TEST_JOBS processes; 0: one)"
	@echo "make lint | format                       ruff check and format --check | apply both"
	@echo "make setup | stack | bench | ablation | ablation-full | gan-ablation | seeds [SEEDS=0,1,2] | class-offsets | compare [SPEC=...] | tta [MODEL=URI] | ui | clean"
	@echo "make stack-kubernetes | stack-kubeflow       register a cluster stack (needs a ZenML server, see docs/cluster.md)"
	@echo "make run-cluster TARGET=kubernetes CONFIG=configs/paper.yaml [PIPELINE=pipelines.fer_training]"

# One pip resolve for everything; re-runs only when pyproject.toml (or the start-up hook) changes.
$(STAMP): pyproject.toml pipelines/by_name.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pipelines.by_name   # the project's home and `zenml pipeline run <name>` at every start of the venv
	@touch $(STAMP)

setup: $(STAMP)

stack: setup
	@mkdir -p $(ZENML_CONFIG_PATH)
	$(BIN)/ferkit stack --root $(CURDIR)

# CONFIG defaults to configs/paper.yaml where CUDA is available and that config
# exists, else configs/cpu.yaml. FRESH=1 trains from scratch: no step from the cache,
# no resume state (`ferkit fresh-config`). BUDGET=<minutes> fits the training into that
# many minutes, with fewer epochs where not all fit (`ferkit budget-config`).
train: stack
	@config="$(CONFIG)"; \
	if [ -z "$$config" ]; then \
	  if $(BIN)/python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null \
	     && [ -f configs/paper.yaml ]; then config=configs/paper.yaml; why="CUDA is available"; \
	  else config=configs/cpu.yaml; why="no CUDA device"; fi; \
	  echo "make train: using $$config ($$why; pick another with CONFIG=...)"; \
	else echo "make train: using $$config"; fi; \
	run_config="$$config"; \
	name="$$(basename "$$config" .yaml)-$$(realpath "$$config" | sha256sum | cut -c1-8)"; \
	if [ -n "$(BUDGET)" ]; then \
	  name="$$name-$(BUDGET)min"; \
	  run_config="$(FERKIT_HOME)/budget/$$name.yaml"; \
	  $(BIN)/ferkit budget-config "$$config" --minutes "$(BUDGET)" -o "$$run_config" || exit 2; \
	fi; \
	if [ -n "$(FRESH)" ]; then \
	  fresh_config="$(FERKIT_HOME)/fresh/$$name.yaml"; \
	  $(BIN)/ferkit fresh-config "$$run_config" -o "$$fresh_config" || exit 2; \
	  run_config="$$fresh_config"; \
	fi; \
	FERKIT_CONFIG_FILE="$$config" $(BIN)/zenml pipeline run pipelines.fer_training -c "$$run_config"

test: setup
	$(BIN)/python -m pytest $(if $(filter 0,$(TEST_JOBS)),,-n $(TEST_JOBS) --dist loadfile) $(PYTEST_ARGS)

# Lint: the rules are in pyproject.toml; CI runs this before the tests.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Benchmarks write JSON to tests/benchmarks/results/; they need FER2013_PATH.
bench: setup
	@$(BIN)/python tests/benchmarks/bench_ingest.py --out tests/benchmarks/results/ingest.json; a=$$?; \
	$(BIN)/python tests/benchmarks/bench_validate.py --out tests/benchmarks/results/validate.json; b=$$?; \
	$(BIN)/python tests/benchmarks/bench_inference.py --out tests/benchmarks/results/inference.json; c=$$?; \
	$(BIN)/python tests/benchmarks/bench_training.py --out tests/benchmarks/results/training.json; d=$$?; \
	exit $$(( a || b || c || d ))

# The ablation: cpu.yaml with each hybrid part switched off, EPOCHS (default 16) of its budget, on
# SEEDS (default 0,1), PublicTest beside PrivateTest. Six rows of two seeds take about 5 hours on
# 2 cores that train at 350 images/s; a rerun continues with the runs not yet measured, and
# ROWS=full,no_transformer runs a subset. A table measured under another recipe, budget or
# precision is kept and refused: OUT=<file> starts another.
ablation: setup
	$(BIN)/python tests/benchmarks/bench_ablation.py --epochs $(or $(EPOCHS),16) --seeds $(or $(SEEDS),0$(comma)1) \
	  $(if $(ROWS),--rows $(ROWS)) --out $(or $(OUT),tests/benchmarks/results/ablation-$(or $(EPOCHS),16)-epochs.json)

# The ablation at the whole budget (EPOCHS, default 36: cpu.yaml's own), each run a `make train`:
# every row's config is written beside its table (<folder>/<row>.yaml, so the table names a config
# any checkout holds), `bench_seeds` trains it
# on SEEDS (default 0,1) in homes under $(FERKIT_HOME)/ablation-full/<row> and scores PublicTest and
# PrivateTest into tests/benchmarks/results/ablation-<EPOCHS>-epochs/<row>.json, then one table
# gathers them (ablation-<EPOCHS>-epochs.json). The full row is cpu.yaml itself (the same training
# hash as `make seeds` of it). The table holds one precision and one kind of CPU: a row this machine
# would train in another precision, or on another kind than the table's, is refused before training
# (FOLDER=<another folder> starts a table for this kind, gathered into <folder>.json). About an hour a run on 2 native-bf16
# cores; a rerun trains only what is missing.
ABLATION_ROWS = full no_attention no_transformer no_branches no_class_weights no_class_balanced_augmentation
ablation-full: setup
	@set -e; epochs=$(or $(EPOCHS),36); seeds=$(or $(SEEDS),0$(comma)1); \
	folder=$(or $(FOLDER),tests/benchmarks/results/ablation-$$epochs-epochs); homes=$(FERKIT_HOME)/ablation-full; \
	for row in $(or $(subst $(comma), ,$(ROWS)),$(ABLATION_ROWS)); do \
	  $(BIN)/python tests/benchmarks/bench_ablation.py --epochs $$epochs --write-config $$row --out $$folder/$$row.yaml \
	    --from-seeds $$folder; \
	  $(BIN)/python tests/benchmarks/bench_seeds.py --config $$folder/$$row.yaml --seeds $$seeds \
	    --root $$homes/$$row --out $$folder/$$row.json; \
	done; \
	$(BIN)/python tests/benchmarks/bench_ablation.py --epochs $$epochs --from-seeds $$folder \
	  --out $(or $(OUT),$$folder.json)

# The headline over training seeds: `make train` of CONFIG (default cpu.yaml) once per seed in SEEDS
# (default 0,1,2), each in its own home under $(FERKIT_HOME)/seeds, scored on PublicTest and
# PrivateTest with the config's TTA into tests/benchmarks/results/seeds_<TTA>.json; a seed already
# there for the same training is not trained again, an interrupted one continues where it stopped.
# A file of another training or precision is kept and refused: OUT=<file> starts another.
# `nohup make seeds > seeds.log &`.
seeds: setup
	$(BIN)/python tests/benchmarks/bench_seeds.py --config $(or $(CONFIG),configs/cpu.yaml) \
	  --seeds $(or $(SEEDS),0$(comma)1$(comma)2) --root $(FERKIT_HOME)/seeds $(if $(OUT),--out $(OUT))

# The backbone comparison (docs/results.md, "Backbones"): SPEC defaults to
# configs/compare_backbones_gpu.yaml where CUDA is available, else configs/compare_backbones.yaml
# (1 h 51 min on 2 AVX512-BF16 cores, in bf16). Rows with a finished run of their config are not trained
# again; the table, its JSON and the chart go to docs/backbones/ and to MLflow.
compare: stack
	@spec="$(SPEC)"; \
	if [ -z "$$spec" ]; then \
	  if $(BIN)/python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; \
	  then spec=configs/compare_backbones_gpu.yaml; else spec=configs/compare_backbones.yaml; fi; \
	fi; \
	echo "make compare: $$spec"; \
	$(BIN)/ferkit compare "$$spec" --out docs/backbones$$(case "$$spec" in *_gpu*) echo _gpu;; esac)

# Per-class offsets after training, on the seeds `make seeds` trained (FERKIT_HOME/seeds): fitted on
# halves of PublicTest and judged on the other half; PrivateTest reported (docs/results.md).
class-offsets: setup
	$(BIN)/python tests/benchmarks/bench_class_offsets.py --root $(FERKIT_HOME)/seeds \
	  --seeds $(or $(SEEDS),0$(comma)1$(comma)2) --out tests/benchmarks/results/class_offsets.json

# Every TTA mode of MODEL (default: the champion) on PublicTest and PrivateTest (about 4 minutes a model).
tta: setup
	$(BIN)/python tests/benchmarks/bench_tta.py --model $(or $(MODEL),models:/fer_emotion@champion) \
	  --out tests/benchmarks/results/tta.json

# GAN oversampling at cpu.yaml's full budget (EPOCHS, default 36): without, with, and with the
# real faces under the with-GAN class weights, on SEEDS (default 0,1), PublicTest beside
# PrivateTest. The without-GAN runs are the seeds `make seeds` trained (scored from their homes,
# not trained again, when they are the same training; TRAINED_HOMES=$(FERKIT_HOME)/ablation-full/full
# takes the full row's homes of `make ablation-full` instead); the other four runs take about 4 hours on
# 2 cores that train at 350 images/s, about 7 on the AVX512 machine without AMX; a rerun continues.
# A table measured under another recipe or precision is kept and refused: OUT=<file> starts another.
gan-ablation: setup
	$(BIN)/python tests/benchmarks/bench_gan.py --epochs $(or $(EPOCHS),36) --seeds $(or $(SEEDS),0$(comma)1) \
	  --variants $(or $(VARIANTS),without_gan$(comma)with_gan$(comma)weights_matched) --trained-homes $(or $(TRAINED_HOMES),$(FERKIT_HOME)/seeds) \
	  --out $(or $(OUT),tests/benchmarks/results/gan-$(or $(EPOCHS),36)-epochs.json)

# Cluster stacks: need `zenml login <server>`, kubectl access, a registry and object storage
# (docs/cluster.md). The integrations' packages are installed into the venv first.
stack-kubernetes stack-kubeflow: stack-%: setup
	@$(BIN)/ferkit stack-remote $* --dry-run > /dev/null
	$(BIN)/zenml integration install -y $$($(BIN)/python -c "from ferkit.cluster import stack_definition; print(' '.join(stack_definition('$*')['integrations']))")
	$(BIN)/ferkit stack-remote $*

TARGET ?= kubernetes
PIPELINE ?= pipelines.fer_training
run-cluster: setup
	@test -n "$(CONFIG)" || { echo "give CONFIG=configs/<run config>.yaml"; exit 2; }
	$(BIN)/ferkit cluster-config $(CONFIG) --target $(TARGET) --pipeline $(PIPELINE) -o $(FERKIT_HOME)/cluster/$(TARGET)-$(notdir $(CONFIG))
	$(BIN)/zenml pipeline run $(PIPELINE) -c $(FERKIT_HOME)/cluster/$(TARGET)-$(notdir $(CONFIG))

ui: stack
	@uri=$$($(BIN)/ferkit tracking-uri); echo "MLflow UI on http://127.0.0.1:$(UI_PORT) ($$uri)"; \
	$(BIN)/mlflow ui --backend-store-uri "$$uri" --host 127.0.0.1 --port $(UI_PORT)

clean:
	rm -rf $(FERKIT_HOME) .zen .pytest_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
