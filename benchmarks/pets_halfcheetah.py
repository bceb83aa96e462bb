"""(d) PETS on HalfCheetah-v5 in a CPU-sized configuration, for as many 1,000-step episodes as a time
budget allows; plus the time of one planning step in the paper's configuration.

CPU-sized (say so wherever quoted): 5 Gaussian members of 4 x 200 (SiLU), iCEM with population 100 and 3
iterations, horizon 15, 5 particles, TS-infinity, refit every 250 steps (at most 25 epochs). The paper's
(Chua et al. 2018): CEM population 500, 5 iterations, horizon 30, 20 particles. The known reward is the
mean x velocity over the step minus 0.1 |a|^2 (see modelrl.envs.known).

    python benchmarks/pets_halfcheetah.py --minutes 60
"""

from __future__ import annotations

import argparse
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from common import RESULTS, results_name, write_results

import modelrl

ENV = "HalfCheetah-v5"
CPU_SIZED = {"optimizer": "icem", "population": 100, "iterations": 3, "horizon": 15, "particles": 5,
             "model_layers": 4, "model_hidden_size": 200, "model_activation": "silu", "train_every": 250,
             "model_max_epochs": 25, "model_patience": 5, "model_holdout_ratio": 0.1, "model_batch_size": 256,
             "random_steps": 1000}
PAPER = {"optimizer": "cem", "population": 500, "iterations": 5, "horizon": 30, "particles": 20,
         "model_layers": 4, "model_hidden_size": 200, "model_activation": "silu"}


def time_plan(overrides: dict, calls: int = 3) -> float:
    """Median seconds of one planning step (weights untrained: compute does not depend on them)."""
    agent = modelrl.make_agent("pets", env=ENV, seed=0, **overrides)
    agent.trainer.fits = 1  # plan with the untrained ensemble
    obs, _ = agent.env.reset(seed=0)
    agent.act(obs)
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        agent.act(obs)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--name", type=results_name, default="pets_halfcheetah",
                        help="results/<name>.json and .png")
    parser.add_argument("--quick", action="store_true", help="one minute, written as NAME_quick")
    args = parser.parse_args()
    if args.quick:
        args.minutes = 1
        args.name += "_quick"
    torch.set_num_threads(args.threads)
    record = {"env": ENV, "threads": args.threads, "seed": args.seed, "cpu_config": CPU_SIZED,
              "paper_config": PAPER, "budget_minutes": args.minutes}
    record["paper_plan_seconds"] = round(time_plan(PAPER), 2)
    record["cpu_plan_seconds"] = round(time_plan(CPU_SIZED), 3)
    print(f"planning step: paper config {record['paper_plan_seconds']} s, "
          f"CPU config {record['cpu_plan_seconds']} s", flush=True)
    agent = modelrl.make_agent("pets", env=ENV, seed=args.seed, **CPU_SIZED)
    record.update(episode_returns=[], env_steps=[], episode_seconds=[])
    started = time.perf_counter()
    while time.perf_counter() - started < args.minutes * 60:
        before = time.perf_counter()
        agent.learn(episodes=1)
        record["episode_returns"].append(round(agent.episode_returns[-1], 1))
        record["env_steps"].append(agent.env_steps)
        record["episode_seconds"].append(round(time.perf_counter() - before, 1))
        planned = [s for s, n in zip(record["episode_seconds"], record["env_steps"], strict=True)
                   if n > CPU_SIZED["random_steps"]]
        record["seconds_per_step"] = round(float(np.mean(planned)) / 1000, 3) if planned else None
        record["fit_seconds"] = round(agent.trainer.fit_seconds, 1)
        print(f"episode {agent.episodes}: return {agent.episode_returns[-1]:.1f} "
              f"({record['episode_seconds'][-1]:.0f} s)", flush=True)
        write_results(args.name, record)
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(record["env_steps"], record["episode_returns"], marker="o")
        ax.set(xlabel="real env steps", ylabel="episode return",
               title="PETS on HalfCheetah-v5 (CPU-sized: iCEM 100x3, H=15, P=5); "
                     f"{record['seconds_per_step']} s/step")
        fig.tight_layout()
        fig.savefig(RESULTS / f"{args.name}.png", dpi=110)
        plt.close(fig)


if __name__ == "__main__":
    main()
