"""(e) PETS speed in mbrl-lib's PETS-tutorial configuration, beside mbrl-lib and the compute floor.

ContinuousCartPole; 5 Gaussian members of 3 hidden layers x 200 (LeakyReLU, as the tutorial); CEM with
population 500, 5 iterations, elite ratio 0.1, horizon 15; 20 particles, TS-infinity. Measures modelrl's
planning step (`agent.act`, the whole MPC call) and one training epoch of the ensemble (2,000 random-policy
transitions, batch 32, 5% held out), then runs `../shared/anchors/mbrl_lib_pets_timing.sh` (mbrl-lib 0.2.0
in a venv of its own) at the same thread count, then modelrl again; the machine's batched-matmul rate
gives the compute floor (the MACs that configuration needs, at that rate).

    python benchmarks/pets_speed.py [--threads 1] [--calls 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from common import RESULTS, matmul_rate, write_results

import modelrl

ANCHOR = Path(__file__).resolve().parents[1].parent / "shared" / "anchors" / "mbrl_lib_pets_timing.sh"
TUTORIAL = {"optimizer": "cem", "population": 500, "iterations": 5, "elite_ratio": 0.1, "alpha": 0.1,
            "horizon": 15, "particles": 20, "propagation": "ts-inf", "ensemble_size": 5, "num_elites": 5,
            "model_hidden_size": 200, "model_layers": 3, "model_activation": "leaky_relu",
            "model_batch_size": 32, "model_holdout_ratio": 0.05, "model_lr": 1e-3, "model_weight_decay": 5e-5,
            "device": "cpu"}


def planner_matmul_rate() -> float:
    """The planner's shape class (the anchor's own measurement)."""
    return matmul_rate(5, 30000, 200, 200)


def compute_floor(gflops: float) -> float:
    macs_per_sample = (4 + 1) * 200 + 2 * 200 * 200 + 200 * 2 * 4
    samples = 5 * 500 * 20 * 15  # iterations x population x particles x horizon
    return 2 * macs_per_sample * samples / (gflops * 1e9)


def time_modelrl(calls: int) -> dict:
    agent = modelrl.make_agent("pets", env="ContinuousCartPole-v0", seed=0, random_steps=2000,
                               model_max_epochs=1, **TUTORIAL)
    agent.learn(total_steps=2000)  # random actions, then one fitting epoch (the warm-up)
    assert len(agent.buffer) == 2000 and agent.trainer.fits == 1
    agent.trainer.fit_kwargs.update(max_epochs=3, patience=3)
    started = time.perf_counter()
    agent.fit_model()
    epoch_s = (time.perf_counter() - started) / 3
    obs, _ = agent.env.reset(seed=0)
    agent.act(obs)  # warm-up
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        agent.act(obs)
        times.append(time.perf_counter() - started)
    return {"act_s": times, "act_s_median": statistics.median(times), "train_epoch_s": epoch_s}


def run_anchor(threads: int, calls: int) -> dict:
    out = subprocess.run(["bash", str(ANCHOR), "--threads", str(threads), "--calls", str(calls)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="2 timed calls, written as pets_speed_quick")
    args = parser.parse_args()
    if args.quick:
        args.calls = 2
    name = "pets_speed_quick" if args.quick else "pets_speed"
    torch.set_num_threads(args.threads)

    rate_before = planner_matmul_rate()
    first = time_modelrl(args.calls)
    anchor = run_anchor(args.threads, args.calls)
    second = time_modelrl(args.calls)
    rate_after = planner_matmul_rate()
    gflops = statistics.median([rate_before, rate_after, anchor["machine_gflops"]])
    floor = compute_floor(gflops)
    act = statistics.median(first["act_s"] + second["act_s"])
    epoch = statistics.median([first["train_epoch_s"], second["train_epoch_s"]])
    summary = {
        "modelrl_act_s_median": round(act, 3),
        "mbrl_lib_act_s_median": anchor["act_s_median"],
        "compute_floor_s": round(floor, 3),
        "modelrl_ratio_to_floor": round(act / floor, 3),
        "mbrl_lib_ratio_to_floor": round(anchor["act_s_median"] / floor, 3),
        "act_speedup_vs_mbrl_lib": round(anchor["act_s_median"] / act, 3),
        "modelrl_train_epoch_s": round(epoch, 3),
        "mbrl_lib_train_epoch_s": anchor["train_epoch_s"],
        "train_epoch_speedup_vs_mbrl_lib": round(anchor["train_epoch_s"] / epoch, 3),
        "machine_gflops": {"before": round(rate_before, 1), "anchor": anchor["machine_gflops"],
                           "after": round(rate_after, 1), "used": round(gflops, 1)},
    }
    print(json.dumps(summary, indent=2))
    write_results(name, {"threads": args.threads, "calls": args.calls, "config": TUTORIAL,
                                 "summary": summary, "modelrl_runs": [first, second], "mbrl_lib": anchor})

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    bars = axes[0].bar(["modelrl", "mbrl-lib 0.2.0", "compute floor"],
                       [act, anchor["act_s_median"], floor], color=["C0", "C1", "grey"])
    axes[0].bar_label(bars, fmt="%.2f s")
    axes[0].set(ylabel="seconds per planning step", title=f"PETS planning step ({args.threads} thread)")
    bars = axes[1].bar(["modelrl", "mbrl-lib 0.2.0"], [epoch, anchor["train_epoch_s"]], color=["C0", "C1"])
    axes[1].bar_label(bars, fmt="%.3f s")
    axes[1].set(ylabel="seconds per epoch", title="Ensemble training epoch (2,000 transitions)")
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=110)


if __name__ == "__main__":
    main()
