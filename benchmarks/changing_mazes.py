"""Dyna-Q vs Dyna-Q+ when the maze changes: Sutton & Barto Figures 8.4 (blocking) and 8.5 (shortcut).

BlockingMaze-v0: the short gap closes after 1000 steps, 3000 steps in all. ShortcutMaze-v0: a shorter gap
opens after 3000 steps, 6000 in all. Cumulative reward (goals reached) vs time steps, mean of 30 runs.
Settings (the book gives none for these figures): n=10 planning steps, alpha=1.0 (the mazes are
deterministic), epsilon=0.1, gamma=0.95, kappa=1e-3.

    python benchmarks/changing_mazes.py [--runs 30]
"""

from __future__ import annotations

import argparse
import time

import matplotlib.pyplot as plt
import numpy as np
from common import RESULTS, write_results

import modelrl

STUDIES = {"BlockingMaze-v0": (3000, 1000), "ShortcutMaze-v0": (6000, 3000)}
SETTINGS = {"planning_steps": 10, "lr": 1.0, "epsilon": 0.1, "gamma": 0.95}
RECORD_EVERY = 20


def cumulative_reward(agent_id: str, env_id: str, steps: int, seed: int, kappa: float) -> np.ndarray:
    extra = {"kappa": kappa} if agent_id == "dyna-q-plus" else {}
    agent = modelrl.make_agent(agent_id, env=env_id, seed=seed, **SETTINGS, **extra)
    curve = []
    for _ in range(steps // RECORD_EVERY):
        agent.learn(RECORD_EVERY)
        curve.append(sum(agent.episode_returns))  # the goal is the only reward, and it ends an episode
    return np.array(curve)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--kappa", type=float, default=1e-3)
    parser.add_argument("--quick", action="store_true", help="3 runs, written as changing_mazes_quick")
    args = parser.parse_args()
    if args.quick:
        args.runs = 3
    name = "changing_mazes_quick" if args.quick else "changing_mazes"

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    results = {}
    for ax, (env_id, (steps, change_at)) in zip(axes, STUDIES.items()):
        results[env_id] = {}
        x = np.arange(1, steps // RECORD_EVERY + 1) * RECORD_EVERY
        for agent_id in ["dyna-q", "dyna-q-plus"]:
            started = time.perf_counter()
            curves = np.array([cumulative_reward(agent_id, env_id, steps, s, args.kappa)
                               for s in range(args.runs)])
            mean = curves.mean(axis=0)
            at_change = mean[change_at // RECORD_EVERY - 1]
            results[env_id][agent_id] = {
                "final_cumulative_reward_mean": float(mean[-1]),
                "final_cumulative_reward_std": float(curves[:, -1].std()),
                "cumulative_reward_at_change": float(at_change),
                "reward_after_change": float(mean[-1] - at_change),
                "seconds": time.perf_counter() - started,
                "curve_every_20_steps": [round(float(v), 2) for v in mean],
            }
            ax.plot(x, mean, label=agent_id)
        q, plus = (results[env_id][a]["reward_after_change"] for a in ["dyna-q", "dyna-q-plus"])
        results[env_id]["after_change_ratio_plus_to_q"] = plus / q
        print(f"{env_id}: reward after the change: Dyna-Q {q:.1f}, Dyna-Q+ {plus:.1f} (x{plus / q:.2f}); "
              f"final: Dyna-Q {results[env_id]['dyna-q']['final_cumulative_reward_mean']:.1f}, "
              f"Dyna-Q+ {results[env_id]['dyna-q-plus']['final_cumulative_reward_mean']:.1f}")
        ax.axvline(change_at, color="grey", linestyle=":", label="maze changes")
        ax.set_title(f"{env_id} ({args.runs} runs)")
        ax.set_xlabel("time steps")
        ax.set_ylabel("cumulative reward")
        ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=120)
    write_results(name, {
        "settings": {**SETTINGS, "kappa": args.kappa, "runs": args.runs, "plan_untried_actions": True},
        "results": results,
        "plot": "benchmarks/results/changing_mazes.png",
    })


if __name__ == "__main__":
    main()
