"""(c) PlaNet's oracle check: its planner, CEM over action sequences (modelrl.planning's MPC), given the true
simulator instead of a learned model. PlaNet (Hafner et al. 2019) reports 850 on cartpole swingup this way,
an upper bound for what the planner can reach with a perfect model.

    python benchmarks/planet_oracle.py --env dmc/cartpole-swingup-v0 --episodes 1 --population 100 \\
        --iterations 5 --name planet_oracle_cartpole_swingup
    python benchmarks/planet_oracle.py --quick     # 20 steps of a tiny planner, a smoke test

Each candidate sequence is scored by restoring a private copy of the env to the real env's exact state (the
DMC env's plain state: physics, step count, the task's random stream) and stepping it; the copy is
sequential Python, so the population is smaller than PlaNet's 1,000 (say which with `--population`).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from common import write_results

from modelrl.envs import make_env
from modelrl.planning.mpc import MPC


class SimulatorReturns:
    """The returns of candidate sequences `(N, H, A)` from the real env's current state, on a copy."""

    def __init__(self, env_id: str):
        self.copy = make_env(env_id).unwrapped

    def __call__(self, state: dict, sequences: torch.Tensor) -> torch.Tensor:
        returns = np.zeros(len(sequences))
        for i, sequence in enumerate(sequences.cpu().numpy()):
            self.copy.set_plain_state(state)
            for action in sequence:
                _, reward, terminated, truncated, _ = self.copy.step(action)
                returns[i] += reward
                if terminated or truncated:
                    break
        return torch.as_tensor(returns, dtype=torch.float32)


def episode(env_id: str, seed: int, horizon: int, iterations: int, population: int,
            steps: int | None) -> dict:
    env = make_env(env_id)
    simulator = SimulatorReturns(env_id)
    mpc = MPC(env.action_space, horizon, "cem", {"iterations": iterations, "population": population,
                                                  "elite_ratio": 0.1, "alpha": 0.0},
              generator=torch.Generator().manual_seed(seed))
    env.reset(seed=seed)
    total, length, started, done = 0.0, 0, time.perf_counter(), False
    while not done and (steps is None or length < steps):
        state = env.unwrapped.get_plain_state()
        action = mpc.act(lambda sequences, state=state: simulator(state, sequences))
        _, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        length += 1
        done = terminated or truncated
        if length % 50 == 0:
            print(f"seed {seed}: {length} steps, return {total:.1f} ({time.perf_counter() - started:.0f} s)",
                  flush=True)
    return {"seed": seed, "return": round(total, 2), "length": length,
            "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="dmc/cartpole-swingup-v0")
    parser.add_argument("--episodes", type=int, default=1)
    parser.add_argument("--horizon", type=int, default=12)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--population", type=int, default=1000)
    parser.add_argument("--name", default="planet_oracle_cartpole_swingup")
    parser.add_argument("--quick", action="store_true", help="20 steps, population 20, 2 iterations")
    args = parser.parse_args()
    torch.set_num_threads(1)
    steps = None
    if args.quick:
        args.population, args.iterations, steps, args.episodes = 20, 2, 20, 1
        args.name += "_quick"
    runs = [episode(args.env, seed, args.horizon, args.iterations, args.population, steps)
            for seed in range(args.episodes)]
    returns = [run["return"] for run in runs]
    record = {"env_id": args.env, "planner": {"optimizer": "cem", "horizon": args.horizon,
                                              "iterations": args.iterations, "population": args.population,
                                              "elite_ratio": 0.1, "alpha": 0.0},
              "episodes": runs, "mean_return": round(float(np.mean(returns)), 2),
              "published": "PlaNet (Hafner et al. 2019): CEM with the true simulator, cartpole swingup 850"}
    print(f"mean return {record['mean_return']} over {len(runs)} episode(s)")
    write_results(args.name, record)


if __name__ == "__main__":
    main()
