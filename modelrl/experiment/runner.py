"""One training run on disk: config, metrics, TensorBoard, atomic checkpoints, resume, a learning curve.

    runs/<agent>-<env>-s<seed>-<time>/
        config.yaml          what was asked for (agent, env, seed, steps, eval schedule, full agent config)
        metrics.csv          one row per evaluation
        tb/                  TensorBoard events
        checkpoints/last.pt  written atomically after every evaluation and at the end
        plots/learning_curve.png
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import yaml

import modelrl
from modelrl.agents import Agent, load, make_agent
from modelrl.config import config_to_dict
from modelrl.errors import ConfigError, RunDirError
from modelrl.experiment.logger import MetricsLogger, read_metrics

CHECKPOINT = Path("checkpoints") / "last.pt"


@dataclasses.dataclass
class RunResult:
    run_dir: Path
    agent: Agent
    history: list[dict[str, float]]


def default_eval_every(total_steps: int) -> int:
    return max(1, total_steps // 20)


def new_run_dir(runs_root: str | Path, agent_id: str, env_id: str, seed: int) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"{agent_id}-{env_id.replace('/', '_')}-s{seed}-{stamp}"
    path = Path(runs_root) / name
    suffix = 1
    while path.exists():
        suffix += 1
        path = Path(runs_root) / f"{name}-{suffix}"
    return path


def train(
    agent_id: str,
    env_id: str,
    *,
    total_steps: int,
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
    env_kwargs: dict[str, Any] | None = None,
    eval_every: int | None = None,
    eval_episodes: int = 5,
    runs_root: str | Path = "runs",
    run_dir: str | Path | None = None,
    label: str | None = None,
    progress: bool = True,
    tensorboard: bool = True,
) -> RunResult:
    """Train a new agent for `total_steps` real env steps, logging and checkpointing into a run directory."""
    if total_steps < 1:
        raise ConfigError(f"total_steps must be positive, got {total_steps}")
    # Built before anything is written, so bad input leaves no half-made run directory.
    agent = make_agent(agent_id, env=env_id, seed=seed, env_kwargs=env_kwargs, **(overrides or {}))
    env_id = agent.env_id
    run_dir = Path(run_dir) if run_dir is not None else new_run_dir(runs_root, agent_id, env_id, seed)
    if (run_dir / "config.yaml").exists():
        raise RunDirError(f"run directory {run_dir} already holds a run; resume it or choose another")
    run_dir.mkdir(parents=True, exist_ok=True)
    run_config = {
        "agent": agent_id,
        "env": env_id,
        "env_kwargs": dict(env_kwargs or {}),
        "seed": seed,
        "label": label or agent_id,
        "total_steps": total_steps,
        "eval_every": eval_every or default_eval_every(total_steps),
        "eval_episodes": eval_episodes,
        "config": config_to_dict(agent.config),
        "modelrl_version": modelrl.__version__,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    (run_dir / "config.yaml").write_text(yaml.safe_dump(run_config, sort_keys=False))
    return _run(agent, run_dir, run_config, MetricsLogger(run_dir, tensorboard=tensorboard), progress)


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise RunDirError(f"{run_dir} is not a run directory (no config.yaml)")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        raise RunDirError(f"{path} is not valid YAML") from None
    if not isinstance(config, dict) or not {"agent", "env", "total_steps"} <= set(config):
        raise RunDirError(f"{path} is not a modelrl run config")
    return config


def resume(
    run_dir: str | Path, *, total_steps: int | None = None, progress: bool = True, tensorboard: bool = True
) -> RunResult:
    """Continue a run from its last checkpoint up to its `total_steps` (or a new, larger `total_steps`)."""
    run_dir = Path(run_dir)
    run_config = read_run_config(run_dir)
    checkpoint = run_dir / CHECKPOINT
    if not checkpoint.is_file():
        raise RunDirError(f"{run_dir} has no checkpoint to resume from ({CHECKPOINT} is missing)")
    agent = load(checkpoint)
    if total_steps is not None:
        if total_steps < agent.env_steps:
            raise ConfigError(f"total_steps {total_steps} is below the {agent.env_steps} steps already taken")
        run_config["total_steps"] = total_steps
        (run_dir / "config.yaml").write_text(yaml.safe_dump(run_config, sort_keys=False))
    # Rows logged after the checkpoint was written describe steps that will be taken again.
    rows = [row for row in read_metrics(run_dir / "metrics.csv") if row["env_steps"] <= agent.env_steps]
    return _run(agent, run_dir, run_config, MetricsLogger(run_dir, rows, tensorboard=tensorboard), progress)


def _run(agent: Agent, run_dir: Path, run_config: dict, logger: MetricsLogger, progress: bool) -> RunResult:
    checkpoint = run_dir / CHECKPOINT

    def on_evaluation(row: dict[str, float]) -> None:
        logger.log(row)
        agent.save(checkpoint)

    try:
        history = agent.learn(
            run_config["total_steps"] - agent.env_steps,
            eval_every=run_config["eval_every"],
            eval_episodes=run_config["eval_episodes"],
            callback=on_evaluation,
            progress=progress,
        )
    finally:
        # An interrupted step may be half done, so the last whole checkpoint stays the one to resume from.
        logger.close()
    agent.save(checkpoint)
    if logger.rows:
        from modelrl.experiment.plots import plot_runs

        metric = "eval_return" if "eval_return" in logger.rows[-1] else "episode_return"
        plot_runs([run_dir], run_dir / "plots" / "learning_curve.png", metric=metric)
    return RunResult(run_dir, agent, history)
