"""(a) PETS on ContinuousCartPole: the return of each 200-step trial, trial 1 being random actions
(200 steps of them, over several short episodes; its return is their mean).

Configuration of (e), mbrl-lib's PETS tutorial: 5 Gaussian members (3 x 200, LeakyReLU), refitted for 50
epochs after every trial; CEM population 500, 5 iterations, elite ratio 0.1, horizon 15; 20 particles,
TS-infinity. mbrl-lib's tutorial reaches 186 at trial 4 and 200 from trial 5 on. Results are rewritten
after every trial, so a run cut short keeps what it measured.

    python benchmarks/pets_cartpole.py --seeds 0 1 2 --trials 15 [--threads 1]
    python benchmarks/pets_cartpole.py --seeds 1 --trials 5 --name pets_cartpole_s1   # a seed per core, then
    python benchmarks/pets_cartpole.py --merge pets_cartpole_s0 pets_cartpole_s1 pets_cartpole_s2
    python benchmarks/pets_cartpole.py --optimizer icem --population 100 --iterations 3 \\
        --name pets_cartpole_icem
    python benchmarks/pets_cartpole.py --seeds 0 --trials 15 --device cuda \\
        --name pets_cartpole_gpu_s0  # a GPU
"""

from __future__ import annotations

import argparse
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from common import (
    RESULTS,
    describe_device,
    load_result,
    merged_runs,
    read_results,
    results_name,
    shared_settings,
    write_results,
)

import modelrl
from modelrl.planning.optimizers import OPTIMIZERS

TRIAL = 200


def planner_overrides(args) -> dict:
    overrides = {"optimizer": args.optimizer, "population": args.population, "iterations": args.iterations,
                 "horizon": args.horizon, "particles": args.particles, "model_activation": "leaky_relu"}
    if args.optimizer == "icem":
        overrides.update(noise_beta=args.noise_beta, icem_elites=args.icem_elites)
    return overrides


def evaluations_per_step(args) -> int:
    """Sequences one planning step evaluates (each with `particles` rollouts), counted on an agent of its
    own: planning with a training agent would draw from its generator and reset its env."""
    agent = modelrl.make_agent("pets", env="ContinuousCartPole-v0", seed=0, device=args.device,
                               **planner_overrides(args))
    obs, _ = agent.env.reset(seed=0)
    mpc = agent.planners[True]
    mpc.plan(lambda actions: agent.objective(torch.as_tensor(obs), actions))
    return mpc.last.evaluations


def run_seed(seed: int, args, record: dict) -> None:
    agent = modelrl.make_agent("pets", env="ContinuousCartPole-v0", seed=seed, random_steps=TRIAL,
                               device=args.device, **planner_overrides(args))
    record["device"] = describe_device(agent.device)
    entry = {"seed": seed, "returns": [], "trial_seconds": [], "plan_seconds": [], "fit_seconds": []}
    record["runs"].append(entry)
    for trial in range(args.trials):
        started, fit_before = time.perf_counter(), agent.trainer.fit_seconds
        episodes = agent.episodes
        if trial == 0:  # 200 random steps, as mbrl-lib collects them (episodes restart when they end)
            agent.learn(total_steps=TRIAL)
            agent.abandon_episode()
            trial_return = float(np.mean(agent.episode_returns[episodes:] or [agent.env_steps]))
        else:
            agent.learn(episodes=1)
            trial_return = agent.episode_returns[-1]
        metrics = agent.metrics()
        entry["returns"].append(trial_return)
        entry["trial_seconds"].append(round(time.perf_counter() - started, 2))
        entry["plan_seconds"].append(round(metrics["plan_seconds"], 4) if trial else None)
        entry["fit_seconds"].append(round(agent.trainer.fit_seconds - fit_before, 2))
        if trial == 1 and "evaluations_per_step" not in record:
            record["evaluations_per_step"] = evaluations_per_step(args)
        print(f"seed {seed} trial {trial + 1}: return {entry['returns'][-1]:.0f} "
              f"({entry['trial_seconds'][-1]:.0f} s)", flush=True)
        summarize(record)
        write_results(args.name, record)


def summarize(record: dict) -> None:
    runs = record["runs"]
    longest = max(len(r["returns"]) for r in runs)
    record["mean_return_per_trial"] = [
        float(np.mean([r["returns"][t] for r in runs if len(r["returns"]) > t])) for t in range(longest)]
    record["first_trial_at_200"] = {
        str(r["seed"]): next((t + 1 for t, v in enumerate(r["returns"]) if v >= 200), None) for r in runs}
    plans = [p for r in runs for p in r["plan_seconds"] if p is not None]
    record["plan_seconds_median"] = float(np.median(plans)) if plans else None


def plot(record: dict, name: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for run in record["runs"]:
        ax.plot(range(1, len(run["returns"]) + 1), run["returns"], marker="o", alpha=0.6,
                label=f"seed {run['seed']}")
    ax.plot(range(1, len(record["mean_return_per_trial"]) + 1), record["mean_return_per_trial"],
            color="black", linewidth=2, label="mean")
    ax.axhline(200, color="grey", linestyle=":")
    ax.set(xlabel="trial (200 steps; trial 1 random)", ylabel="return",
           title=f"PETS, ContinuousCartPole ({record['config']['optimizer']}, "
                 f"{record.get('evaluations_per_step', '?')} sequences/step)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto", help="torch device: auto (CUDA when present), cpu, cuda")
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="cem")
    parser.add_argument("--population", type=int, default=500)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--horizon", type=int, default=15)
    parser.add_argument("--particles", type=int, default=20)
    parser.add_argument("--noise-beta", type=float, default=2.0)
    parser.add_argument("--icem-elites", type=int, default=10)
    parser.add_argument("--name", type=results_name, default="pets_cartpole")
    parser.add_argument("--plot-only", action="store_true", help="redraw the plot from the saved JSON")
    parser.add_argument("--merge", nargs="+", type=results_name, metavar="NAME",
                        help="combine the runs of earlier results (one seed per process) into --name")
    parser.add_argument("--quick", action="store_true",
                        help="one seed, 2 trials, a small planner, written as NAME_quick")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.trials, args.population, args.iterations = args.seeds[:1], 2, 50, 2
        args.name += "_quick"
    if args.merge:
        parts, merged_from = read_results(args.merge, into=args.name)
        record = {**shared_settings(parts, args.merge, ("threads", "config", "device")),
                  "merged_from": merged_from, "runs": merged_runs(parts, args.merge, "runs")}
        record["evaluations_per_step"] = next((p["evaluations_per_step"] for p in parts
                                               if "evaluations_per_step" in p), None)
        summarize(record)
        write_results(args.name, record)
        plot(record, args.name)
        return
    if args.plot_only:
        plot(load_result(args.name), args.name)
        return
    torch.set_num_threads(args.threads)
    record = {"threads": args.threads, "config": planner_overrides(args), "runs": []}
    for seed in args.seeds:
        run_seed(seed, args, record)
        plot(record, args.name)
    plot(record, args.name)


if __name__ == "__main__":
    main()
