# Two commands for a new user: `make demo` and `make test`.
# Both create .venv with the interpreter named by PYTHON and install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
EXTRAS ?= all,test

.PHONY: demo test bench install lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"

demo:
	$(MAKE) install EXTRAS=all
	$(BIN)/zeronn demo

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

test:
	$(MAKE) install EXTRAS="$(EXTRAS)"
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q

# A quick look: make bench BENCH_ARGS=--quick. OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE, when
# set, force a slower OpenBLAS kernel: unset for this command only (the report names the kernel).
# The peers: PyTorch (parity) and JAX (bench), both CPU builds.
BENCH_ARGS ?=
bench:
	$(MAKE) install EXTRAS=all,test,parity,bench
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
