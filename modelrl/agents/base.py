"""The contract every agent keeps, and the real-environment loop they all share.

`learn(total_steps=N)` takes N more real env steps; every agent counts them the same way, so they are the
x-axis of every sample-efficiency plot. Calling it again continues the episode in progress. A concrete
agent supplies `act` (choose an action) and `observe` (learn from one real transition), plus
`state_dict` / `load_state_dict` for what it has learned; the base does stepping, episodes, evaluation,
seeding and checkpoints.
"""

from __future__ import annotations

import math
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from modelrl.checkpoint import load_checkpoint, save_checkpoint
from modelrl.config import build_config, config_to_dict
from modelrl.envs import make_env, require_env_module_imported, resolve_env_id, restore_env, save_env_state
from modelrl.errors import (
    CheckpointError,
    ConfigError,
    IncompatibleEnvError,
    TrainingDivergedError,
    require_seed,
)
from modelrl.seeding import numpy_stream, stream_seed

# Evaluation episodes of envs without a time limit stop here, so a policy that loops cannot hang a run.
DEFAULT_EVAL_MAX_STEPS = 1000


def evaluation_seed(seed: int, evaluation: int, episode: int) -> int:
    """The reset seed of one evaluation episode: derived from all three, so no two runs' evaluations share
    initial states, however many evaluations they make."""
    return stream_seed(seed, "evaluation", evaluation, episode)


RECENT_EPISODES = 10  # the training `episode_return` in a metrics row averages this many


class EvaluationStatus:
    """Shows an evaluation in progress on a tqdm bar: an evaluation of a planner can take minutes."""

    REFRESH_SECONDS = 0.5

    def __init__(self, bar):
        self.bar, self.shown = bar, 0.0

    def __call__(self, episode: int, episodes: int, step: int) -> None:
        now = time.monotonic()
        if now - self.shown >= self.REFRESH_SECONDS:
            self.bar.set_postfix_str(f"evaluating: episode {episode + 1}/{episodes}, step {step}")
            self.shown = now


class Agent(ABC):
    agent_id: ClassVar[str]
    config_class: ClassVar[type]
    # Agents that plan at every step (mpc, pets) pay as much per evaluation step as per training step.
    plans_every_step: ClassVar[bool] = False
    # Every key `metrics()` may return, so a metric can be checked before anything runs.
    metric_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, env_id: str, config=None, seed: int = 0, env_kwargs: dict | None = None):
        self.env_id = resolve_env_id(env_id)
        self.env_kwargs = dict(env_kwargs or {})
        self.config = config if config is not None else build_config(self.config_class, owner=self.agent_id)
        require_seed("seed", seed)
        self.seed = int(seed)
        self.env = make_env(self.env_id, **self.env_kwargs)
        self.check_env(self.env)
        self.rng = numpy_stream(self.seed, "acting")  # exploration, random actions, replay batches
        self.env_steps = 0
        self.episodes = 0
        self.wall_time = 0.0
        self.episode_returns: list[float] = []
        self.episode_lengths: list[int] = []
        self.evaluations = 0
        self._obs = None  # None between episodes
        self._episode_return = 0.0
        self._episode_length = 0
        self._eval_env: gym.Env | None = None

    # --- what a concrete agent supplies -------------------------------------------------------------
    def check_env(self, env: gym.Env) -> None:
        """Raise `IncompatibleEnvError` if the env's spaces don't suit this agent."""

    def require_flat_box_observations(self, env: gym.Env) -> None:
        if not (isinstance(env.observation_space, gym.spaces.Box) and len(env.observation_space.shape) == 1):
            raise IncompatibleEnvError(
                f"{self.agent_id} needs flat Box observations; {self.env_id} has {env.observation_space}")

    @abstractmethod
    def act(self, obs, deterministic: bool = False):
        """Return an action for `obs`: the greedy one if `deterministic`, else an exploring one."""

    @abstractmethod
    def observe(self, obs, action, reward: float, next_obs, terminated: bool, truncated: bool) -> None:
        """Learn from one real transition (model fitting, planning and updates happen here)."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything learned (tables, networks, buffers, optimiser states) as plain data: tensors, arrays,
        numbers, strings, and dicts, lists and tuples of them (checkpoints load nothing else)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""

    def on_reset(self, evaluation: bool) -> None:
        """Called after every env reset (training or evaluation episode): forget per-episode state."""

    def metrics(self) -> dict[str, float]:
        """Agent-specific numbers for the metrics row (losses, update counts)."""
        return {}

    def first_learning_step(self) -> tuple[int, str] | None:
        """The env step of the first update or model fit, and the setting that puts it there (e.g.
        `(5000, "learning_starts=5000")`); None for agents that learn from their first step."""
        return None

    def check_finite(self) -> bool:
        """False when learned values hold NaN or infinity."""
        return True

    # --- the shared loop ----------------------------------------------------------------------------
    def learn(
        self,
        total_steps: int | None = None,
        *,
        episodes: int | None = None,
        eval_every: int | None = None,
        eval_episodes: int = 5,
        callback: Callable[[dict], None] | None = None,
        progress: bool = False,
    ) -> list[dict]:
        """Take `total_steps` more real env steps (or until `episodes` more episodes end, whichever first).

        Every `eval_every` env steps (counted from the agent's first step, so resumed runs keep the
        schedule) it evaluates the greedy policy, appends a metrics row to the returned list and passes it
        to `callback`.
        """
        if total_steps is None and episodes is None:
            raise ConfigError("learn() needs total_steps or episodes")
        limits = (("total_steps", total_steps, 0), ("episodes", episodes, 0), ("eval_every", eval_every, 1),
                  ("eval_episodes", eval_episodes, 0))
        for name, value, minimum in limits:
            if value is not None and value < minimum:
                raise ConfigError(f"{name} must be >= {minimum}, got {value}")
        step_target = None if total_steps is None else self.env_steps + total_steps
        episode_target = None if episodes is None else self.episodes + episodes
        self._warn_if_nothing_is_learned(step_target)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total_steps, unit="step", desc=self.agent_id, dynamic_ncols=True)
        history = []
        started, wall_before = time.perf_counter(), self.wall_time
        while (step_target is None or self.env_steps < step_target) and (
            episode_target is None or self.episodes < episode_target
        ):
            self._step()
            if bar is not None:
                bar.update(1)
            if eval_every and self.env_steps % eval_every == 0:
                self.wall_time = wall_before + time.perf_counter() - started
                row = self.metrics_row(eval_episodes, progress=None if bar is None else EvaluationStatus(bar))
                history.append(row)
                if bar is not None and "eval_return" in row:
                    bar.set_postfix(eval_return=f"{row['eval_return']:.3g}", episodes=self.episodes)
                if callback is not None:
                    callback(row)
        self.wall_time = wall_before + time.perf_counter() - started
        if bar is not None:
            bar.close()
        self._assert_finite()
        return history

    def _warn_if_nothing_is_learned(self, step_target: int | None) -> None:
        first = self.first_learning_step()
        if step_target is not None and first is not None and step_target < first[0]:
            warnings.warn(f"{self.agent_id} learns nothing before env step {first[0]} ({first[1]}), and this "
                          f"run ends at env step {step_target}: it only collects experience; give it more "
                          "steps or an earlier start", stacklevel=3)

    def _step(self) -> None:
        if self._obs is None:
            # Only the very first reset is seeded; later ones continue the env's own random stream.
            first = self.env_steps == 0 and self.episodes == 0
            self._obs, _ = self.env.reset(seed=stream_seed(self.seed, "env") if first else None)
            if first:
                self.env.action_space.seed(stream_seed(self.seed, "action space"))
            self.on_reset(evaluation=False)
        obs = self._obs
        action = self.act(obs)
        next_obs, reward, terminated, truncated, _ = self.env.step(action)
        self.env_steps += 1
        self._episode_return += float(reward)
        self._episode_length += 1
        self.observe(obs, action, float(reward), next_obs, bool(terminated), bool(truncated))
        if terminated or truncated:
            self.episodes += 1
            self.episode_returns.append(self._episode_return)
            self.episode_lengths.append(self._episode_length)
            self._obs, self._episode_return, self._episode_length = None, 0.0, 0
        else:
            self._obs = next_obs

    def abandon_episode(self) -> None:
        """Drop the episode in progress (it is not counted); the next step starts a fresh one."""
        self._obs, self._episode_return, self._episode_length = None, 0.0, 0

    def evaluate(self, episodes: int = 5, max_steps: int | None = None,
                 progress: Callable[[int, int, int], None] | None = None) -> dict[str, float]:
        """Mean return and length of the greedy policy on a separate env (the training env is untouched).

        `progress(episode, episodes, step)` is called after every step, for a progress display."""
        if self._eval_env is None:
            self._eval_env = make_env(self.env_id, **self.env_kwargs)
        env = self._eval_env
        if max_steps is None:
            max_steps = env.spec.max_episode_steps if env.spec and env.spec.max_episode_steps else None
            max_steps = max_steps or DEFAULT_EVAL_MAX_STEPS
        returns, lengths = [], []
        for episode in range(episodes):
            self.hold_training_layout(env)
            obs, _ = env.reset(seed=evaluation_seed(self.seed, self.evaluations, episode))
            self.on_reset(evaluation=True)
            total, length, done = 0.0, 0, False
            while not done and length < max_steps:
                obs, reward, terminated, truncated, _ = env.step(self.act(obs, deterministic=True))
                self.hold_training_layout(env)
                total += float(reward)
                length += 1
                if progress is not None:
                    progress(episode, episodes, length)
                done = terminated or truncated
            returns.append(total)
            lengths.append(length)
        self.evaluations += 1
        return {"eval_return": float(np.mean(returns)), "eval_length": float(np.mean(lengths))}

    def hold_training_layout(self, env: gym.Env) -> None:
        """Envs that change over their lifetime (the chapter-8 mazes) are judged in the layout the training
        env has now: `env`'s clock is set to training's before its episode and after each of its steps."""
        clock = getattr(self.env.unwrapped, "lifetime_steps", None)
        if clock is not None:
            env.unwrapped.lifetime_steps = clock

    def _assert_finite(self) -> None:
        if not self.check_finite():
            raise TrainingDivergedError(
                f"{self.agent_id} diverged: NaN or infinite values after {self.env_steps} env steps"
            )

    def metrics_row(self, eval_episodes: int = 5,
                    progress: Callable[[int, int, int], None] | None = None) -> dict[str, float]:
        self._assert_finite()
        recent = self.episode_returns[-RECENT_EPISODES:]
        row = {
            "env_steps": self.env_steps,
            "episodes": self.episodes,
            "wall_time": round(self.wall_time, 4),
            "episode_return": float(np.mean(recent)) if recent else math.nan,
        }
        row.update(self.evaluate(eval_episodes, progress=progress) if eval_episodes > 0 else {})
        row.update(self.metrics())
        return row

    # --- checkpoints --------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write everything needed to continue exactly where this agent stands, atomically."""
        env_state = save_env_state(self.env)  # the episode in progress: positions, RNGs, a maze's clock
        return save_checkpoint(
            path,
            {
                "agent_id": self.agent_id,
                "env_id": self.env_id,
                "env_kwargs": self.env_kwargs,
                "seed": self.seed,
                "config": config_to_dict(self.config),
                "agent": self.state_dict(),
                "loop": {
                    "rng": self.rng.bit_generator.state,
                    "env_steps": self.env_steps,
                    "episodes": self.episodes,
                    "wall_time": self.wall_time,
                    "evaluations": self.evaluations,
                    "episode_returns": self.episode_returns,
                    "episode_lengths": self.episode_lengths,
                    "obs": self._obs if env_state is not None else None,
                    "episode_return": self._episode_return if env_state is not None else 0.0,
                    "episode_length": self._episode_length if env_state is not None else 0,
                    "env": env_state,
                },
            },
        )

    def _restore(self, payload: dict[str, Any]) -> None:
        loop = payload["loop"]
        self.load_state_dict(payload["agent"])
        self.rng.bit_generator.state = loop["rng"]
        self.env_steps, self.episodes = loop["env_steps"], loop["episodes"]
        self.wall_time, self.evaluations = loop["wall_time"], loop["evaluations"]
        self.episode_returns, self.episode_lengths = list(loop["episode_returns"]), list(loop["episode_lengths"])
        self._obs = loop["obs"]
        self._episode_return, self._episode_length = loop["episode_return"], loop["episode_length"]
        if loop["env"] is None or not restore_env(self.env, loop["env"]):  # onto the env __init__ made
            self.abandon_episode()  # the env could not be saved, or restored: its episode restarts

    @classmethod
    def from_checkpoint(cls, payload: dict[str, Any]) -> Agent:
        if payload.get("agent_id") != cls.agent_id:
            raise CheckpointError(f"this is a checkpoint of {payload.get('agent_id')!r}, not of {cls.agent_id!r}; "
                                  "modelrl.load(path) rebuilds whichever agent a checkpoint holds")
        try:
            require_env_module_imported(payload["env_id"], "this checkpoint")
            config = build_config(cls.config_class, payload["config"], owner=cls.agent_id)
            agent = cls(payload["env_id"], config, seed=payload["seed"], env_kwargs=payload["env_kwargs"])
            agent._restore(payload)
        except KeyError as missing:
            raise CheckpointError(f"this {cls.agent_id} checkpoint lacks {missing}: it was written by another "
                                  "modelrl version, or is damaged") from None
        return agent

    @classmethod
    def load(cls, path: str | Path) -> Agent:
        """Rebuild this kind of agent from a checkpoint (`modelrl.load` takes any kind)."""
        return cls.from_checkpoint(load_checkpoint(path))
