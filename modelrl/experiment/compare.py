"""Several agents (or configs) x seeds on one env, seeds in parallel processes: a table, JSON and a plot.

An agent spec is `AGENT[:key=value,...]`, e.g. `dyna-q:planning_steps=50`, optionally named with
`LABEL=AGENT[:...]`. The first spec is the baseline the table's ratios are taken against.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelrl.agents import agent_class, make_agent
from modelrl.checkpoint import atomic_write
from modelrl.config import build_config
from modelrl.device import check_device_name
from modelrl.envs import make_env, resolve_env_id
from modelrl.errors import ConfigError, ModelRLError, RunDirError
from modelrl.experiment.plots import plot_curves, seed_curves
from modelrl.experiment.runner import check_run_settings, default_evaluation
from modelrl.experiment.trials import Trial, pool_size, run_in_processes
from modelrl.threads import check_threads, choose_threads


@dataclass
class AgentSpec:
    label: str
    agent_id: str
    overrides: dict[str, Any] = field(default_factory=dict)


def parse_agent_spec(text: str) -> AgentSpec:
    """`[LABEL=]AGENT[:key=value,key=value]` -> AgentSpec."""
    label = None
    head, _, assignments = text.partition(":")
    if "=" in head:
        label, _, head = head.partition("=")
    agent_id = head.strip()
    overrides = {}
    for item in filter(None, (a.strip() for a in assignments.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"agent spec {text!r}: expected key=value after ':', got {item!r}")
        overrides[key.strip()] = value.strip()
    if not agent_id:
        raise ConfigError(f"agent spec {text!r} names no agent")
    return AgentSpec(label or (f"{agent_id} {assignments}".strip() if assignments else agent_id), agent_id,
                     overrides)


def slug(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)


def steps_to_threshold(steps: np.ndarray, values: np.ndarray, threshold: float) -> float:
    """First env step at which a seed's curve reaches `threshold` (NaN if never)."""
    reached = np.flatnonzero(values >= threshold)
    return float(steps[reached[0]]) if len(reached) else math.nan


def censored_median(hits: np.ndarray) -> float:
    """Median steps to a threshold, a seed that never got there counting as later than every other; NaN
    when half the seeds or more never got there (the median is then past the budget)."""
    ordered = np.sort(np.where(np.isnan(hits), np.inf, hits))
    median = float(np.median(ordered)) if len(ordered) else math.nan
    return median if math.isfinite(median) else math.nan


def summarize(groups: dict[str, list[list[dict]]], metric: str, threshold: float | None) -> list[dict]:
    rows = []
    for label, rows_per_seed in groups.items():
        steps, values = seed_curves(rows_per_seed, metric, label)
        final = values[:, -1]
        row = {
            "label": label,
            "seeds": len(rows_per_seed),
            f"final_{metric}_mean": float(np.mean(final)),
            # the sample deviation; one seed has none
            f"final_{metric}_std": float(np.std(final, ddof=1)) if len(final) > 1 else math.nan,
            f"mean_{metric}": float(np.mean(values)),  # area under the curve, per evaluation
            "wall_time_mean": float(np.mean([rows[-1]["wall_time"] for rows in rows_per_seed])),
        }
        if threshold is not None:
            hits = np.array([steps_to_threshold(steps, v, threshold) for v in values])
            row["steps_to_threshold_mean"] = float(np.nanmean(hits)) if np.isfinite(hits).any() else math.nan
            row["steps_to_threshold_median"] = censored_median(hits)
            row["seeds_reaching_threshold"] = int(np.isfinite(hits).sum())
        rows.append(row)
    baseline = rows[0]
    for row in rows:
        # medians, not the means: those average only the seeds that got there, a different subset per agent
        if threshold is not None and baseline["steps_to_threshold_median"] > 0:
            row["steps_to_threshold_ratio"] = (row["steps_to_threshold_median"]
                                               / baseline["steps_to_threshold_median"])
        row["wall_time_ratio"] = (row["wall_time_mean"] / baseline["wall_time_mean"]
                                  if baseline["wall_time_mean"] else math.nan)
    return rows


def markdown_table(summary: list[dict], metric: str) -> str:
    columns = [
        ("label", "agent"),
        ("seeds", "seeds"),
        (f"final_{metric}_mean", f"final {metric}"),
        (f"final_{metric}_std", "± std"),
        (f"mean_{metric}", f"mean {metric} (AUC)"),
        ("steps_to_threshold_median", "median env steps to threshold"),
        ("steps_to_threshold_mean", "mean, seeds reaching it"),
        ("seeds_reaching_threshold", "seeds reaching it"),
        ("steps_to_threshold_ratio", "median ratio vs baseline"),
        ("wall_time_mean", "wall time (s)"),
        ("wall_time_ratio", "time ratio vs baseline"),
    ]
    columns = [(key, title) for key, title in columns if key in summary[0]]
    lines = ["| " + " | ".join(title for _, title in columns) + " |", "|" + "---|" * len(columns)]
    for row in summary:
        cells = [f"{row[k]:.4g}" if isinstance(row[k], float) else str(row[k]) for k, _ in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# Every metrics row holds these (the eval ones when eval_episodes > 0); agents add their own.
ROW_METRICS = ("eval_return", "eval_length", "episode_return", "episodes", "wall_time")
OUTPUTS = ("compare.json", "compare.md", "compare.png")


def check_metric(metric: str, eval_episodes: int, specs: list[AgentSpec]) -> None:
    """Raise on a metric that not every run will log."""
    if metric in ("eval_return", "eval_length") and eval_episodes < 1:
        raise ConfigError(f"metric '{metric}' needs evaluations, but eval_episodes is {eval_episodes}")
    for spec in specs:
        known = set(ROW_METRICS) | set(agent_class(spec.agent_id).metric_names)
        if metric in known:
            continue
        close = difflib.get_close_matches(metric, sorted(known), n=1)
        hint = f"; did you mean {close[0]}?" if close else f"; it logs {', '.join(sorted(known))}"
        raise ConfigError(f"unknown metric '{metric}' for agent spec '{spec.label}'{hint}")


def check_agents(specs: list[AgentSpec], env_id: str, seed: int, total_steps: int,
                 env_kwargs: dict[str, Any] | None = None) -> tuple[int, int]:
    """Build every spec's agent on `env_id` (on the CPU), so every mistake (an unknown agent, key or env, an
    unsuitable action space) surfaces before any run starts; returns the (eval_every, eval_episodes) the
    costliest of them would choose."""
    make_env(env_id, **(env_kwargs or {})).close()
    choose_threads()
    evaluations = []
    for spec in specs:  # building an agent takes moments
        try:
            overrides = dict(spec.overrides)
            config = build_config(agent_class(spec.agent_id).config_class, overrides,
                                  owner=f"agent '{spec.agent_id}'")
            if hasattr(config, "device"):
                # Only checked here: the name, then a CPU build (cheap, and no GPU memory held meanwhile).
                check_device_name(config.device)
                overrides["device"] = "cpu"
            agent = make_agent(spec.agent_id, env=env_id, seed=seed, env_kwargs=env_kwargs, **overrides)
        except ModelRLError as error:
            raise type(error)(f"agent spec '{spec.label}': {error}") from None
        evaluations.append(default_evaluation(agent, total_steps))
        agent.env.close()
    return max(evaluations)  # the fewest evaluations any agent asks for


def compare(
    specs: list[AgentSpec],
    env_id: str,
    *,
    seeds: list[int],
    total_steps: int,
    out_dir: str | Path,
    env_kwargs: dict[str, Any] | None = None,
    eval_every: int | None = None,
    eval_episodes: int = 5,
    metric: str = "eval_return",
    threshold: float | None = None,
    jobs: int | None = None,
    progress: bool = True,
    tensorboard: bool = False,
    threads: int = 1,
) -> dict[str, Any]:
    """Train every spec on every seed, then write compare.json, compare.md and compare.png into `out_dir`.

    `jobs` processes (default: one per core) each give torch `threads` threads. Every agent is evaluated
    alike: `eval_every` and `eval_episodes` default to `default_evaluation`'s choice for the costliest
    agent (a planner's when any agent plans). Every input is checked before any process starts; the first
    run that fails stops the comparison. An `out_dir` holding a comparison is refused, never overwritten.
    """
    if not specs:
        raise ConfigError("compare needs at least one agent spec")
    if not seeds:
        raise ConfigError("compare needs at least one seed")
    labels = [spec.label for spec in specs]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"agent spec labels must differ, got {labels}")
    repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if repeated:
        raise ConfigError(f"seeds must differ; {repeated} given more than once")
    if jobs is not None and jobs < 1:
        raise ConfigError(f"jobs must be >= 1, got {jobs}")
    check_threads(threads)
    for seed in seeds:
        check_run_settings(total_steps=total_steps, eval_every=eval_every, eval_episodes=eval_episodes,
                           seed=seed)
    out_dir = Path(out_dir)
    taken = [name for name in OUTPUTS if (out_dir / name).exists()]
    if taken:
        raise RunDirError(f"{out_dir} already holds a comparison ({', '.join(taken)}); give compare another "
                          "output directory")
    slugs: dict[str, str] = {}
    for spec in specs:
        other = slugs.setdefault(slug(spec.label), spec.label)
        if other != spec.label:
            raise ConfigError(f"agent specs '{other}' and '{spec.label}' would share the run directories "
                              f"{out_dir / 'runs' / slug(spec.label)}-s*; give them labels that differ in "
                              "letters or digits")
    env_id = resolve_env_id(env_id)
    default_every, default_episodes = check_agents(specs, env_id, seeds[0], total_steps, env_kwargs)
    eval_every = default_every if eval_every is None else eval_every
    eval_episodes = default_episodes if eval_episodes is None else eval_episodes
    check_metric(metric, eval_episodes, specs)
    trials = [
        Trial(label=spec.label, agent_id=spec.agent_id, env_id=env_id, seed=seed, total_steps=total_steps,
              eval_every=eval_every, eval_episodes=eval_episodes,
              run_dir=str(out_dir / "runs" / f"{slug(spec.label)}-s{seed}"), overrides=spec.overrides,
              env_kwargs=env_kwargs or {},
              tensorboard=tensorboard,  # off by default: importing it costs each worker about a second
              threads=threads)
        for spec in specs
        for seed in seeds
    ]
    for trial in trials:
        if (Path(trial.run_dir) / "config.yaml").exists():
            raise RunDirError(f"{trial.run_dir} already holds a run; give compare another output directory")
    # Made here, not by the workers, so a failed run's clean-up never races another run for it.
    (out_dir / "runs").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    workers = pool_size(jobs, len(trials))
    finished = run_in_processes(trials, jobs=workers, progress=progress, description=f"compare on {env_id}",
                                stop_on_failure=True)
    elapsed = time.perf_counter() - started

    from modelrl.experiment.plots import group_runs

    order = {label: i for i, label in enumerate(labels)}
    run_dirs = [r["run_dir"] for r in sorted(finished, key=lambda r: (order[r["label"]], r["seed"]))]
    groups = group_runs(run_dirs)
    summary = summarize(groups, metric, threshold)
    plot = plot_curves(groups, out_dir / "compare.png", metric=metric, title=f"{env_id}: {len(seeds)} seeds")
    table = markdown_table(summary, metric)
    result = {
        "env": env_id,
        "env_kwargs": env_kwargs or {},
        "metric": metric,
        "threshold": threshold,
        "total_steps": total_steps,
        "eval_every": eval_every,
        "eval_episodes": eval_episodes,
        "seeds": seeds,
        "threads_per_worker": threads,
        "specs": [spec.__dict__ for spec in specs],
        "summary": summary,
        "runs": run_dirs,
        "elapsed_s": elapsed,
        "workers": workers,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}",
        "plot": str(plot),
    }
    with atomic_write(out_dir / "compare.json", "w", encoding="utf-8") as f:
        f.write(json.dumps(result, indent=2, default=str))
    with atomic_write(out_dir / "compare.md", "w", encoding="utf-8") as f:
        f.write(f"# {env_id}, seeds {seeds}, {total_steps} env steps\n\n{table}")
    result["table"] = table
    return result
