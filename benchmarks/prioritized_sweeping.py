"""Prioritized sweeping vs Dyna-Q on mazes of growing size (Sutton & Barto Example 8.4).

DynaMaze-v0 enlarged by `scale` (each cell becomes scale x scale cells; 47, 188, 423, ... free states).
Measure: Q updates (real and planned) until the greedy policy's path is within 20% of the shortest one
(epsilon-greedy agents can settle on a path a few steps longer; exact optimality would measure that luck).
n=5, epsilon=0.1, gamma=0.95, theta=1e-4; the median over seeds, heavy tails being common. Step sizes
alpha=1.0 (the mazes are deterministic, so one backup sets a value exactly) and alpha=0.5, where every
value needs several backups and prioritized sweeping spends its updates polishing them.

    python benchmarks/prioritized_sweeping.py [--seeds 10] [--scales 1 2 3 4 5] [--lrs 1.0 0.5]
"""

from __future__ import annotations

import argparse
import time

import matplotlib.pyplot as plt
import numpy as np
from common import RESULTS, write_results

import modelrl

SETTINGS = {"planning_steps": 5, "epsilon": 0.1, "gamma": 0.95}
TOLERANCE = 1.2


def updates_until_near_optimal(agent_id: str, scale: int, seed: int, budget: int, lr: float) -> dict:
    extra = {"theta": 1e-4} if agent_id == "prioritized-sweeping" else {}
    agent = modelrl.make_agent(agent_id, env="DynaMaze-v0", seed=seed, env_kwargs={"scale": scale}, lr=lr,
                               **SETTINGS, **extra)
    shortest = agent.env.unwrapped.shortest_path_length()
    started, checked_at = time.perf_counter(), -1
    solved = False
    while agent.env_steps < budget and not solved:
        agent.learn(1)
        if agent.updates != checked_at:  # the greedy policy only changes when Q does
            checked_at = agent.updates
            length = agent.greedy_path_length()
            solved = length is not None and length <= TOLERANCE * shortest
    return {"updates": agent.updates, "env_steps": agent.env_steps, "solved": solved,
            "seconds": time.perf_counter() - started, "states": int((~agent.env.unwrapped.walls).sum())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--lrs", type=float, nargs="+", default=[1.0, 0.5])
    parser.add_argument("--budget", type=int, default=300_000, help="real env steps before a run gives up")
    parser.add_argument("--quick", action="store_true",
                        help="2 seeds on the two smallest mazes, written as prioritized_sweeping_quick")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.scales = 2, args.scales[:2]
    name = "prioritized_sweeping_quick" if args.quick else "prioritized_sweeping"

    agents = ["dyna-q", "prioritized-sweeping"]
    results: dict[str, dict] = {}
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for lr, style in zip(args.lrs, ["-", "--", ":"]):
        by_agent = results[f"lr={lr}"] = {agent: {} for agent in agents}
        for scale in args.scales:
            for agent_id in agents:
                runs = [updates_until_near_optimal(agent_id, scale, seed, args.budget, lr)
                        for seed in range(args.seeds)]
                updates = np.array([r["updates"] for r in runs])
                by_agent[agent_id][str(scale)] = {
                    "states": runs[0]["states"],
                    "median_updates": float(np.median(updates)),
                    "mean_updates": float(updates.mean()),
                    "median_env_steps": float(np.median([r["env_steps"] for r in runs])),
                    "solved": sum(r["solved"] for r in runs),
                    "seconds": sum(r["seconds"] for r in runs),
                    "runs": runs,
                }
            dq, ps = (by_agent[a][str(scale)] for a in agents)
            ratio = dq["median_updates"] / ps["median_updates"]
            by_agent.setdefault("ratio_dyna_q_to_sweeping", {})[str(scale)] = ratio
            print(f"lr={lr} scale {scale} ({dq['states']} states): "
                  f"median updates Dyna-Q {dq['median_updates']:.0f}, "
                  f"prioritized sweeping {ps['median_updates']:.0f} (Dyna-Q needs x{ratio:.1f}); "
                  f"solved {dq['solved']}/{args.seeds} and {ps['solved']}/{args.seeds}", flush=True)
        for agent_id, colour in zip(agents, ["tab:blue", "tab:orange"]):
            rows = [by_agent[agent_id][str(s)] for s in args.scales]
            ax.plot([r["states"] for r in rows], [r["median_updates"] for r in rows], style, marker="o",
                    color=colour, label=f"{agent_id}, alpha={lr}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("gridworld size (free states)")
    ax.set_ylabel(f"Q updates until near-optimal (median of {args.seeds})")
    ax.set_title("Prioritized sweeping vs Dyna-Q (Example 8.4)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=120)
    write_results(name, {
        "settings": {**SETTINGS, "lrs": args.lrs, "theta": 1e-4, "tolerance": TOLERANCE, "seeds": args.seeds,
                     "budget": args.budget},
        "results": results,
        "plot": "benchmarks/results/prioritized_sweeping.png",
    })


if __name__ == "__main__":
    main()
