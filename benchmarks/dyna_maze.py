"""Sutton & Barto Figure 8.2: Dyna-Q on DynaMaze with n = 0, 5, 50 planning steps (and the study's speed).

alpha=0.1, epsilon=0.1, gamma=0.95, 50 episodes, averaged over 30 runs. The book: n=50 is near-optimal
by about the 3rd episode, n=0 needs 25 or more. The whole study runs in one process on one core; its
wall time is the speed figure (issue 2, benchmark e), beside a plain NumPy-table Dyna-Q of the same
algorithm timed in the same run.

    python benchmarks/dyna_maze.py [--runs 30] [--episodes 50]
"""

from __future__ import annotations

import argparse
import time

import matplotlib.pyplot as plt
import numpy as np
from common import RESULTS, first_index, write_results
from sb3_reference import median_or_none

import modelrl

OPTIMAL = 14


def numpy_table_dyna_q(planning_steps: int, episodes: int, seed: int) -> tuple[int, float]:
    """The textbook loop with a NumPy Q-table, for the speed ratio only: (Q updates, seconds)."""
    env = modelrl.make_env("DynaMaze-v0").unwrapped
    rng = np.random.default_rng(seed)
    q = np.zeros((env.observation_space.n, env.action_space.n))
    model: dict[tuple[int, int], tuple[float, int, bool]] = {}
    tried: dict[int, list[int]] = {}  # state -> actions tried there, to draw a state and then an action
    updates, started = 0, time.perf_counter()
    for _ in range(episodes):
        state, _ = env.reset(seed=seed)
        done = False
        while not done:
            if rng.random() < 0.1:
                action = int(rng.integers(4))
            else:
                action = int(rng.choice(np.flatnonzero(q[state] == q[state].max())))
            next_state, reward, done, _, _ = env.step(action)
            q[state, action] += 0.1 * (reward + 0.95 * q[next_state].max() * (not done) - q[state, action])
            if (state, action) not in model:
                tried.setdefault(state, []).append(action)
            model[(state, action)] = (reward, next_state, done)
            states = list(tried)
            for u_state, u_action in rng.random((planning_steps, 2)):  # one call for all draws, as ours
                s = states[int(u_state * len(states))]
                a = tried[s][int(u_action * len(tried[s]))]
                r, s2, d = model[(s, a)]
                q[s, a] += 0.1 * (r + 0.95 * q[s2].max() * (not d) - q[s, a])
            updates += 1 + planning_steps
            state = next_state
    return updates, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--planning-steps", type=int, nargs="+", default=[0, 5, 50])
    parser.add_argument("--quick", action="store_true",
                        help="3 runs of 10 episodes, written as dyna_maze_quick")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.episodes = 3, 10
    name = "dyna_maze_quick" if args.quick else "dyna_maze"

    lengths, seconds, updates = {}, {}, {}
    study_started = time.perf_counter()
    for n in args.planning_steps:
        runs = []
        started = time.perf_counter()
        updates[n] = 0
        for seed in range(args.runs):
            agent = modelrl.make_agent("dyna-q", env="DynaMaze-v0", seed=seed, planning_steps=n,
                                       lr=0.1, epsilon=0.1, gamma=0.95)
            agent.learn(episodes=args.episodes)
            runs.append(agent.episode_lengths)
            updates[n] += agent.updates
        seconds[n] = time.perf_counter() - started
        lengths[n] = np.array(runs)
    study_seconds = time.perf_counter() - study_started

    baseline_updates, baseline_seconds = numpy_table_dyna_q(50, args.episodes, seed=0)
    ours = modelrl.make_agent("dyna-q", env="DynaMaze-v0", seed=0, planning_steps=50)
    started = time.perf_counter()
    ours.learn(episodes=args.episodes)
    ours_seconds = time.perf_counter() - started
    ours_rate, baseline_rate = ours.updates / ours_seconds, baseline_updates / baseline_seconds

    summary = {}
    for n, runs in lengths.items():
        mean = runs.mean(axis=0)
        plateau = mean[-10:].mean()
        first_optimal = [first_index(run, lambda v: v == OPTIMAL) for run in runs]
        reached = [e for e in first_optimal if e is not None]
        summary[str(n)] = {
            "mean_steps_per_episode": [round(float(v), 2) for v in mean],
            "mean_steps_last_10_episodes": float(plateau),
            # epsilon-greedy keeps the plateau above 14, so "near-optimal" is measured against the plateau
            "first_episode_mean_within_10pct_of_plateau": first_index(mean,
                                                                      lambda v, p=plateau: v <= 1.1 * p),
            "mean_first_episode_with_14_steps": float(np.mean(reached)) if reached else None,
            # runs that never walked 14 steps count as later than all others (censored, not dropped)
            "median_first_episode_with_14_steps": median_or_none(first_optimal),
            "runs_walking_14_steps": len(reached),
            "seconds": seconds[n],
            "q_updates": updates[n],
        }
        print(f"n={n:>2}: episodes 2-4 mean {np.round(mean[1:4], 1)} steps, "
              f"last 10 episodes {mean[-10:].mean():5.1f}, "
              "mean within 10% of it from episode "
              f"{summary[str(n)]['first_episode_mean_within_10pct_of_plateau']}, "
              "first 14-step episode (median over runs) "
              f"{summary[str(n)]['median_first_episode_with_14_steps']}, "
              f"{seconds[n]:.2f}s")
    print(f"whole study: {study_seconds:.2f}s in one process; Q updates/s: modelrl {ours_rate:,.0f}, "
          f"NumPy-table loop {baseline_rate:,.0f} (x{ours_rate / baseline_rate:.1f})")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    episodes = np.arange(2, args.episodes + 1)
    for n, runs in lengths.items():
        ax.plot(episodes, runs.mean(axis=0)[1:],
                label=f"{n} planning steps" + (" (direct RL only)" if n == 0 else ""))
    ax.axhline(OPTIMAL, color="grey", linestyle=":", label="optimal (14)")
    ax.set_ylim(0, 800)
    ax.set_xlabel("episodes")
    ax.set_ylabel(f"steps per episode (mean of {args.runs} runs)")
    ax.set_title("Dyna-Q on DynaMaze (Sutton & Barto Figure 8.2)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=120)

    write_results(name, {
        "settings": {"runs": args.runs, "episodes": args.episodes, "lr": 0.1, "epsilon": 0.1, "gamma": 0.95},
        "summary": summary,
        "speed": {
            "study_seconds_one_process": study_seconds,
            "q_updates_per_second": ours_rate,
            "numpy_table_baseline_updates_per_second": baseline_rate,
            "speedup_vs_numpy_table": ours_rate / baseline_rate,
        },
        "plot": "benchmarks/results/dyna_maze.png",
    })


if __name__ == "__main__":
    main()
