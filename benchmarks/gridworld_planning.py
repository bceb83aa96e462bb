"""The GridWorld exercise: real env steps until the greedy policy is optimal, n = 0, 5, 10, 50 planning steps.

GridWorld-v0 (5x5, obstacles at (2,2), (2,3), (3,2); -1 per step, +100 at the goal; optimal path 8 steps),
alpha=0.1, epsilon=0.1, gamma=0.95, 30 seeds; each n's ratio to Q-learning (n=0) in the same run.

    python benchmarks/gridworld_planning.py [--seeds 30]
"""

from __future__ import annotations

import argparse
import time

import matplotlib.pyplot as plt
import numpy as np
from common import RESULTS, write_results

import modelrl

OPTIMAL = 8


def steps_until_optimal(planning_steps: int, seed: int, budget: int) -> tuple[int, int]:
    agent_id = "q-learning" if planning_steps == 0 else "dyna-q"
    extra = {} if planning_steps == 0 else {"planning_steps": planning_steps}
    agent = modelrl.make_agent(agent_id, env="GridWorld-v0", seed=seed, **extra)
    while agent.env_steps < budget:
        agent.learn(1)
        if agent.greedy_path_length() == OPTIMAL:
            break
    return agent.env_steps, agent.updates


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--planning-steps", type=int, nargs="+", default=[0, 5, 10, 50])
    parser.add_argument("--budget", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true",
                        help="3 seeds, a 2,000-step budget, written as gridworld_planning_quick")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.budget = 3, 2000
    name = "gridworld_planning_quick" if args.quick else "gridworld_planning"

    results = {}
    for n in args.planning_steps:
        started = time.perf_counter()
        runs = [steps_until_optimal(n, seed, args.budget) for seed in range(args.seeds)]
        steps = np.array([r[0] for r in runs])
        results[n] = {
            "steps": steps.tolist(),
            "mean": float(steps.mean()),
            "median": float(np.median(steps)),
            "std": float(steps.std()),
            "mean_q_updates": float(np.mean([r[1] for r in runs])),
            "seeds_within_budget": int((steps < args.budget).sum()),
            "seconds": time.perf_counter() - started,
        }
    baseline = results[args.planning_steps[0]]
    lines = [("| n | mean real steps | median | std | ratio to Q-learning (mean) | ratio (median) "
              "| mean Q updates |"),
             "|---|---|---|---|---|---|---|"]
    for n, r in results.items():
        r["ratio_to_q_learning_mean"] = r["mean"] / baseline["mean"]
        r["ratio_to_q_learning_median"] = r["median"] / baseline["median"]
        lines.append(f"| {n} | {r['mean']:.1f} | {r['median']:.0f} | {r['std']:.1f} | "
                     f"{r['ratio_to_q_learning_mean']:.3f} | {r['ratio_to_q_learning_median']:.3f} | "
                     f"{r['mean_q_updates']:.0f} |")
    table = "\n".join(lines)
    print(table)

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.boxplot([results[n]["steps"] for n in results], tick_labels=[str(n) for n in results])
    ax.set_yscale("log")
    ax.set_xlabel("planning steps n (0 = Q-learning)")
    ax.set_ylabel("real env steps until the greedy policy is optimal")
    ax.set_title(f"GridWorld-v0, {args.seeds} seeds")
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=120)
    write_results(name, {
        "settings": {"seeds": args.seeds, "lr": 0.1, "epsilon": 0.1, "gamma": 0.95, "budget": args.budget},
        "results": {str(n): r for n, r in results.items()},
        "table": table,
        "plot": "benchmarks/results/gridworld_planning.png",
    })


if __name__ == "__main__":
    main()
