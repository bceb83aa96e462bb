"""(c) TD-MPC2's update and planning step against their compute floor: the matmul FLOPs they need (counted by
torch's FlopCounterMode: one update forward and backward, one planning step) at this machine's measured
float32 matmul rate in their main shape (512 rows x 384 x 384: the planner's population through a hidden
layer of the `1m` size), measured after each round.

Each round (--rounds, 3 by default) builds TD-MPC2 (`1m`, the paper's settings) on DMC cartpole swingup from
states, fills its replay with --fill random steps, then times --updates updates and --plans planning steps
(each after an untimed one), eager and with `compile=True`. Reported: the median over rounds of each round's
median, with its range, over the floor at the median rate.

    OMP_NUM_THREADS=1 python benchmarks/tdmpc2_speed.py [--rounds 3] [--updates 20] [--plans 20] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics

import matplotlib.pyplot as plt
import numpy as np
import torch
from common import RESULTS, matmul_rate, spread, timed_calls, write_results
from torch.utils.flop_counter import FlopCounterMode

import modelrl

ENV = "dmc/cartpole-swingup-v0"
RATE_SHAPE = (1, 512, 384, 384)
VARIANTS = {"eager": False, "compiled": True}


def agent(compiled: bool, fill: int, size: str):
    tdmpc2 = modelrl.make_agent("td-mpc2", env=ENV, seed=0, size=size, seed_steps=10**9, compile=compiled,
                                device="cpu")
    tdmpc2.learn(fill)  # random actions into the replay; no update before seed_steps
    return tdmpc2


def timed(call, repeats: int) -> dict:
    times = timed_calls(call, repeats)[1]  # after a warm-up (and, compiled, the compilation)
    return {"seconds": times, "median": statistics.median(times)}


def flops(fill: int, size: str) -> dict:
    """Matmul FLOPs of one eager update (forward and backward) and of one planning step."""
    tdmpc2 = agent(False, fill, size)
    obs = np.zeros(tdmpc2.env.observation_space.shape, np.float32)
    counts = {}
    for name, call in (("update", tdmpc2.update), ("plan", lambda: tdmpc2.act(obs, deterministic=True))):
        counter = FlopCounterMode(display=False)
        with counter:
            call()
        counts[name] = counter.get_total_flops()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--plans", type=int, default=20)
    parser.add_argument("--fill", type=int, default=2000, help="random steps in the replay")
    parser.add_argument("--size", default="1m")
    parser.add_argument("--quick", action="store_true", help="1 round of 3 updates and plans")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.updates, args.plans = 1, 3, 3
    name = "tdmpc2_speed_quick" if args.quick else "tdmpc2_speed"
    torch.set_num_threads(1)
    counts = flops(args.fill, args.size)
    rounds = []
    for number in range(1, args.rounds + 1):
        row = {"round": number}
        for variant, compiled in VARIANTS.items():
            tdmpc2 = agent(compiled, args.fill, args.size)
            obs = np.zeros(tdmpc2.env.observation_space.shape, np.float32)
            row[variant] = {"update": timed(tdmpc2.update, args.updates),
                            "plan": timed(lambda tdmpc2=tdmpc2, obs=obs: tdmpc2.act(obs, deterministic=True),
                                          args.plans)}
        row["matmul_gflops"] = matmul_rate(*RATE_SHAPE)
        rounds.append(row)
        times = "; ".join(f"{variant} update {row[variant]['update']['median']:.4f} s, "
                          f"plan {row[variant]['plan']['median']:.4f} s" for variant in VARIANTS)
        print(f"round {number}: {times}; matmul {row['matmul_gflops']:.1f} GFLOP/s", flush=True)
        rate = spread([r["matmul_gflops"] for r in rounds])
        floor = {part: counts[part] / (rate["median"] * 1e9) for part in counts}
        summary = {variant: {part: spread([r[variant][part]["median"] for r in rounds]) for part in counts}
                   for variant in VARIANTS}
        summary["compute_floor_s"] = floor
        summary["ratio_to_floor"] = {variant: {part: summary[variant][part]["median"] / floor[part]
                                               for part in counts} for variant in VARIANTS}
        summary["matmul_gflops"] = rate
        write_results(name, {"env": ENV, "size": args.size, "fill": args.fill, "updates": args.updates,
                             "plans": args.plans, "threads": 1, "matmul_rate_shape": RATE_SHAPE,
                             "gflop": {part: n / 1e9 for part, n in counts.items()}, "summary": summary,
                             "rounds": rounds})
        plot(rounds, summary, name)
    print(json.dumps(summary, indent=2))


def plot(rounds: list[dict], summary: dict, name: str) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    numbers = [r["round"] for r in rounds]
    for ax, part in zip(axes, ("update", "plan"), strict=True):
        for variant, color in zip(VARIANTS, ("C0", "C2"), strict=True):
            ax.plot(numbers, [r[variant][part]["median"] for r in rounds], "o-", color=color,
                    label=f"{variant} ({summary['ratio_to_floor'][variant][part]:.2f}x the floor)")
        ax.axhline(summary["compute_floor_s"][part], color="grey", linestyle="--", label="compute floor")
        ax.set(xlabel="round", ylabel="seconds", ylim=(0, None), xticks=numbers,
               title=f"TD-MPC2 {'update (batch 256, horizon 3)' if part == 'update' else 'planning step'}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
