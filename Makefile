# `make demo` and `make test` work on a fresh machine: they create .venv and install first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The local CPU wheel of torch must go in before anything that depends on torch pulls a CUDA build.
TORCH  := torch==2.13.0

.PHONY: install demo test test-slow lint benchmarks benchmarks-quick results-table clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[dev,mujoco,dmc,render,ray]"
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

# Every study, one thread each (hours on one core: the sample-efficiency studies dominate). QUICK=--quick
# (`make benchmarks-quick`) runs each with a small budget, written as NAME_quick, which git ignores.
BENCH := OMP_NUM_THREADS=1 $(BIN)/python benchmarks
QUICK ?=

benchmarks: install
	$(BIN)/pip install --quiet -e ".[dev,mujoco,dmc,render,ray,bench]"
	$(BENCH)/dyna_maze.py $(QUICK)
	$(BENCH)/gridworld_planning.py $(QUICK)
	$(BENCH)/changing_mazes.py $(QUICK)
	$(BENCH)/prioritized_sweeping.py $(QUICK)
	$(BENCH)/pets_cartpole.py --optimizer icem --population 200 --iterations 3 --trials 6 --name pets_cartpole_icem $(QUICK)
	$(BENCH)/deep_dyna_q_cartpole.py $(QUICK)
	$(BENCH)/mbpo_vs_sac.py --env InvertedPendulum-v5 --threshold 950 --mbpo-steps 4000 --sac-steps 20000 \
		--name mbpo_vs_sac_inverted_pendulum $(QUICK)
	$(BENCH)/mbpo_vs_sac.py --env Pendulum-v1 --threshold -200 --mbpo-steps 3000 --sac-steps 8000 \
		--set target_entropy=none --set rollout_schedule=0,0,10,10 --name mbpo_vs_sac_pendulum $(QUICK)
	$(BENCH)/pets_vs_sac.py --env Pendulum-v1 --threshold -200 --eval-every 200 --steps 1200 --sac-steps 8000 \
		--learned-reward --name pets_vs_sac_pendulum $(QUICK)
	$(BENCH)/pets_vs_sac.py --env InvertedPendulum-v5 --threshold 950 --eval-every 250 --steps 2000 \
		--sac-steps 20000 --set planning_reward=shaped --set horizon=15 --set noise_beta=0.5 \
		--set random_steps=250 --name pets_vs_sac_inverted_pendulum $(QUICK)
	$(BENCH)/pets_speed.py $(QUICK)
	$(BENCH)/sac_speed.py $(QUICK)
	$(BENCH)/alphazero_tictactoe.py $(QUICK)
	$(BENCH)/alphazero_tictactoe.py --agent muzero --moves 60000 --set simulations=25 $(QUICK)
	$(BENCH)/muzero_cartpole.py $(QUICK)
	$(BENCH)/mcts_speed.py
	$(BENCH)/planet_oracle.py $(QUICK)
	$(BENCH)/ray_sweep.py $(QUICK)
	$(BENCH)/selfplay_throughput.py $(QUICK)
	$(MAKE) results-table

benchmarks-quick:
	$(MAKE) benchmarks QUICK=--quick

# benchmarks/RESULTS.md from the JSONs in benchmarks/results/
results-table: install
	$(BIN)/python benchmarks/results_table.py

clean:
	rm -rf $(VENV) runs .pytest_cache
