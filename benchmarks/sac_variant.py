"""Does our SAC learn as well with a setting changed? Our default SAC beside a variant (`--set key=value`, e.g.
`precision=bfloat16` or `update_order=simultaneous`), same seeds, same run: env steps until the mean
deterministic eval return (10 episodes, every 1,000 steps) reaches the threshold, and env steps per second.

    python benchmarks/sac_variant.py --set precision=bfloat16 --env Pendulum-v1 --threshold -200 --steps 8000 \\
        --name sac_precision
    python benchmarks/sac_variant.py --set update_order=simultaneous --threads 2 --name sac_simultaneous

The default and the variant alternate seed by seed so machine load hits both alike.
"""

from __future__ import annotations

import argparse

import matplotlib.pyplot as plt
import numpy as np
import torch
from common import RESULTS, write_results
from sb3_reference import median_or_none, modelrl_curve, steps_to

from modelrl.config import parse_assignments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", required=True,
                        help="the variant's SAC config override(s)")
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--threshold", type=float, default=-200)
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--name", default="sac_variant")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variant = parse_assignments(args.set)
    label = ", ".join(args.set)
    configs = {"default": {}, label: variant}
    record = {"env": args.env, "threshold": args.threshold, "threads": args.threads, "steps": args.steps,
              "variant": variant, "eval": {"every": 1000, "episodes": 10}, "runs": {name: [] for name in configs}}
    for seed in args.seeds:
        for name, overrides in configs.items():
            record["runs"][name].append(modelrl_curve("sac", args.env, seed, args.steps, args.threshold,
                                                      **overrides))
    summary = {}
    for name, curves in record["runs"].items():
        reached = [steps_to(curve, args.threshold) for curve in curves]
        summary[name] = {"steps_to_threshold": reached, "median": median_or_none(reached),
                         "steps_per_second": [curve["steps_per_second"] for curve in curves]}
    summary["variant_speed_over_default"] = round(float(np.median(
        [v["steps_per_second"] / d["steps_per_second"]
         for d, v in zip(record["runs"]["default"], record["runs"][label], strict=True)])), 2)
    record["summary"] = summary
    write_results(args.name, record)
    print(summary)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, color in zip(configs, ("tab:blue", "tab:cyan"), strict=True):
        for i, curve in enumerate(record["runs"][name]):
            ax.plot(curve["env_steps"], curve["eval_return"], color=color, marker=".",
                    label=f"SAC {name}" if i == 0 else None)
    ax.axhline(args.threshold, color="black", linestyle=":", linewidth=1)
    ax.set(xlabel="real env steps", ylabel="mean eval return (10 episodes)",
           title=f"{args.env}: SAC default and {label} ({summary['variant_speed_over_default']}x steps/s, "
                 f"{args.threads} thread{'s' if args.threads > 1 else ''})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{args.name}.png", dpi=110)


if __name__ == "__main__":
    main()
