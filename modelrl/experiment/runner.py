"""One training run on disk: config, metrics, TensorBoard, atomic checkpoints, resume, a learning curve.

    runs/<agent>-<env>-s<seed>-<time>/
        config.yaml          what was asked for (agent, env, seed, steps, eval schedule, full agent config)
        metrics.csv          one row per evaluation
        tb/                  TensorBoard events (`train`; `compare` only with --tensorboard, `demo` never)
        checkpoints/last.pt  written atomically after every evaluation and at the end
        plots/learning_curve.png
"""

from __future__ import annotations

import dataclasses
import numbers
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
import yaml

import modelrl
from modelrl.agents import Agent, agent_class, make_agent
from modelrl.agents.base import DEFAULT_EVAL_MAX_STEPS
from modelrl.buffers import buffers_beside, files_beside
from modelrl.checkpoint import atomic_write, load_checkpoint
from modelrl.config import config_to_dict
from modelrl.envs import require_env_module_imported
from modelrl.errors import ConfigError, RunDirError, require_at_least, require_seed
from modelrl.experiment.logger import MetricsLogger, read_metrics
from modelrl.threads import choose_threads

CHECKPOINT = Path("checkpoints") / "last.pt"
# What a run writes into its directory; a directory already holding any of them is not written into.
RUN_FILES = ("config.yaml", "metrics.csv", "tb", "checkpoints", "plots")
DEFAULT_EVALUATIONS = 20
DEFAULT_EVAL_EPISODES = 5
# A planner plans at every evaluation step as at every training step, so its evaluations are capped.
PLANNER_EVAL_EPISODES = 1
PLANNER_MAX_EVALUATIONS = 10
RowCallback = Callable[[dict[str, float], list[dict[str, float]]], None]


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run: says where the run can be resumed from (`run_dir` None: nowhere, it was
    removed because it had no checkpoint yet)."""

    def __init__(self, run_dir: Path | None, env_steps: int):
        super().__init__()
        self.run_dir, self.env_steps = run_dir, env_steps


@dataclasses.dataclass
class RunResult:
    run_dir: Path
    agent: Agent
    history: list[dict[str, float]]


def default_eval_every(total_steps: int) -> int:
    return max(1, total_steps // DEFAULT_EVALUATIONS)


def default_evaluation(agent: Agent, total_steps: int) -> tuple[int, int]:
    """(eval_every, eval_episodes) when the user gives neither: 5 episodes 20 times a run, except where an
    evaluation step costs about what a training step does: agents that plan at every step (mpc, pets, ...)
    and envs that render every observation as an image. Their evaluations together take at most half the
    run's own steps (episodes counted at full length); planners evaluate one episode, at most 10 times."""
    if agent.plans_every_step:
        most_evaluations, most_episodes = PLANNER_MAX_EVALUATIONS, PLANNER_EVAL_EPISODES
    elif observes_images(agent.env):
        most_evaluations, most_episodes = DEFAULT_EVALUATIONS, DEFAULT_EVAL_EPISODES
    else:
        return default_eval_every(total_steps), DEFAULT_EVAL_EPISODES
    spec = agent.env.spec
    episode = spec.max_episode_steps if spec and spec.max_episode_steps else DEFAULT_EVAL_MAX_STEPS
    affordable = max(1, total_steps // (2 * episode))  # full episodes in half the run's steps
    evaluations = min(most_evaluations, affordable)
    return max(1, total_steps // evaluations), min(most_episodes, affordable // evaluations)


def observes_images(env: gym.Env) -> bool:
    space = env.observation_space
    return isinstance(space, gym.spaces.Box) and len(space.shape) == 3


def check_run_settings(
    *, total_steps: int | None = None, eval_every: int | None = None, eval_episodes: int | None = None,
    seed: int | None = None,
) -> None:
    """One-line errors for settings learn() or the seeding would reject, raised before anything is written."""
    for name, value, minimum in (("total_steps", total_steps, 1), ("eval_every", eval_every, 1),
                                 ("eval_episodes", eval_episodes, 0)):
        require_at_least(name, value, minimum)
    require_seed("seed", seed)


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
    eval_episodes: int | None = None,
    runs_root: str | Path = "runs",
    run_dir: str | Path | None = None,
    label: str | None = None,
    progress: bool = True,
    tensorboard: bool = True,
    threads: int | None = None,
    num_envs: int = 1,
    on_row: RowCallback | None = None,
) -> RunResult:
    """Train a new agent for `total_steps` real env steps, logging and checkpointing into a run directory.

    `eval_every` and `eval_episodes` default to `default_evaluation`'s choice for the agent. A run that
    fails before its first checkpoint could neither be resumed nor trained again in place, so what this
    call created is removed then. `on_row(row, rows)` is called after each evaluation's row is logged and
    checkpointed, with every row logged so far.
    """
    check_run_settings(total_steps=total_steps, eval_every=eval_every, eval_episodes=eval_episodes, seed=seed)
    # Built before anything is written, so bad input leaves no half-made run directory.
    agent = make_agent(agent_id, env=env_id, seed=seed, env_kwargs=env_kwargs, threads=threads,
                       num_envs=num_envs, **(overrides or {}))
    env_id = agent.env_id
    run_dir = Path(run_dir) if run_dir is not None else new_run_dir(runs_root, agent_id, env_id, seed)
    check_run_dir_is_free(run_dir)
    default_every, default_episodes = default_evaluation(agent, total_steps)
    run_config = {
        "agent": agent_id,
        "env": env_id,
        "env_kwargs": dict(agent.env_kwargs),
        "num_envs": num_envs,
        "seed": seed,
        "label": label or agent_id,
        "total_steps": total_steps,
        "eval_every": default_every if eval_every is None else eval_every,
        "eval_episodes": default_episodes if eval_episodes is None else eval_episodes,
        "config": config_to_dict(agent.config),
        "threads": torch.get_num_threads(),  # torch's CPU threads in the process that started the run
        "modelrl_version": modelrl.__version__,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    created = [p for p in (run_dir, *run_dir.parents) if not p.exists()]  # deepest first
    before = set() if created else set(run_dir.iterdir())
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        write_run_config(run_dir, run_config)
        return _run(agent, run_dir, run_config, MetricsLogger(run_dir, tensorboard=tensorboard), progress,
                    on_row)
    except BaseException as error:
        resumable = (run_dir / CHECKPOINT).is_file()
        if not resumable:
            _remove_created(run_dir, created, before)
        if isinstance(error, KeyboardInterrupt) and not isinstance(error, RunInterrupted):
            raise RunInterrupted(run_dir if resumable else None, agent.env_steps) from None
        raise


def check_run_dir_is_free(run_dir: Path) -> None:
    """A new run writes only into a directory holding none of the files a run writes: never over a run, nor
    over a user's own files of those names."""
    if (run_dir / "config.yaml").exists():
        if not (run_dir / CHECKPOINT).is_file():  # e.g. killed before its first evaluation
            raise RunDirError(f"run directory {run_dir} holds a run with no checkpoint (still starting, or "
                              "stopped before its first one); choose another, or delete it if it stopped")
        raise RunDirError(f"run directory {run_dir} already holds a run; resume it or choose another")
    taken = [name for name in RUN_FILES if (run_dir / name).exists()]
    if taken:
        raise RunDirError(f"run directory {run_dir} already holds {', '.join(taken)}, which a run would "
                          "overwrite; choose another directory")


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
    for key in ("agent", "env"):
        if not isinstance(config[key], str):
            raise RunDirError(f"{path}: {key} must be a string, got {config[key]!r}")
    for key, minimum in (("total_steps", 1), ("eval_every", 1), ("eval_episodes", 0), ("seed", 0)):
        value = config.get(key, minimum)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
            raise RunDirError(f"{path}: {key} must be a whole number >= {minimum}, got {value!r}")
    try:
        require_seed("seed", config.get("seed", 0))
    except ConfigError as error:
        raise RunDirError(f"{path}: {error}") from None
    for key in ("env_kwargs", "config"):
        if not isinstance(config.get(key, {}), dict):
            raise RunDirError(f"{path}: {key} must be a mapping of key: value, got {config[key]!r}")
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
                "config": "config", "num_envs": "num_envs"}
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
    run_dir: str | Path, *, total_steps: int | None = None, progress: bool = True, tensorboard: bool = True,
    threads: int | None = None, on_row: RowCallback | None = None,
) -> RunResult:
    """Continue a run from its last checkpoint up to its `total_steps` (or a new, larger `total_steps`);
    `on_row` as for train."""
    choose_threads(threads)
    run_dir = Path(run_dir)
    run_config = read_run_config(run_dir)
    check_run_settings(total_steps=total_steps)
    require_env_module_imported(run_config["env"], str(run_dir / "config.yaml"))
    checkpoint = run_dir / CHECKPOINT
    if not checkpoint.is_file():
        raise RunDirError(f"{run_dir} has no checkpoint to resume from ({CHECKPOINT} is missing): it is "
                          "still starting, or stopped before its first one; then delete it and train again")
    payload = load_checkpoint(checkpoint)
    check_checkpoint_matches(payload, run_config, checkpoint)
    with files_beside(buffers_beside(checkpoint)):
        agent = agent_class(payload["agent_id"]).from_checkpoint(payload)
    if total_steps is not None:
        if total_steps < agent.env_steps:
            raise ConfigError(f"total_steps {total_steps} is below the {agent.env_steps} steps already taken")
        run_config["total_steps"] = total_steps
        write_run_config(run_dir, run_config)
    # Rows logged after the checkpoint was written describe steps that will be taken again.
    rows = [row for row in read_metrics(run_dir / "metrics.csv") if row["env_steps"] <= agent.env_steps]
    try:
        return _run(agent, run_dir, run_config, MetricsLogger(run_dir, rows, tensorboard=tensorboard),
                    progress, on_row)
    except KeyboardInterrupt as interrupt:
        if isinstance(interrupt, RunInterrupted):
            raise
        raise RunInterrupted(run_dir, agent.env_steps) from None


def _run(agent: Agent, run_dir: Path, run_config: dict, logger: MetricsLogger, progress: bool,
         on_row: RowCallback | None = None) -> RunResult:
    checkpoint = run_dir / CHECKPOINT

    def on_evaluation(row: dict[str, float]) -> None:
        logger.log(row)
        agent.save(checkpoint, buffers="beside")
        if on_row is not None:  # after the checkpoint: a sweep's scheduler may stop the run on this row
            on_row(row, logger.rows)

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
    agent.save(checkpoint, buffers="beside")
    if logger.rows:
        from modelrl.experiment.plots import plot_runs

        metric = "eval_return" if "eval_return" in logger.rows[-1] else "episode_return"
        plot_runs([run_dir], run_dir / "plots" / "learning_curve.png", metric=metric)
    return RunResult(run_dir, agent, history)
