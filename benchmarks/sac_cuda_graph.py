"""SAC on CUDA: updates per second with the update replayed as one CUDA graph (`cuda_graph=True`, the
default) beside the eager update and stable-baselines3's SAC on the same GPU, in the same run; and MBPO's env
steps per second on Hopper-v5 both ways.

    python benchmarks/sac_cuda_graph.py [--updates 1000 --rounds 3 --mbpo-steps 250]

The eager update launches about a hundred small kernels, and on a GPU their launch cost, not the arithmetic,
sets its speed. Each timed round samples a batch from the replay buffer (1,000 random transitions) and
updates, as training does; rounds alternate between the learners. Stable-baselines3 (default networks, two
hidden layers of 256 as ours, batch 256) is timed the same way when it is installed: (e)'s comparison on a
GPU. MBPO runs from the end of its random phase with the paper's Hopper settings (G = 20), its seconds split
into model fitting, rollouts and SAC updates. Needs a GPU.
"""

from __future__ import annotations

import argparse
import importlib.util

import matplotlib.pyplot as plt
import torch
from common import RESULTS, describe_device, results_name, write_results
from sac_speed import mbpo_profile, ours, stable_baselines

ENVS = ("Pendulum-v1", "Hopper-v5")
MODES = {"graph": True, "eager": False}  # graph first: a cut-short run still has it


def timers(env_id: str, updates: int) -> dict:
    """Warmed-up timers (lazy CUDA set-up, the graph's capture): ours both ways, and SB3's if installed."""
    runs = {mode: ours(updates, env_id, cuda_graph=graphed) for mode, graphed in MODES.items()}
    if importlib.util.find_spec("stable_baselines3") is not None:
        runs["sb3"] = stable_baselines(updates, env_id, device="cuda")
    for run in runs.values():
        run()
    return runs


def plot(record: dict, name: str) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    labels = list(record["sac"])
    modes = [m for m in (*MODES, "sb3") if f"{m}_updates_per_second" in record["sac"][labels[0]]]
    width = 0.8 / len(modes)
    for offset, mode in enumerate(modes):
        values = [record["sac"][env][f"{mode}_updates_per_second"] for env in labels]
        axes[0].bar([i + width * offset for i in range(len(labels))], values, width=width, label=mode)
    axes[0].set(xticks=[i + 0.4 - width / 2 for i in range(len(labels))], xticklabels=labels,
                ylabel="SAC updates / s",
                title=f"SAC update on {record['device']}")
    axes[0].legend()
    if record.get("mbpo"):
        modes = list(record["mbpo"])
        bottom = [0.0] * len(modes)
        for part in ("model_fitting", "rollouts", "sac_updates", "env_and_acting"):
            values = [record["mbpo"][m]["seconds_by_part"][part] for m in modes]
            axes[1].bar(modes, values, bottom=bottom, label=part)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        axes[1].set(ylabel="seconds", title=f"MBPO Hopper-v5, {record['mbpo'][modes[0]]['steps']} env steps")
        axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=1000, help="updates per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mbpo-steps", type=int, default=250, help="0 skips MBPO")
    parser.add_argument("--name", type=results_name, default="sac_cuda_graph")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.exit(2, "error: sac_cuda_graph needs a CUDA GPU\n")
    device = torch.device("cuda")
    record = {"device": describe_device(device), "batch_size": 256, "updates_per_round": args.updates,
              "rounds": args.rounds, "sac": {}, "mbpo": {}}
    for env_id in ENVS:
        runs = timers(env_id, args.updates)
        rates = {mode: [] for mode in runs}
        for _ in range(args.rounds):
            for mode, run in runs.items():
                rates[mode].append(run())
        row = {f"{mode}_updates_per_second": round(max(values), 1) for mode, values in rates.items()}
        row["graph_over_eager"] = round(row["graph_updates_per_second"] / row["eager_updates_per_second"], 2)
        if "sb3" in runs:
            for mode in MODES:
                row[f"{mode}_over_sb3"] = round(
                    row[f"{mode}_updates_per_second"] / row["sb3_updates_per_second"], 2)
        record["sac"][env_id] = row
        print(env_id, row, flush=True)
        write_results(args.name, record)
    if args.mbpo_steps:
        for mode, graphed in MODES.items():
            record["mbpo"][mode] = mbpo_profile("Hopper-v5", args.mbpo_steps, {"cuda_graph": graphed})
            print("mbpo", mode, record["mbpo"][mode], flush=True)
            write_results(args.name, record)
        record["mbpo_graph_over_eager"] = round(record["mbpo"]["graph"]["env_steps_per_second"]
                                                / record["mbpo"]["eager"]["env_steps_per_second"], 2)
    write_results(args.name, record)
    plot(record, args.name)


if __name__ == "__main__":
    main()
