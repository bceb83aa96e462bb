"""Does SAC learn as well with `precision="bfloat16"` and with `compile=True`? Our SAC in float32 and in
bfloat16 (hidden layers' matmuls autocast; output layers, losses and weights float32), each eager and, with
`--variants`, compiled; same seeds, same run: env steps until the mean deterministic eval return (10
episodes, every 1,000 steps) reaches the threshold, and env steps per second.

    python benchmarks/sac_precision.py --env Pendulum-v1 --threshold -200 --steps 8000 --seeds 0 1 2 \
        [--variants float32 bfloat16 "float32 compiled" "bfloat16 compiled"]

One thread; the variants alternate seed by seed so machine load hits all alike. A compiled variant's first
run includes its compilation (the others in the process reuse the graph).
"""

from __future__ import annotations

import argparse

import matplotlib.pyplot as plt
import numpy as np
import torch
from common import RESULTS, results_name, write_results
from sb3_reference import median_or_none, modelrl_curve, steps_to

VARIANTS = {"float32": {}, "bfloat16": {"precision": "bfloat16"}, "float32 compiled": {"compile": True},
            "bfloat16 compiled": {"precision": "bfloat16", "compile": True}}
COLORS = {"float32": "tab:blue", "bfloat16": "tab:cyan", "float32 compiled": "tab:green",
          "bfloat16 compiled": "tab:olive"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--threshold", type=float, default=-200)
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=["float32", "bfloat16"])
    parser.add_argument("--name", type=results_name, default="sac_precision")
    args = parser.parse_args()
    torch.set_num_threads(1)
    record = {"env": args.env, "threshold": args.threshold, "threads": 1, "steps": args.steps,
              "eval": {"every": 1000, "episodes": 10}, "runs": {v: [] for v in args.variants}}
    for seed in args.seeds:
        for variant in args.variants:
            record["runs"][variant].append(modelrl_curve("sac", args.env, seed, args.steps, args.threshold,
                                                         device="cpu", **VARIANTS[variant]))
    summary = {}
    for variant, curves in record["runs"].items():
        reached = [steps_to(curve, args.threshold) for curve in curves]
        summary[variant] = {"steps_to_threshold": reached, "median": median_or_none(reached),
                            "steps_per_second": [curve["steps_per_second"] for curve in curves]}
    baseline = record["runs"][args.variants[0]]
    for variant in args.variants[1:]:
        summary[f"{variant} speed over {args.variants[0]}"] = round(float(np.median(
            [b["steps_per_second"] / f["steps_per_second"]
             for f, b in zip(baseline, record["runs"][variant], strict=True)])), 2)
    record["summary"] = summary
    write_results(args.name, record)
    print(summary)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for variant, curves in record["runs"].items():
        for i, curve in enumerate(curves):
            ax.plot(curve["env_steps"], curve["eval_return"], color=COLORS[variant], marker=".",
                    label=f"SAC {variant}" if i == 0 else None)
    ax.axhline(args.threshold, color="black", linestyle=":", linewidth=1)
    ax.set(xlabel="real env steps", ylabel="mean eval return (10 episodes)",
           title=f"{args.env}: SAC " + ", ".join(args.variants))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{args.name}.png", dpi=110)


if __name__ == "__main__":
    main()
