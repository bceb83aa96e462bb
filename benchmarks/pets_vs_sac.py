"""(b, c) PETS against stable-baselines3 SAC in the same run: real env steps until a return threshold.

    python benchmarks/pets_vs_sac.py --env Pendulum-v1 --threshold -200 --steps 1000 --sac-steps 8000
    python benchmarks/pets_vs_sac.py --env InvertedPendulum-v5 --threshold 950 --steps 2000 \\
        --sac-steps 20000 --pets-eval separate --eval-every 250 --eval-episodes 2 --name pets_inverted_pendulum
    python benchmarks/pets_vs_sac.py --merge pets_ip_s0 pets_ip_s1 --name pets_ip   # one seed per process

SAC: default hyperparameters, deterministic evaluation every 1,000 steps, 10 episodes (the anchors'
protocol). PETS plans every step, so evaluating it costs as much as training; with `--pets-eval training`
its curve is the return of each training episode (the MPC policy it acts with; fixed-length Pendulum
episodes), with `--pets-eval separate` it is evaluated on a separate env every `--eval-every` steps.
"""

from __future__ import annotations

import argparse
import time

import matplotlib.pyplot as plt
import torch
from common import RESULTS, merged_runs, read_results, shared_settings, write_results
from sb3_reference import median_or_none, sac_curve, steps_to

import modelrl

PETS = {"optimizer": "icem", "population": 200, "iterations": 3, "horizon": 25, "particles": 10,
        "train_every": 50, "random_steps": 200}


def pets_curve(env_id: str, seed: int, args, overrides: dict) -> dict:
    agent = modelrl.make_agent("pets", env=env_id, seed=seed, **overrides)
    steps, returns, started = [], [], time.perf_counter()
    while agent.env_steps < args.steps:
        if args.pets_eval == "training":
            agent.learn(total_steps=args.steps - agent.env_steps, episodes=1)
            if not agent.episode_returns or agent._obs is not None:  # cut by the step budget
                break
            value = agent.episode_returns[-1]
        else:
            agent.learn(total_steps=args.eval_every)
            value = agent.evaluate(args.eval_episodes)["eval_return"]
        steps.append(agent.env_steps)
        returns.append(float(value))
        print(f"pets seed {seed}: {agent.env_steps} steps, return {value:.1f}", flush=True)
        if value >= args.threshold:
            break
    seconds = time.perf_counter() - started
    return {"seed": seed, "env_steps": steps, "eval_return": returns, "seconds": round(seconds, 1),
            "plan_seconds_per_step": round(agent.plan_seconds / max(1, agent.plans), 3) if agent.plans else None,
            "fit_seconds": round(agent.trainer.fit_seconds, 1), "fits": agent.trainer.fits}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--threshold", type=float, default=-200)
    parser.add_argument("--steps", type=int, default=1000, help="PETS's env step budget")
    parser.add_argument("--sac-steps", type=int, default=8000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--pets-eval", choices=["training", "separate"], default="training")
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--eval-episodes", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="PETS config override")
    parser.add_argument("--skip-sac", action="store_true")
    parser.add_argument("--name", default="pets_pendulum")
    parser.add_argument("--merge", nargs="+", metavar="NAME",
                        help="combine the curves of earlier results (one seed per process) into --name")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from modelrl.config import parse_assignments

    overrides = {**PETS, **parse_assignments(args.set)}
    if args.merge:
        parts, merged_from = read_results(args.merge, into=args.name)
        record = {**shared_settings(parts, args.merge, ("env", "threshold", "pets_config", "pets_eval", "threads")),
                  "merged_from": merged_from, **{key: merged_runs(parts, args.merge, key) for key in ("pets", "sac")}}
        args.threshold = record["threshold"]
    else:
        record = {"env": args.env, "threshold": args.threshold, "pets_config": overrides,
                  "pets_eval": args.pets_eval, "threads": 1, "pets": [], "sac": []}

    def save():
        pets_steps = [steps_to(c, args.threshold) for c in record["pets"]]
        sac_steps = [steps_to(c, args.threshold) for c in record["sac"]]
        record["summary"] = {"pets_steps_to_threshold": pets_steps, "sac_steps_to_threshold": sac_steps,
                             "pets_median": median_or_none(pets_steps), "sac_median": median_or_none(sac_steps)}
        if record["summary"]["pets_median"] and record["summary"]["sac_median"]:
            record["summary"]["sac_over_pets"] = round(record["summary"]["sac_median"]
                                                       / record["summary"]["pets_median"], 2)
        write_results(args.name, record)
        plot(record, args.name)

    if args.merge:
        save()
        return
    for seed in args.seeds:
        record["pets"].append(pets_curve(args.env, seed, args, overrides))
        save()
    if not args.skip_sac:
        for seed in args.seeds:
            record["sac"].append(sac_curve(args.env, seed, args.sac_steps, args.threshold))
            print(f"sac seed {seed}: {record['sac'][-1]['env_steps'][-1]} steps, "
                  f"return {record['sac'][-1]['eval_return'][-1]:.1f}", flush=True)
            save()
    print(record["summary"])


def plot(record: dict, name: str) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for key, color in (("pets", "C0"), ("sac", "C1")):
        for i, curve in enumerate(record[key]):
            ax.plot(curve["env_steps"], curve["eval_return"], marker="o", color=color, alpha=0.7,
                    label=("PETS (modelrl)" if key == "pets" else "SAC (stable-baselines3)") if i == 0 else None)
    ax.axhline(record["threshold"], color="grey", linestyle=":", label=f"threshold {record['threshold']:g}")
    ax.set(xlabel="real env steps", ylabel="return", title=f"{record['env']}: PETS vs SAC",
           xscale="log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
