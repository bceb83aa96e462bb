# `make demo` and `make test` work on a fresh machine: they create .venv and install first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The local CPU wheel of torch must go in before anything that depends on torch pulls a CUDA build.
TORCH  := torch==2.13.0

.PHONY: install demo test test-slow lint benchmarks clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[dev,mujoco]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/modelrl demo

# The slowest tests are listed at the end, so a test that grows is seen before the suite passes 10 minutes.
test: install
	$(BIN)/python -m pytest -q --durations=15

test-slow: install
	$(BIN)/python -m pytest -q -m slow

lint: install
	$(BIN)/ruff check modelrl tests benchmarks

benchmarks: install
	$(BIN)/pip install --quiet -e ".[dev,mujoco,bench]"
	$(BIN)/python benchmarks/dyna_maze.py
	$(BIN)/python benchmarks/gridworld_planning.py
	$(BIN)/python benchmarks/changing_mazes.py
	$(BIN)/python benchmarks/prioritized_sweeping.py
	$(BIN)/python benchmarks/pets_speed.py
	$(BIN)/python benchmarks/pets_cartpole.py

clean:
	rm -rf $(VENV) runs .pytest_cache
