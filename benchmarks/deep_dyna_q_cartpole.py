"""(d) Deep Dyna-Q with n in {0, 5, 10} against our DQN and stable-baselines3's DQN on CartPole-v1: real env
steps until the mean deterministic eval return (10 episodes, every 1,000 steps) reaches 475.

    python benchmarks/deep_dyna_q_cartpole.py [--seeds 0 1 2 --steps 50000 --n 0 5 10]

Every learner uses rl-baselines3-zoo's tuned CartPole-v1 DQN hyperparameters (our `dqn` defaults, double Q
on); "dqn single Q" turns double Q off, as stable-baselines3's DQN has it. Deep Dyna-Q adds n imagined
one-step transitions and n imagined updates per real one.

    python benchmarks/deep_dyna_q_cartpole.py --only "dqn single Q" --n --skip-sb3 --name dqn_single_q_cartpole
    python benchmarks/deep_dyna_q_cartpole.py --merge RUN_A RUN_B --name COMBINED   # seeds run separately
"""

from __future__ import annotations

import argparse

import matplotlib.pyplot as plt
import torch
from common import RESULTS, merged_runs, read_results, write_results
from sb3_reference import ZOO_DQN_CARTPOLE, median_or_none, modelrl_curve, sb3_curve, steps_to

ENV, THRESHOLD = "CartPole-v1", 475.0


def save(record: dict, name: str) -> None:
    """Summarise (steps to 475 per seed, medians, DQN's median over each), write the JSON and draw the plot."""
    summary = {}
    for learner, curves in record["curves"].items():
        reached = [steps_to(c, THRESHOLD) for c in curves]
        summary[learner] = {"steps_to_475": reached, "median": median_or_none(reached),
                            "seconds": [c["seconds"] for c in curves]}
    # DQN's median over the seeds each learner ran, so every ratio compares the same seeds
    dqn = {c["seed"]: steps_to(c, THRESHOLD) for c in record["curves"].get("dqn", [])}
    for learner, entry in summary.items():
        seeds = [c["seed"] for c in record["curves"][learner]]
        base = median_or_none([dqn[s] for s in seeds]) if dqn and set(seeds) <= set(dqn) else None
        if base and entry["median"]:
            entry["dqn_over_this"] = round(base / entry["median"], 2)
    record["summary"] = summary
    write_results(name, record)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (learner, curves), color in zip(record["curves"].items(), plt.cm.tab10.colors, strict=False):
        for i, curve in enumerate(curves):
            ax.plot(curve["env_steps"], curve["eval_return"], color=color, alpha=0.7,
                    label=learner if i == 0 else None)
    ax.axhline(THRESHOLD, color="black", linestyle=":", linewidth=1)
    ax.set(xlabel="real env steps", ylabel="mean eval return (10 episodes)",
           title="CartPole-v1: deep Dyna-Q vs DQN")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--n", type=int, nargs="*", default=[0, 5, 10])
    parser.add_argument("--skip-sb3", action="store_true")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these of our learners")
    parser.add_argument("--name", default="deep_dyna_q_cartpole")
    parser.add_argument("--merge", nargs="+", metavar="NAME",
                        help="combine the seeds of earlier results into --name (a learner missing from one "
                             "of them gets only the others' seeds)")
    args = parser.parse_args()
    if args.merge:
        parts, merged_from = read_results(args.merge, into=args.name)
        learners = dict.fromkeys(learner for part in parts for learner in part["curves"])
        curves = [part["curves"] for part in parts]
        record = {"env": ENV, "threshold": THRESHOLD, "threads": 1, "steps": max(p["steps"] for p in parts),
                  "merged_from": merged_from,
                  "curves": {learner: merged_runs(curves, args.merge, learner) for learner in learners}}
        save(record, args.name)
        print(record["summary"])
        return
    torch.set_num_threads(1)
    learners = {"dqn": ("dqn", {}), "dqn single Q": ("dqn", {"double_q": False}),
                **{f"deep-dyna-q n={n}": ("deep-dyna-q", {"planning_steps": n}) for n in args.n}}
    if args.only:
        learners = {name: learner for name, learner in learners.items() if name in args.only}
    record = {"env": ENV, "threshold": THRESHOLD, "threads": 1, "steps": args.steps,
              "curves": {name: [] for name in [*learners, "sb3 dqn"]}}
    for seed in args.seeds:
        for name, (agent_id, overrides) in learners.items():
            record["curves"][name].append(modelrl_curve(agent_id, ENV, seed, args.steps, THRESHOLD, **overrides))
        if not args.skip_sb3:
            record["curves"]["sb3 dqn"].append(sb3_curve("DQN", ENV, seed, args.steps, THRESHOLD,
                                                         **ZOO_DQN_CARTPOLE))
        save(record, args.name)
        print(record["summary"], flush=True)


if __name__ == "__main__":
    main()
