# Two entry points: `make demo` and `make test`. Both create .venv and install actlab first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# torch is installed first and pinned so that pip does not pick a different build for the range in pyproject.
TORCH ?= torch==2.13.0

# torchvision does not import beside that build: the tests on torchvision's and timm's models
# (tests/test_zoo.py) run in a second environment with the torch release it is built for.
ZOO := .venv-zoo
ZOO_TORCH ?= torch==2.14.1 torchvision==0.29.1

.PHONY: demo test test-zoo bench clean

$(BIN)/actlab: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[test,search,ray,export]"
	touch $@

demo: $(BIN)/actlab
	$(BIN)/actlab demo --workdir demo_out

$(ZOO)/bin/actlab: pyproject.toml
	$(PYTHON) -m venv $(ZOO)
	$(ZOO)/bin/pip install --quiet $(ZOO_TORCH) "timm>=1.0"
	$(ZOO)/bin/pip install --quiet -e ".[test,export]"
	touch $@

test: $(BIN)/actlab $(ZOO)/bin/actlab
	$(BIN)/python -m pytest -q tests
	$(ZOO)/bin/python -m pytest -q tests/test_zoo.py

test-zoo: $(ZOO)/bin/actlab
	$(ZOO)/bin/python -m pytest -q tests/test_zoo.py

clean:
	rm -rf $(VENV) $(ZOO) demo_out build src/*.egg-info
