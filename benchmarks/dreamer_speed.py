"""(d) Dreamer's update speed at `size1m` beside sheeprl 0.8.4's DreamerV3 at the same widths, in rounds.

One update: the world model on a 16 x 64 batch of replayed steps (a vector task shaped like DMC cartpole
swingup from proprioception: 5 floats observed, one continuous action), then 15 imagined steps from each of
its 1,024 posteriors for the actor and the critic. Each round (--rounds, 3 by default) times, in this order:
modelrl in this process with REINFORCE for the actor, eager and with `compile=True` (the imagination step
compiled), then the same with its default for continuous actions (the returns' gradient backpropagated
through the imagined dynamics), --updates updates each after an untimed one, on replay of random-policy
steps; sheeprl 0.8.4 in a subprocess of its own venv (`benchmarks/anchors/sheeprl_dreamer_v3_timing.sh`,
built on first use) with REINFORCE (`--objective-mix 1`), then with its default (dynamics backpropagation,
as ours); then this machine's float32 matmul rate, which with each update's matmul FLOPs (counted by torch's
FlopCounterMode over one of our updates, forward and backward) gives the compute floor. The anchor's
docstring lists where sheeprl's model differs from ours at the same widths (its GRU is one full cell, ours
DreamerV3's eight blocks; its heads are deeper).

Reported: each side's median over rounds of its per-round median update, with min-max; the ratios sheeprl /
modelrl of those medians for the same actor gradient, and the range of the per-round ratios.

    OMP_NUM_THREADS=1 python benchmarks/dreamer_speed.py [--threads 1] [--rounds 3] [--updates 10] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from common import RESULTS, matmul_rate, spread, timed_calls, write_results
from torch.utils.flop_counter import FlopCounterMode

import modelrl

ANCHOR = Path(__file__).resolve().parent / "anchors" / "sheeprl_dreamer_v3_timing.sh"
ENV = "dmc/cartpole-swingup-v0"
# our sides: (compiled, actor_gradient)
OURS = {"modelrl": (False, "reinforce"), "modelrl_compiled": (True, "reinforce"),
        "modelrl_dynamics": (False, "dynamics"), "modelrl_dynamics_compiled": (True, "dynamics")}
SIDES = {"modelrl": "modelrl, REINFORCE actor", "modelrl_compiled": "modelrl, REINFORCE, compile=True",
         "modelrl_dynamics": "modelrl, dynamics backprop (default)",
         "modelrl_dynamics_compiled": "modelrl, dynamics backprop, compile=True",
         "sheeprl_reinforce": "sheeprl 0.8.4, REINFORCE actor (--objective-mix 1)",
         "sheeprl_default": "sheeprl 0.8.4, its default (dynamics backprop)"}
GRADIENT = {side: gradient for side, (_, gradient) in OURS.items()}
RATE_SHAPE = (1, 1024, 512, 512)  # one (1,024 x 512) @ (512 x 512) matmul: the batch's rows, a GRU-wide layer


def dreamer(compiled: bool, actor_gradient: str):
    """A size1m Dreamer with a full replay of random steps, ready to update."""
    agent = modelrl.make_agent("dreamer", env=ENV, seed=0, size="size1m", learning_starts=1100,
                               train_ratio=1e-6, compile=compiled, device="cpu",
                               actor_gradient=actor_gradient)
    agent.learn(total_steps=1100)  # random actions fill the replay; no update at this train ratio
    return agent


def time_modelrl(compiled: bool, actor_gradient: str, updates: int) -> dict:
    # compiled: the first (untimed) update compiles
    warm_up_s, times = timed_calls(dreamer(compiled, actor_gradient).update, updates)
    return {"seconds": times, "seconds_per_update": statistics.median(times), "warm_up_s": warm_up_s,
            "torch_threads": torch.get_num_threads()}


def update_flops(actor_gradient: str) -> dict:
    """Matmul and convolution FLOPs of one eager update (forward and backward), by torch's own counter."""
    agent = dreamer(False, actor_gradient)
    counter = FlopCounterMode(display=False)
    with counter:
        agent.update()
    return {"total": counter.get_total_flops(),
            "by_operation": {str(op): int(n) for op, n in counter.get_flop_counts()["Global"].items()}}


def run_anchor(threads: int, updates: int, objective_mix: float | None) -> dict:
    command = ["bash", str(ANCHOR), "--threads", str(threads), "--updates", str(updates)]
    if objective_mix is not None:
        command += ["--objective-mix", str(objective_mix)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{ANCHOR.name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarize(rounds: list[dict], flops: dict[str, int]) -> dict:
    sides = {side: spread([r[side]["seconds_per_update"] for r in rounds]) for side in SIDES}
    rates = spread([r["matmul_gflops"] for r in rounds])
    floor = {gradient: n / (rates["median"] * 1e9) for gradient, n in flops.items()}

    def ratio(theirs: str, ours: str) -> dict:
        per_round = [r[theirs]["seconds_per_update"] / r[ours]["seconds_per_update"] for r in rounds]
        return {"ratio_of_medians": sides[theirs]["median"] / sides[ours]["median"],
                "round_ratios": {"min": min(per_round), "max": max(per_round)}}

    return {"rounds": len(rounds), "seconds_per_update": sides, "updates_per_second":
            {side: 1 / sides[side]["median"] for side in SIDES},
            "sheeprl_reinforce_over_modelrl": ratio("sheeprl_reinforce", "modelrl"),
            "sheeprl_reinforce_over_modelrl_compiled": ratio("sheeprl_reinforce", "modelrl_compiled"),
            "sheeprl_default_over_modelrl_dynamics": ratio("sheeprl_default", "modelrl_dynamics"),
            "sheeprl_default_over_modelrl_dynamics_compiled": ratio("sheeprl_default",
                                                                    "modelrl_dynamics_compiled"),
            "matmul_gflops": rates, "update_gflop": {gradient: n / 1e9 for gradient, n in flops.items()},
            "compute_floor_s": floor,
            "ratio_to_floor": {side: sides[side]["median"] / floor[GRADIENT[side]] for side in OURS}}


def plot(rounds: list[dict], summary: dict, threads: int, name: str) -> None:
    numbers = [r["round"] for r in rounds]
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for (side, label), color in zip(SIDES.items(), ("C0", "C2", "C4", "C5", "C1", "C3"), strict=True):
        median = summary["seconds_per_update"][side]["median"]
        ax.plot(numbers, [r[side]["seconds_per_update"] for r in rounds], "o-", color=color,
                label=f"{label} ({median:.2f} s)")
        for r in rounds:
            ax.scatter([r["round"]] * len(r[side]["seconds"]), r[side]["seconds"], color=color, s=8,
                       alpha=0.35)
    for gradient, style in (("reinforce", "s--"), ("dynamics", "^:")):
        ax.plot(numbers, [summary["update_gflop"][gradient] / r["matmul_gflops"] for r in rounds], style,
                color="grey", label=f"compute floor, {gradient} (the round's matmul rate)")
    reinforce = summary["sheeprl_reinforce_over_modelrl_compiled"]["ratio_of_medians"]
    dynamics = summary["sheeprl_default_over_modelrl_dynamics_compiled"]["ratio_of_medians"]
    ax.set(xlabel="round", ylabel="seconds per update", ylim=(0, None),
           title=f"Dreamer update at size1m, batch 16 x 64, horizon 15, {threads} thread\n"
                 f"sheeprl / modelrl compiled: REINFORCE {reinforce:.2f}x, dynamics backprop "
                 f"{dynamics:.2f}x; dots: updates")
    ax.set_xticks(numbers)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--updates", type=int, default=10, help="timed updates per side and round")
    parser.add_argument("--quick", action="store_true", help="1 round of 2 updates, as dreamer_speed_quick")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.updates = 1, 2
    name = "dreamer_speed_quick" if args.quick else "dreamer_speed"
    torch.set_num_threads(args.threads)
    flops = {gradient: update_flops(gradient) for gradient in ("reinforce", "dynamics")}
    totals = {gradient: counted["total"] for gradient, counted in flops.items()}
    rounds, anchor_sizes = [], None
    for number in range(1, args.rounds + 1):
        row = {"round": number}
        for side, (compiled, gradient) in OURS.items():
            row[side] = time_modelrl(compiled, gradient, args.updates)
        for side, mix in (("sheeprl_reinforce", 1.0), ("sheeprl_default", None)):
            row[side] = run_anchor(args.threads, args.updates, mix)
            anchor_sizes = row[side].pop("sizes")
            if row[side]["threads"] != args.threads:
                raise SystemExit(f"the anchor ran on {row[side]['threads']} threads, not {args.threads}")
        row["matmul_gflops"] = matmul_rate(*RATE_SHAPE)
        rounds.append(row)
        times = ", ".join(f"{side} {row[side]['seconds_per_update']:.3f} s" for side in SIDES)
        print(f"round {number}: {times}"
              f"; matmul {row['matmul_gflops']:.1f} GFLOP/s", flush=True)
        summary = summarize(rounds, totals)
        write_results(name, {"threads": args.threads, "rounds_asked": args.rounds, "updates": args.updates,
                             "env": ENV, "order": "each round: modelrl REINFORCE eager and compiled, modelrl "
                             "dynamics backprop eager and compiled, sheeprl REINFORCE, sheeprl default "
                             "(subprocesses), matmul rate",
                             "matmul_rate_shape": RATE_SHAPE, "update_flops": flops,
                             "sheeprl_sizes": anchor_sizes, "summary": summary, "rounds": rounds})
        plot(rounds, summary, args.threads, name)
    print(json.dumps(summarize(rounds, totals), indent=2))


if __name__ == "__main__":
    main()
