"""(c) PlaNet's oracle check: its planner, CEM over action sequences (horizon 12, 10 iterations, 1,000
candidates, the best 100 refitted, no momentum), given the true simulator instead of a learned model. PlaNet
(Hafner et al. 2019) reports 850 on cartpole swingup this way: the most its planner can reach with a
perfect model, and so a check of the planner itself.

    python benchmarks/planet_oracle.py --episodes 2
    python benchmarks/planet_oracle.py --quick     # 20 steps of a small planner, a smoke test

PlaNet repeats each action 8 times on cartpole (its Table of action repeats), so its 12 planned steps look
0.96 s ahead; at our DMC envs' default repeat of 2 the same planner sees 0.24 s and does not swing the pole
up (115.7 after 300 of 500 steps, measured). `--action-repeat` sets it (default 8).

The simulator is `mpc`'s batched exact model of the task (`modelrl.planning.env_copy.RolloutObjective`):
MuJoCo's `rollout` steps all candidates from the observed state in C, each action held for the action
repeat, with the suite's reward of every physics step. Episodes start from the protocol's
evaluation seeds (`evaluation_seed(0, 0, e)`), planned deterministically (CEM's final mean).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import RESULTS, results_name, write_results

import modelrl
from modelrl.agents.base import evaluation_seed
from modelrl.agents.planet import PlaNetConfig
from modelrl.envs import make_env
from modelrl.threads import set_threads

PUBLISHED = "PlaNet (Hafner et al. 2019): CEM with the true simulator, cartpole swingup 850"


def episode(agent, env_id: str, env_kwargs: dict, index: int, steps: int | None) -> dict:
    env = make_env(env_id, **env_kwargs)
    obs, _ = env.reset(seed=evaluation_seed(0, 0, index))
    agent.on_reset(True)
    total, length, started, done = 0.0, 0, time.perf_counter(), False
    while not done and (steps is None or length < steps):
        obs, reward, terminated, truncated, _ = env.step(agent.act(obs, deterministic=True))
        total += float(reward)
        length += 1
        done = terminated or truncated
        if length % 25 == 0:
            seconds = time.perf_counter() - started
            print(f"episode {index}: {length} steps, return {total:.1f} ({seconds:.0f} s)", flush=True)
    return {"episode": index, "return": round(total, 2), "length": length,
            "seconds": round(time.perf_counter() - started, 1)}


def plot(record: dict, name: str) -> None:
    """Each episode's return beside PlaNet's published figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    returns = [run["return"] for run in record["episodes"]]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.bar([f"episode {run['episode']}" for run in record["episodes"]], returns, color="tab:blue")
    ax.axhline(850, color="black", linestyle="--", label="PlaNet's oracle (850)")
    ax.set_ylabel("return (1,000 physics steps: at most 1,000)")
    planner = record["planner"]
    ax.set_title(f"CEM with the true simulator, {record['env_id']}\nH={planner['horizon']}, "
                 f"{planner['iterations']} x {planner['population']}, action repeat "
                 f"{record['env_kwargs']['action_repeat']}", fontsize=9)
    ax.set_ylim(0, 1000)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=110)
    plt.close(fig)


def main() -> None:
    planet = PlaNetConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="dmc/cartpole-swingup-v0")
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--action-repeat", type=int, default=8, help="PlaNet's for cartpole")
    parser.add_argument("--horizon", type=int, default=planet.horizon)
    parser.add_argument("--iterations", type=int, default=planet.iterations)
    parser.add_argument("--population", type=int, default=planet.population)
    parser.add_argument("--name", type=results_name, default="planet_oracle_cartpole_swingup")
    parser.add_argument("--quick", action="store_true", help="20 steps, population 50, 2 iterations")
    args = parser.parse_args()
    set_threads(1)
    steps = None
    if args.quick:
        args.population, args.iterations, steps, args.episodes = 50, 2, 20, 1
        args.name += "_quick"
    settings = {"optimizer": "cem", "horizon": args.horizon, "iterations": args.iterations,
                "population": args.population, "elite_ratio": planet.elite_ratio, "alpha": planet.alpha}
    env_kwargs = {"action_repeat": args.action_repeat}
    agent = modelrl.make_agent("mpc", env=args.env, seed=0, env_kwargs=env_kwargs, **settings)
    runs = [episode(agent, args.env, env_kwargs, index, steps) for index in range(args.episodes)]
    returns = [run["return"] for run in runs]
    record = {"env_id": args.env, "env_kwargs": env_kwargs, "planner": settings, "episodes": runs,
              "mean_return": round(float(np.mean(returns)), 2), "published": PUBLISHED}
    print(f"mean return {record['mean_return']} over {len(runs)} episode(s)")
    write_results(args.name, record)
    plot(record, args.name)


if __name__ == "__main__":
    main()
