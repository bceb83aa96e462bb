"""Does SAC learn as well with `precision="bfloat16"`? Our SAC in float32 and in bfloat16 (hidden layers'
matmuls autocast; output layers, losses and weights float32), same seeds, same run: env steps until the mean
deterministic eval return (10 episodes, every 1,000 steps) reaches the threshold, and env steps per second.

    python benchmarks/sac_precision.py --env Pendulum-v1 --threshold -200 --steps 8000 --seeds 0 1 2

One thread; the two precisions alternate seed by seed so machine load hits both alike.
"""

from __future__ import annotations

import argparse

import matplotlib.pyplot as plt
import numpy as np
import torch
from common import RESULTS, write_results
from sb3_reference import median_or_none, modelrl_curve, steps_to

PRECISIONS = ("float32", "bfloat16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--threshold", type=float, default=-200)
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--name", default="sac_precision")
    args = parser.parse_args()
    torch.set_num_threads(1)
    record = {"env": args.env, "threshold": args.threshold, "threads": 1, "steps": args.steps,
              "eval": {"every": 1000, "episodes": 10}, "runs": {p: [] for p in PRECISIONS}}
    for seed in args.seeds:
        for precision in PRECISIONS:
            record["runs"][precision].append(modelrl_curve("sac", args.env, seed, args.steps, args.threshold,
                                                           precision=precision))
    summary = {}
    for precision, curves in record["runs"].items():
        reached = [steps_to(curve, args.threshold) for curve in curves]
        summary[precision] = {"steps_to_threshold": reached, "median": median_or_none(reached),
                              "steps_per_second": [curve["steps_per_second"] for curve in curves]}
    summary["bfloat16_speed_over_float32"] = round(float(np.median(
        [b["steps_per_second"] / f["steps_per_second"]
         for f, b in zip(record["runs"]["float32"], record["runs"]["bfloat16"], strict=True)])), 2)
    record["summary"] = summary
    write_results(args.name, record)
    print(summary)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for precision, color in zip(PRECISIONS, ("tab:blue", "tab:cyan"), strict=True):
        for i, curve in enumerate(record["runs"][precision]):
            ax.plot(curve["env_steps"], curve["eval_return"], color=color, marker=".",
                    label=f"SAC {precision}" if i == 0 else None)
    ax.axhline(args.threshold, color="black", linestyle=":", linewidth=1)
    ax.set(xlabel="real env steps", ylabel="mean eval return (10 episodes)",
           title=f"{args.env}: SAC in float32 and bfloat16 ({summary['bfloat16_speed_over_float32']}x steps/s)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{args.name}.png", dpi=110)


if __name__ == "__main__":
    main()
