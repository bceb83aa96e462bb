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
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

import modelrl
from modelrl.agents import Agent, agent_class, make_agent
from modelrl.checkpoint import atomic_write, load_checkpoint
from modelrl.config import config_to_dict
from modelrl.errors import ConfigError, RunDirError, require_at_least
from modelrl.experiment.logger import MetricsLogger, read_metrics

CHECKPOINT = Path("checkpoints") / "last.pt"


@dataclasses.dataclass
class RunResult:
    run_dir: Path
    agent: Agent
    history: list[dict[str, float]]


def default_eval_every(total_steps: int) -> int:
    return max(1, total_steps // 20)


def check_run_settings(
    *, total_steps: int | None = None, eval_every: int | None = None, eval_episodes: int | None = None,
    seed: int | None = None,
) -> None:
    """One-line errors for settings learn() or the seeding would reject, raised before anything is written."""
    for name, value, minimum in (("total_steps", total_steps, 1), ("eval_every", eval_every, 1),
                                 ("eval_episodes", eval_episodes, 0), ("seed", seed, 0)):
        require_at_least(name, value, minimum)


def new_run_dir(runs_root: str | Path, agent_id: str, env_id: str, seed: int) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"{agent_id}-{env_id.replace('/', '_')}-s{seed}-{stamp}"
    path = Path(runs_root) / name
    suffix = 1
    while path.exists():
        suffix += 1
        path = Path(runs_root) / f"{name}-{suffix}"
    return path


def write_run_config(run_dir: Path, run_config: dict[str, Any]) -> None:
    with atomic_write(run_dir / "config.yaml", "w", encoding="utf-8") as f:
        yaml.safe_dump(run_config, f, sort_keys=False)


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
    """Train a new agent for `total_steps` real env steps, logging and checkpointing into a run directory.

    A run that fails before its first checkpoint could neither be resumed nor trained again in place, so
    what this call created is removed then.
    """
    check_run_settings(total_steps=total_steps, eval_every=eval_every, eval_episodes=eval_episodes, seed=seed)
    # Built before anything is written, so bad input leaves no half-made run directory.
    agent = make_agent(agent_id, env=env_id, seed=seed, env_kwargs=env_kwargs, **(overrides or {}))
    env_id = agent.env_id
    run_dir = Path(run_dir) if run_dir is not None else new_run_dir(runs_root, agent_id, env_id, seed)
    if (run_dir / "config.yaml").exists():
        if not (run_dir / CHECKPOINT).is_file():  # e.g. killed before its first evaluation
            raise RunDirError(f"run directory {run_dir} holds a run with no checkpoint (still starting, or "
                              "stopped before its first one); choose another, or delete it if it stopped")
        raise RunDirError(f"run directory {run_dir} already holds a run; resume it or choose another")
    run_config = {
        "agent": agent_id,
        "env": env_id,
        "env_kwargs": dict(agent.env_kwargs),
        "seed": seed,
        "label": label or agent_id,
        "total_steps": total_steps,
        "eval_every": default_eval_every(total_steps) if eval_every is None else eval_every,
        "eval_episodes": eval_episodes,
        "config": config_to_dict(agent.config),
        "modelrl_version": modelrl.__version__,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    created = [p for p in (run_dir, *run_dir.parents) if not p.exists()]  # deepest first
    before = set() if created else set(run_dir.iterdir())
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        write_run_config(run_dir, run_config)
        return _run(agent, run_dir, run_config, MetricsLogger(run_dir, tensorboard=tensorboard), progress)
    except BaseException:
        if not (run_dir / CHECKPOINT).is_file():
            _remove_created(run_dir, created, before)
        raise


def _remove_created(run_dir: Path, created: list[Path], before: set[Path]) -> None:
    """Undo a run that never reached its first checkpoint: only what train() made goes."""
    for path in [run_dir] if created else set(run_dir.iterdir()) - before:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    for parent in created[1:]:
        try:  # a parent shared with a run started meanwhile (compare's workers) is not empty: it stays
            parent.rmdir()
        except OSError:
            break


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise RunDirError(f"{run_dir} is not a run directory (no config.yaml)")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        raise RunDirError(f"{path} is not valid YAML") from None
    if not isinstance(config, dict) or not {"agent", "env", "total_steps"} <= set(config):
        raise RunDirError(f"{path} is not a modelrl run config")
    return config


def _plain(value: Any) -> Any:
    """`value` as config.yaml would give it back (tuples become lists), to compare a checkpoint with it."""
    try:
        return yaml.safe_load(yaml.safe_dump(value))
    except yaml.YAMLError:
        return value


def check_checkpoint_matches(payload: dict[str, Any], run_config: dict[str, Any], path: Path) -> None:
    """A checkpoint copied in from another run would continue that run and log into this one: refuse it."""
    expected = {"agent_id": "agent", "env_id": "env", "env_kwargs": "env_kwargs", "seed": "seed",
                "config": "config"}
    for key, config_key in expected.items():
        if config_key not in run_config:  # a hand-edited config.yaml; the rest is still checked
            continue
        want, have = run_config[config_key], _plain(payload.get(key))
        if isinstance(want, dict) and isinstance(have, dict):
            differ = [f"{k}={have.get(k)!r} (config.yaml: {want.get(k)!r})"
                      for k in sorted(set(want) | set(have), key=str)
                      if want.get(k) != have.get(k) or (k in want) != (k in have)]
            detail = ", ".join(differ)
        else:
            detail = f"{have!r} (config.yaml: {want!r})"
        if have != want:
            raise RunDirError(f"checkpoint {path} is not this run's: its {config_key} differs: {detail}")


def resume(
    run_dir: str | Path, *, total_steps: int | None = None, progress: bool = True, tensorboard: bool = True
) -> RunResult:
    """Continue a run from its last checkpoint up to its `total_steps` (or a new, larger `total_steps`)."""
    run_dir = Path(run_dir)
    run_config = read_run_config(run_dir)
    check_run_settings(total_steps=total_steps)
    checkpoint = run_dir / CHECKPOINT
    if not checkpoint.is_file():
        raise RunDirError(f"{run_dir} has no checkpoint to resume from ({CHECKPOINT} is missing): it is "
                          "still starting, or stopped before its first one; then delete it and train again")
    payload = load_checkpoint(checkpoint)
    check_checkpoint_matches(payload, run_config, checkpoint)
    agent = agent_class(payload["agent_id"]).from_checkpoint(payload)
    if total_steps is not None:
        if total_steps < agent.env_steps:
            raise ConfigError(f"total_steps {total_steps} is below the {agent.env_steps} steps already taken")
        run_config["total_steps"] = total_steps
        write_run_config(run_dir, run_config)
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
