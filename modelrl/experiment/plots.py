"""Learning curves from run directories: mean over seeds with a standard-error band, one line per label."""

from __future__ import annotations

import warnings
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from modelrl.errors import RunDirError
from modelrl.experiment.logger import read_metrics

METRIC_LABELS = {
    "eval_return": "evaluation return (greedy policy)",
    "eval_length": "evaluation episode length",
    "episode_return": "training episode return (last 10)",
}


def seed_curves(rows_per_seed: list[list[dict]], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(env_steps, values of shape (seeds, points)) on the env steps every seed evaluated at."""
    common = set.intersection(*({row["env_steps"] for row in rows} for rows in rows_per_seed))
    steps = np.array(sorted(common))
    values = np.array(
        [[{r["env_steps"]: r.get(metric, np.nan) for r in rows}[s] for s in steps] for rows in rows_per_seed]
    )
    return steps, values


def group_runs(run_dirs: list[str | Path]) -> dict[str, list[list[dict]]]:
    """Metrics rows of each run, grouped by the run's label (its agent id unless one was given)."""
    from modelrl.experiment.runner import read_run_config

    groups: dict[str, list[list[dict]]] = defaultdict(list)
    for run_dir in run_dirs:
        config = read_run_config(run_dir)
        rows = read_metrics(Path(run_dir) / "metrics.csv")
        if rows:
            groups[str(config.get("label") or config["agent"])].append(rows)
    if not groups:
        raise RunDirError("none of the given run directories has metrics to plot")
    return dict(groups)


def plot_curves(
    groups: dict[str, list[list[dict]]], out_path: str | Path, metric: str = "eval_return", title: str = ""
) -> Path:
    available = {key for runs in groups.values() for rows in runs for row in rows for key in row}
    if metric not in available:
        raise RunDirError(f"the runs hold no metric '{metric}'; they hold {', '.join(sorted(available))}")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, rows_per_seed in groups.items():
        steps, values = seed_curves(rows_per_seed, metric)
        with warnings.catch_warnings():  # episode_return is NaN until the first episode ends
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(values, axis=0)
            stderr = np.nanstd(values, axis=0) / np.sqrt(len(rows_per_seed))
        line = ax.plot(steps, mean, label=f"{label} ({len(rows_per_seed)} seeds)")[0]
        if len(rows_per_seed) > 1:
            ax.fill_between(steps, mean - stderr, mean + stderr, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("real environment steps")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_path, dpi=120)
    plt.close(fig)
    return out_path


def plot_runs(run_dirs: list[str | Path], out_path: str | Path, metric: str = "eval_return", title: str = "") -> Path:
    """Redraw the learning curves of finished or running runs into one PNG."""
    return plot_curves(group_runs(run_dirs), out_path, metric=metric, title=title)
