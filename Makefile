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

# One test process per core (pytest-xdist), one torch thread each. The slowest tests are listed at the end,
# so a test that grows is seen before the suite passes 10 minutes.
test: install
	$(BIN)/python -m pytest -q -n auto --durations=15

test-slow: install
	$(BIN)/python -m pytest -q -n auto -m slow

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
	$(BENCH)/alphazero_connect_four.py --moves 80000 --eval-every 20000 --games 100 $(QUICK)
	$(BENCH)/value_horizon.py --env Pendulum-v1 --threshold -200 --horizons 3 5 10 25 --steps 1000 \
		--eval-every 1000 --full-budget --name value_horizon_pendulum_budget $(QUICK)
	$(BENCH)/value_horizon.py --timing --env Pendulum-v1 --horizons 3 5 10 25 --values td critic --rounds 4 \
		--name value_horizon_pendulum $(QUICK)
	$(BENCH)/pets_vs_sac.py --env Pendulum-v1 --threshold -200 --eval-every 200 --steps 1200 --sac-steps 8000 \
		--learned-reward --dreamer --dreamer-steps 6000 --dreamer-set model_lr=3e-4 --dreamer-set actor_lr=1e-4 \
		--dreamer-set critic_lr=1e-4 --name dreamer_pendulum $(QUICK)
	$(BENCH)/dreamer_speed.py --rounds 3 --updates 10 $(QUICK)
	$(BENCH)/dreamer_dmc.py --env dmc/cartpole-swingup-v0 --threshold 500 --steps 100000 --train-ratio 64 \
		--eval-every 5000 --set model_lr=3e-4 --set actor_lr=1e-4 --set critic_lr=1e-4 \
		--name dreamer_dmc_cartpole_swingup_tr64_lr3x $(QUICK)
	$(BENCH)/tdmpc2_speed.py --rounds 3 --updates 20 --plans 20 $(QUICK)
	$(BENCH)/tdmpc2_dmc.py --name tdmpc2_dmc_cartpole_swingup $(QUICK)
	$(BENCH)/pets_halfcheetah.py --minutes 32 --name pets_halfcheetah_clip $(QUICK)
	$(BENCH)/mbpo_hopper.py --minutes 60 $(QUICK)
	$(MAKE) results-table

benchmarks-quick:
	$(MAKE) benchmarks QUICK=--quick

# benchmarks/RESULTS.md from the JSONs in benchmarks/results/
results-table: install
	$(BIN)/python benchmarks/results_table.py

clean:
	rm -rf $(VENV) runs .pytest_cache
