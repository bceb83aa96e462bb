"""(c) MBPO on Hopper-v5 in the paper's configuration, for as long as `--minutes` allows: deterministic eval
return (10 episodes) every 1,000 env steps, env steps per second and where the time goes.

    python benchmarks/mbpo_hopper.py --minutes 60 [--checkpoint runs/mbpo_hopper.pt to continue a run]
    python benchmarks/mbpo_hopper.py --minutes 90 --threads 2 --checkpoint runs/mbpo_hopper_2t.pt \\
        --name mbpo_hopper_2threads
    python benchmarks/mbpo_hopper.py --compare mbpo_hopper_te-3 mbpo_hopper_slowactor \\
        --name mbpo_hopper_compare

The paper's curve is near 1,900 at 50k steps and 3,000-3,300 at 100k. The run saves a checkpoint after
every evaluation, so a later invocation with the same `--checkpoint` continues it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from common import RESULTS, describe_device, load_result, results_name, write_results

import modelrl
from modelrl.config import parse_assignments
from modelrl.errors import ModelRLError

PAPER = {50_000: 1900, 100_000: 3150}  # read off the paper's Hopper curve: near 1,900, and 3,000-3,300
HISTORY = ("q_value", "critic_loss", "alpha", "entropy", "model_holdout_mse", "rollout_length",
           "imagined_reward", "imagined_terminated", "q_estimate", "soft_return", "normalized_q_bias")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", default="runs/mbpo_hopper.pt")
    parser.add_argument("--name", type=results_name, default="mbpo_hopper")
    parser.add_argument("--device", default="auto", help="torch device: auto (CUDA when present), cpu, cuda")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (2: the whole 2-core machine)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="MBPO config override")
    parser.add_argument("--plot-only", action="store_true", help="redraw the plot from the saved JSON")
    parser.add_argument("--summary", action="store_true", help="print the saved run's figures (README row)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test: half a minute, no checkpoint, written as NAME_quick")
    parser.add_argument("--compare", nargs="+", metavar="NAME",
                        help="plot these saved runs together into <--name>.png and .json (no training)")
    args = parser.parse_args()
    if args.compare:
        compare([load_result(name) for name in args.compare], args.name)
        return
    if args.plot_only:
        plot(load_result(args.name), args.name)
        return
    if args.summary:
        print(summary(load_result(args.name)))
        return
    torch.set_num_threads(args.threads)
    checkpoint = Path(args.checkpoint)
    if args.quick:
        args.minutes, args.name = 0.5, f"{args.name}_quick"
        checkpoint = Path(tempfile.mkdtemp()) / "quick.pt"  # a fresh run that leaves no checkpoint behind
    if checkpoint.exists() and args.set:
        parser.error(f"--set applies to a new run; {checkpoint} resumes with the config it was saved with")
    try:
        agent, record = start(args, checkpoint)
    except ModelRLError as error:
        parser.exit(2, f"error: {error}\n")
    run(agent, record, args, checkpoint)


def start(args, checkpoint: Path):
    """The agent and its results record: resumed from the checkpoint, or new."""
    if checkpoint.exists():
        agent = modelrl.load(checkpoint)
        return agent, rows_up_to(load_result(args.name), agent.env_steps)
    overrides = parse_assignments(args.set)
    agent = modelrl.make_agent("mbpo", env="Hopper-v5", seed=args.seed, device=args.device, **overrides)
    record = {"env": "Hopper-v5", "seed": args.seed, "threads": args.threads,
              "config": "mbpo defaults (paper, Hopper)", "overrides": overrides,
              "device": describe_device(agent.device), "learning_starts": agent.config.learning_starts,
              "env_steps": [], "eval_return": [], "wall_seconds": [], "sessions": []}
    return agent, record


def rows_up_to(record: dict, env_steps: int) -> dict:
    """The record without evaluations past `env_steps`: results are written before the checkpoint, so a
    run stopped between the two has a row the resumed agent will evaluate again."""
    extra = sum(step > env_steps for step in record["env_steps"])  # the last rows, if any
    if extra:
        for key in ("env_steps", "eval_return", "wall_seconds"):
            record[key] = record[key][:-extra]
        for key, values in record.get("history", {}).items():  # a key added later is shorter, end-aligned
            record["history"][key] = values[:-extra]
    return record


def run(agent, record: dict, args, checkpoint: Path) -> None:
    """Learn in 1k-step chunks until `--minutes` run out, evaluating, checkpointing and writing results."""
    deadline = time.perf_counter() + 60 * args.minutes
    session = {"start_step": agent.env_steps, "seconds": 0.0, "threads": args.threads}
    record["sessions"].append(session)
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        step_started = time.perf_counter()
        agent.learn(total_steps=1000)
        value = agent.evaluate(10)["eval_return"]
        session["seconds"] = round(time.perf_counter() - started, 1)
        record["env_steps"].append(agent.env_steps)
        record["eval_return"].append(round(value, 1))
        record["wall_seconds"].append(round(time.perf_counter() - step_started, 1))
        metrics = agent.metrics()
        if agent.learner.updates:  # the critics against the returns that followed, on the policy's own states
            metrics.update(agent.critic_bias(episodes=3, seed=agent.env_steps))
        record["last_metrics"] = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        for key in HISTORY:
            record.setdefault("history", {}).setdefault(key, []).append(metrics.get(key))
        trained = trained_chunk_seconds(record)
        if trained:
            record["seconds_per_1k_steps_after_random_phase"] = round(sum(trained) / len(trained), 1)
        print(f"{agent.env_steps} steps: eval return {value:.0f} "
              f"({record['wall_seconds'][-1]:.0f} s for 1k steps, "
              f"k={metrics['rollout_length']}, Q {metrics.get('q_value', float('nan')):.0f}, "
              f"alpha {metrics.get('alpha', float('nan')):.3f}, "
              f"Q bias {metrics.get('normalized_q_bias', float('nan')):+.2f})", flush=True)
        record["stopped_at"] = agent.env_steps  # current even if the process is killed
        write_results(args.name, record)
        agent.save(checkpoint)
        plot(record, args.name)


def trained_chunk_seconds(record: dict, first: int = 0, end: float = float("inf")) -> list[float]:
    """Wall seconds of the 1k-step chunks in (first, end] once SAC trains (past the random phase and the
    first model fit)."""
    learning_starts = record.get("learning_starts", 5000)  # records before it was stored used the default
    return [seconds for step, seconds in zip(record["env_steps"], record["wall_seconds"], strict=True)
            if first < step <= end and step > learning_starts + 1000]


def summary(record: dict) -> str:
    """The figures (c) asks for: return at 25k and 50k, where the run stopped, and the cost per 1k steps
    on each thread count it ran with."""
    returns = dict(zip(record["env_steps"], record["eval_return"], strict=True))
    lines = [f"{record['env']}, seed {record['seed']}: stopped at {record['env_steps'][-1]} env steps"]
    for mark in (25_000, 50_000, 75_000, 100_000):
        lines.append(f"  eval return at {mark // 1000}k: "
                     + (f"{returns[mark]:.0f}" if mark in returns else "not reached"))
    last = record["eval_return"][-5:]
    lines.append(f"  best {max(record['eval_return']):.0f}; last {len(last)}: "
                 + ", ".join(f"{value:.0f}" for value in last))
    starts = [session["start_step"] for session in record["sessions"]] + [record["env_steps"][-1]]
    by_threads: dict[int, list[float]] = {}
    for session, first, end in zip(record["sessions"], starts, starts[1:]):
        threads = session.get("threads", record.get("threads"))  # early records kept it per run only
        by_threads.setdefault(threads, []).extend(trained_chunk_seconds(record, first, end))
    device = "" if record.get("device") in (None, "cpu") else f"{record['device']}, "
    for threads, seconds in sorted(by_threads.items()):
        if seconds:
            lines.append(f"  {device}{threads} thread(s): {len(seconds)} chunks of 1k steps, "
                         f"{min(seconds):.0f}-"
                         f"{max(seconds):.0f} s (mean {sum(seconds) / len(seconds):.0f} s) per 1k, "
                         f"{1000 * len(seconds) / sum(seconds):.1f} env steps/s")
    return "\n".join(lines)


def history_pairs(record: dict, key: str) -> list[tuple[int, float]]:
    """(env step, value) of one logged metric where it was logged; keys added mid-run cover the last
    chunks."""
    steps, values = record["env_steps"], record.get("history", {}).get(key) or []
    return [(s, v) for s, v in zip(steps[len(steps) - len(values):], values, strict=True) if v is not None]


def plot(record: dict, name: str) -> None:
    """Eval return, and the critics' mean Q beside it where it was logged (an overestimating critic shows)."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(record["env_steps"], record["eval_return"], marker=".", color="tab:blue")
    ax.plot(list(PAPER), list(PAPER.values()), "o", color="grey", label="paper's curve (Janner et al. 2019)")
    ax.legend(loc="upper left")
    ax.set(xlabel="real env steps", ylabel="mean eval return (10 episodes)", title="MBPO, Hopper-v5")
    twin = None
    for key, style, label in (("q_value", "--x", "critics' mean Q, training batches"),
                              ("q_estimate", ":+", "critics' Q, policy's own states"),
                              ("soft_return", ":.", "soft return that followed")):
        pairs = history_pairs(record, key)
        if pairs:
            twin = twin or ax.twinx()
            twin.plot(*zip(*pairs), style, color="tab:red", alpha=0.4 if key == "soft_return" else 1,
                      label=label)
    if twin is not None:
        twin.set_ylabel("discounted value", color="tab:red")
        twin.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=110)
    plt.close(fig)


def compare(records: list[dict], name: str) -> None:
    """Eval return, the critics' mean Q and their normalized bias for several saved runs, in one figure."""
    fig, axes = plt.subplots(3, 1, figsize=(7, 8.5), sharex=True)
    keys = (None, "q_value", "normalized_q_bias")
    table = {}
    for record in records:
        history, steps = record.get("history", {}), record["env_steps"]
        # overrides: in the JSON
        (line,) = axes[0].plot(steps, record["eval_return"], marker=".",
                               label=f"{record['benchmark']}, seed {record['seed']}")
        for ax, key in zip(axes[1:], keys[1:], strict=True):
            pairs = history_pairs(record, key)
            if pairs:
                ax.plot(*zip(*pairs), marker=".", color=line.get_color())
        table[record["benchmark"]] = {"seed": record["seed"], "overrides": record.get("overrides", {}),
                                      "env_steps": steps, "eval_return": record["eval_return"],
                                      **{key: history.get(key) for key in keys[1:]}}
    axes[0].plot(list(PAPER), list(PAPER.values()), "o", color="grey",
                 label="paper's curve (Janner et al. 2019)")
    axes[0].set(ylabel="mean eval return (10 episodes)", title="MBPO, Hopper-v5")
    axes[0].legend(fontsize="x-small", loc="upper left")
    axes[1].set(ylabel="critics' mean Q, training batches", yscale="log")
    axes[2].axhline(0, color="grey", linewidth=0.8)
    axes[2].set_yscale("symlog", linthresh=1)
    axes[2].set(xlabel="real env steps", ylabel="normalized Q bias, own states")
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=110)
    plt.close(fig)
    write_results(name, {"runs": table})


if __name__ == "__main__":
    main()
