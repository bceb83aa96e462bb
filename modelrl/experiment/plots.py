"""Learning curves from run directories: mean over seeds with a standard-error band, one line per experiment.

Runs are one experiment's seeds when they share label, agent, env, env arguments and agent config; runs that
differ in any of these are separate lines, never averaged together.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from modelrl.checkpoint import atomic_write
from modelrl.errors import ConfigError, RunDirError
from modelrl.experiment.logger import read_metrics

METRIC_LABELS = {
    "eval_return": "evaluation return (greedy policy)",
    "eval_length": "evaluation episode length",
    "episode_return": "training episode return (last 10)",
}


def warn(message: str) -> None:
    print(f"modelrl: warning: {message}", file=sys.stderr)


def seed_curves(
    rows_per_seed: list[list[dict]], metric: str, label: str = "", report_dropped: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(env_steps, values of shape (seeds, points)) on the env steps every seed evaluated at."""
    logged = [{row["env_steps"] for row in rows} for rows in rows_per_seed]
    common = set.intersection(*logged)
    if not common:
        raise RunDirError(f"the {len(logged)} runs of '{label}' share no evaluation step, so they have no "
                          "mean curve")
    dropped = set.union(*logged) - common
    if report_dropped and dropped:
        warn(f"'{label}': {len(dropped)} evaluation steps that not every seed logged are left out "
             f"(from env step {min(dropped):g}); its curve has the {len(common)} steps all seeds share")
    steps = np.array(sorted(common))
    values = np.array(
        [[{r["env_steps"]: r.get(metric, np.nan) for r in rows}[s] for s in steps] for rows in rows_per_seed],
        dtype=float,
    )
    return steps, values


def mean_and_stderr(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over seeds (axis 0) and its standard error, each point over the seeds with a value there (NaN:
    no episode finished yet). The error uses the sample deviation (ddof=1); it is NaN below two values."""
    present = ~np.isnan(values)
    count = present.sum(axis=0)
    filled = np.where(present, values, 0.0)
    mean = np.divide(filled.sum(axis=0), count, out=np.full(count.shape, np.nan), where=count > 0)
    squares = (np.where(present, values - mean, 0.0) ** 2).sum(axis=0)
    variance = np.divide(squares, count - 1, out=np.full(count.shape, np.nan), where=count > 1)
    return mean, np.sqrt(variance / np.maximum(count, 1))


def _experiment(config: dict[str, Any]) -> str:
    """What makes runs seeds of one experiment, as a comparable string."""
    parts = [config.get("label") or config["agent"], config["agent"], config["env"],
             config.get("env_kwargs") or {}, config.get("config") or {}]
    return json.dumps(parts, sort_keys=True, default=str)


def _distinct_labels(configs: list[dict[str, Any]]) -> list[str]:
    """Each experiment's label; where labels clash, the agent, env and config values that differ are added."""
    base = [str(config.get("label") or config["agent"]) for config in configs]
    labels = []
    for config, label in zip(configs, base):
        clash = [other for other, other_label in zip(configs, base) if other_label == label]
        parts = [label]
        if len(clash) > 1:
            if len({other["agent"] for other in clash}) > 1:
                parts.append(config["agent"])
            if len({other["env"] for other in clash}) > 1:
                parts.append(config["env"].removeprefix("modelrl/"))
            for part in ("env_kwargs", "config"):
                mine = config.get(part) or {}
                keys = sorted(set().union(*(other.get(part) or {} for other in clash)))
                for key in keys:
                    seen = {json.dumps((other.get(part) or {}).get(key), default=str) for other in clash}
                    if len(seen) > 1:
                        parts.append(f"{key}={mine.get(key)}")
        text, copy = " ".join(parts), 1
        while text in labels:  # only if a given label happens to equal another's extended one
            copy += 1
            text = f"{' '.join(parts)} ({copy})"
        labels.append(text)
    return labels


def group_runs(run_dirs: list[str | Path]) -> dict[str, list[list[dict]]]:
    """Metrics rows of each run, grouped by experiment (see the module's doc), keyed by a distinct label."""
    from modelrl.experiment.runner import read_run_config

    groups: dict[str, tuple[dict, list[list[dict]]]] = {}
    seen = set()
    for run_dir in run_dirs:
        config = read_run_config(run_dir)
        if Path(run_dir).resolve() in seen:  # the same run named twice is one seed, not two
            continue
        seen.add(Path(run_dir).resolve())
        rows = read_metrics(Path(run_dir) / "metrics.csv")
        if not rows:
            warn(f"{run_dir} has no metrics yet; it is left out")
            continue
        groups.setdefault(_experiment(config), (config, []))[1].append(rows)
    if not groups:
        raise RunDirError("none of the given run directories has metrics to plot")
    labels = _distinct_labels([config for config, _ in groups.values()])
    return {label: runs for label, (_, runs) in zip(labels, groups.values())}


def plot_curves(
    groups: dict[str, list[list[dict]]], out_path: str | Path, metric: str = "eval_return", title: str = ""
) -> Path:
    available = {key for runs in groups.values() for rows in runs for row in rows for key in row}
    if metric not in available:
        raise RunDirError(f"the runs hold no metric '{metric}'; they hold {', '.join(sorted(available))}")
    out_path = Path(out_path)
    if out_path.is_dir():
        raise ConfigError(f"{out_path} is a directory; give the plot a file name, e.g. "
                          f"{out_path / 'curves.png'}")
    if not out_path.suffix:  # what savefig would write to a bare name
        out_path = out_path.with_suffix(".png")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    kind = out_path.suffix[1:].lower()
    if kind not in fig.canvas.get_supported_filetypes():
        plt.close(fig)
        raise ConfigError(f"cannot draw a '.{kind}' file ({out_path}); use .png, .pdf or .svg")
    for label, rows_per_seed in groups.items():
        steps, values = seed_curves(rows_per_seed, metric, label, report_dropped=True)
        mean, stderr = mean_and_stderr(values)
        seeds = len(rows_per_seed)
        line = ax.plot(steps, mean, label=f"{label} ({seeds} seed{'s' if seeds > 1 else ''})")[0]
        if np.isfinite(stderr).any():
            ax.fill_between(steps, mean - stderr, mean + stderr, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("real environment steps")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    try:
        with atomic_write(out_path, "wb") as f:
            fig.savefig(f, format=kind, dpi=120)
    finally:
        plt.close(fig)
    return out_path


def plot_runs(run_dirs: list[str | Path], out_path: str | Path, metric: str = "eval_return",
              title: str = "") -> Path:
    """Redraw the learning curves of finished or running runs into one PNG."""
    return plot_curves(group_runs(run_dirs), out_path, metric=metric, title=title)
