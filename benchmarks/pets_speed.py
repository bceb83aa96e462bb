"""(e) PETS speed in mbrl-lib's PETS-tutorial configuration, beside mbrl-lib 0.2.0, in alternating rounds.

ContinuousCartPole; 5 Gaussian members of 3 hidden layers x 200 (LeakyReLU, as the tutorial); CEM with
population 500, 5 iterations, elite ratio 0.1, alpha 0.1, horizon 15; 20 particles, TS-infinity. Each round
(--rounds, 5 by default) times, in this order: modelrl in this process (one training epoch of the ensemble
on 2,000 random-policy transitions, batch 32, 5% held out, then --calls planning steps, `agent.act`, the
whole MPC call, after an untimed one); mbrl-lib 0.2.0 the same way, in a subprocess of its own venv
(`benchmarks/anchors/mbrl_lib_pets_timing.sh`, which builds that venv on first use), at the same thread count;
then this machine's batched-matmul rate in the planner's shape, which gives the compute floor (the MACs that
configuration needs, at that rate). Alternating the sides spreads a shared machine's changing load over both.

Reported per side: the median over rounds of each round's median planning step, and of each round's epoch,
with their min-max over rounds; the ratio of those medians (mbrl-lib / modelrl) with the range of the
per-round ratios; the matmul rate's range over rounds. Every round's figures are kept in the JSON; the PNG
shows them.

    OMP_NUM_THREADS=1 python benchmarks/pets_speed.py [--threads 1] [--rounds 5] [--calls 10] [--quick]
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
from common import RESULTS, matmul_rate, spread, write_results

import modelrl

ANCHOR = Path(__file__).resolve().parent / "anchors" / "mbrl_lib_pets_timing.sh"
TUTORIAL = {"optimizer": "cem", "population": 500, "iterations": 5, "elite_ratio": 0.1, "alpha": 0.1,
            "horizon": 15, "particles": 20, "propagation": "ts-inf", "ensemble_size": 5, "num_elites": 5,
            "model_hidden_size": 200, "model_layers": 3, "model_activation": "leaky_relu",
            "model_batch_size": 32, "model_holdout_ratio": 0.05, "model_lr": 1e-3, "model_weight_decay": 5e-5,
            "device": "cpu"}
TIMED_EPOCHS = 3
SIDES = {"modelrl": "modelrl", "mbrl_lib": "mbrl-lib 0.2.0"}


def planner_matmul_rate() -> float:
    """GFLOP/s of batched float32 matmuls of the planner's shape class (5 members, 30,000 rows, 200 x 200)."""
    return matmul_rate(5, 30000, 200, 200)


def compute_floor(gflops: float) -> float:
    """Seconds the planning step's matmuls need at `gflops`: every member's three layers for every sample."""
    macs_per_sample = (4 + 1) * 200 + 2 * 200 * 200 + 200 * 2 * 4
    samples = 5 * 500 * 20 * 15  # iterations x population x particles x horizon
    return 2 * macs_per_sample * samples / (gflops * 1e9)


def time_modelrl(calls: int) -> dict:
    """One training epoch (TIMED_EPOCHS epochs after a one-epoch warm-up fit, over TIMED_EPOCHS), then `calls`
    planning steps from one state after an untimed one: as the mbrl-lib harness times its side."""
    agent = modelrl.make_agent("pets", env="ContinuousCartPole-v0", seed=0, random_steps=2000,
                               model_max_epochs=1, **TUTORIAL)
    agent.learn(total_steps=2000)  # random actions, then one fitting epoch (the warm-up)
    assert len(agent.buffer) == 2000 and agent.trainer.fits == 1
    agent.trainer.fit_kwargs.update(max_epochs=TIMED_EPOCHS, patience=TIMED_EPOCHS)
    started = time.perf_counter()
    agent.fit_model()
    epoch_s = (time.perf_counter() - started) / TIMED_EPOCHS
    obs, _ = agent.env.reset(seed=0)
    started = time.perf_counter()
    agent.act(obs)
    warm_up_s = time.perf_counter() - started
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        agent.act(obs)
        times.append(time.perf_counter() - started)
    return {"act_s": times, "act_s_median": statistics.median(times), "act_warm_up_s": warm_up_s,
            "train_epoch_s": epoch_s, "torch_threads": torch.get_num_threads()}


def run_anchor(threads: int, calls: int) -> dict:
    """The mbrl-lib harness's JSON line (it builds its venv on first use; its stderr says so)."""
    done = subprocess.run(["bash", str(ANCHOR), "--threads", str(threads), "--calls", str(calls)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{ANCHOR.name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(rounds: list[dict], key: str) -> dict:
    """Per side the median and min-max over rounds of `key`; the ratio of medians (mbrl-lib / modelrl) and the
    range of the per-round ratios."""
    sides = {side: spread([r[side][key] for r in rounds]) for side in SIDES}
    ratios = [r["mbrl_lib"][key] / r["modelrl"][key] for r in rounds]
    return {**sides, "ratio_of_medians": sides["mbrl_lib"]["median"] / sides["modelrl"]["median"],
            "round_ratios": {"min": min(ratios), "max": max(ratios)}}


def summarize(rounds: list[dict]) -> dict:
    act, epoch = compare(rounds, "act_s_median"), compare(rounds, "train_epoch_s")
    rates = spread([r["matmul_gflops"] for r in rounds])
    floor = compute_floor(rates["median"])
    return {"rounds": len(rounds), "planning_step_s": act, "train_epoch_s": epoch, "matmul_gflops": rates,
            "compute_floor_s": {"at_median_rate": floor, "at_fastest_rate": compute_floor(rates["max"]),
                                "at_slowest_rate": compute_floor(rates["min"])},
            "ratio_to_floor": {side: act[side]["median"] / floor for side in SIDES},
            "all_calls_s": {side: spread([t for r in rounds for t in r[side]["act_s"]]) for side in SIDES}}


def rounded(value, digits: int = 4):
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v, digits) for v in value]
    return value


def plot(rounds: list[dict], summary: dict, threads: int, name: str) -> None:
    numbers = [r["round"] for r in rounds]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for (side, label), color in zip(SIDES.items(), ("C0", "C1"), strict=True):
        for r in rounds:
            axes[0].scatter([r["round"]] * len(r[side]["act_s"]), r[side]["act_s"], color=color, s=8,
                            alpha=0.35)
        act = summary["planning_step_s"][side]["median"]
        axes[0].plot(numbers, [r[side]["act_s_median"] for r in rounds], "o-", color=color,
                     label=f"{label} (median {act:.2f} s)")
        epoch = summary["train_epoch_s"][side]["median"]
        axes[1].plot(numbers, [r[side]["train_epoch_s"] for r in rounds], "o-", color=color,
                     label=f"{label} (median {epoch:.3f} s)")
    axes[0].plot(numbers, [r["compute_floor_s"] for r in rounds], "s--", color="grey",
                 label="compute floor at the round's matmul rate")
    ratio = summary["planning_step_s"]
    axes[0].set(xlabel="round", ylabel="seconds per planning step",
                title=f"PETS planning step, {threads} thread\n"
                      f"mbrl-lib / modelrl {ratio['ratio_of_medians']:.2f}"
                      f" (rounds {ratio['round_ratios']['min']:.2f}-{ratio['round_ratios']['max']:.2f});"
                      " dots: calls")
    ratio = summary["train_epoch_s"]
    axes[1].set(xlabel="round", ylabel="seconds per epoch",
                title=f"Ensemble training epoch (2,000 transitions)\nmbrl-lib / modelrl "
                      f"{ratio['ratio_of_medians']:.2f} (rounds {ratio['round_ratios']['min']:.2f}-"
                      f"{ratio['round_ratios']['max']:.2f})")
    axes[2].plot(numbers, [r["matmul_gflops"] for r in rounds], "o-", color="grey")
    axes[2].set(xlabel="round", ylabel="GFLOP/s",
                title="Batched matmul rate, planner's shape\n(measured after both sides each round)")
    for ax in axes:
        ax.set_xticks(numbers)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.1)
    for ax in axes[:2]:
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=10, help="timed planning steps per side and round")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 2 calls, as pets_speed_quick")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.calls = 2, 2
    name = "pets_speed_quick" if args.quick else "pets_speed"
    torch.set_num_threads(args.threads)

    rounds, anchor_config = [], None
    for number in range(1, args.rounds + 1):
        ours = time_modelrl(args.calls)
        theirs = run_anchor(args.threads, args.calls)
        anchor_config = theirs.pop("config")
        if theirs["torch_threads"] != ours["torch_threads"]:
            raise SystemExit(f"thread counts differ: modelrl {ours['torch_threads']}, mbrl-lib "
                             f"{theirs['torch_threads']}")
        rate = planner_matmul_rate()
        rounds.append({"round": number, "modelrl": ours, "mbrl_lib": theirs, "matmul_gflops": rate,
                       "compute_floor_s": compute_floor(rate),
                       "act_ratio": theirs["act_s_median"] / ours["act_s_median"],
                       "train_epoch_ratio": theirs["train_epoch_s"] / ours["train_epoch_s"]})
        print(f"round {number}: planning step modelrl {ours['act_s_median']:.3f} s, mbrl-lib "
              f"{theirs['act_s_median']:.3f} s; epoch modelrl {ours['train_epoch_s']:.3f} s, mbrl-lib "
              f"{theirs['train_epoch_s']:.3f} s; matmul {rate:.1f} GFLOP/s", flush=True)
        summary = summarize(rounds)
        write_results(name, rounded({
            "threads": args.threads, "rounds_asked": args.rounds, "calls": args.calls,
            "timed_epochs": TIMED_EPOCHS, "order": "each round: modelrl, mbrl-lib (subprocess), matmul rate",
            "config": TUTORIAL, "mbrl_lib_config": anchor_config, "summary": summary, "rounds": rounds}))
        plot(rounds, summary, args.threads, name)
    print(json.dumps(rounded(summarize(rounds), 3), indent=2))


if __name__ == "__main__":
    main()
