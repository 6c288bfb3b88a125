# Two entry points: `make demo` and `make test`. Both create .venv and install actlab first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# torch is installed first and pinned so that pip does not pick a different build for the range in pyproject.
TORCH ?= torch==2.13.0

.PHONY: demo test bench clean

$(BIN)/actlab: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[test,search,ray,export]"
	touch $@

demo: $(BIN)/actlab
	$(BIN)/actlab demo --workdir demo_out

test: $(BIN)/actlab
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf $(VENV) demo_out build src/*.egg-info
