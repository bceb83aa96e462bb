"""The contract every agent keeps. The loop it learns in is `modelrl.loop` (replaceable per agent).

`learn(total_steps=N)` takes N more real env steps; every agent counts them the same way, so they are the
x-axis of every sample-efficiency plot. Calling it again continues the episodes in progress.

What a concrete agent supplies:
- `act(obs, deterministic)`: an action for one observation; or, for an agent that keeps a state between
  steps (a recurrent latent) or reads the env's `info` (action masks, the current player), `policy(obs,
  state, info, deterministic) -> (action, state)` with `initial_state()`.
- `observe(obs, action, reward, next_obs, terminated, truncated, info=None)`: learn from one real
  transition (model fitting, planning, updates happen here), for the default loop.
- `state_dict()` / `load_state_dict(state)`: everything it has learned, as plain data.
- optionally `check_env`, `on_reset`, `metrics` (with `metric_names`), `first_learning_step`,
  `check_finite`, and `loop_class`: a loop of its own (a train-ratio loop over sequences, an actor/learner
  loop over games), built as `loop_class(agent, env, make_eval_env)`.
The base builds the env (an id, an env instance, or `num_envs` copies as a vector env: in this process, or
each in a process of its own where the config has `env_processes=True`), seeds, and saves and restores the
agent with its loop.
"""

from __future__ import annotations

import copy
import functools
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym

from modelrl.buffers import buffers_beside, files_beside
from modelrl.checkpoint import load_checkpoint, save_checkpoint
from modelrl.config import build_config, config_to_dict
from modelrl.envs import make_env, require_env_module_imported, resolve_env_id
from modelrl.errors import (
    CheckpointError,
    ConfigError,
    IncompatibleEnvError,
    TrainingDivergedError,
    require_seed,
)
from modelrl.loop import DEFAULT_EVAL_MAX_STEPS, TransitionLoop, evaluation_seed
from modelrl.seeding import numpy_stream

__all__ = ["DEFAULT_EVAL_MAX_STEPS", "Agent", "evaluation_seed"]


class Agent(ABC):
    agent_id: ClassVar[str]
    config_class: ClassVar[type]
    # Agents that plan at every step (mpc, pets) pay as much per evaluation step as per training step.
    plans_every_step: ClassVar[bool] = False
    # Every key `metrics()` may return, so a metric can be checked before anything runs.
    metric_names: ClassVar[tuple[str, ...]] = ()
    # False for agents that keep per-episode state of their own (a planner's warm start): one env at a time.
    supports_num_envs: ClassVar[bool] = True
    loop_class: ClassVar[type] = TransitionLoop

    def __init__(self, env: str | gym.Env, config=None, seed: int = 0, env_kwargs: dict | None = None,
                 num_envs: int = 1):
        self.config = config if config is not None else build_config(self.config_class, owner=self.agent_id)
        require_seed("seed", seed)
        self.seed = int(seed)
        self.env_kwargs = dict(env_kwargs or {})
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ConfigError(f"num_envs must be a whole number >= 1, got {num_envs!r}")
        if num_envs > 1 and not self.supports_num_envs:
            raise ConfigError(f"{self.agent_id} keeps per-episode state of its own, so it learns with one "
                              f"env at a time; num_envs must be 1, got {num_envs}")
        self.num_envs = num_envs
        if isinstance(env, gym.Env):  # the user's own instance: evaluation gets a copy made before any use
            if self.env_kwargs:
                raise ConfigError("env_kwargs go with an env id; an env instance is already built")
            if num_envs > 1:
                raise ConfigError("num_envs > 1 needs an env id (each copy is made from it)")
            self.env_id = env.spec.id if env.spec is not None else None
            try:
                spare = copy.deepcopy(env)
            except Exception as error:  # noqa: BLE001  (an env may hold anything)
                raise ConfigError(f"evaluation runs on a copy of the env, and this one cannot be copied "
                                  f"({type(error).__name__}); pass an env id instead") from None
            self.env, training = env, env
            self._make_eval_env = lambda: spare
        elif isinstance(env, str):
            self.env_id = resolve_env_id(env)
            self._make_eval_env = lambda: make_env(self.env_id, **self.env_kwargs)
            if num_envs == 1:
                self.env = training = make_env(self.env_id, **self.env_kwargs)
            elif getattr(self.config, "env_processes", False):  # each env in a process of its own
                make = functools.partial(make_env, self.env_id, **self.env_kwargs)  # picklable, unlike self
                training = gym.vector.AsyncVectorEnv([make] * num_envs)
                self.env = make()  # for its spaces; never stepped
            else:  # stepped together; `env` is the first, for its spaces and its clock
                training = gym.vector.SyncVectorEnv([self._make_eval_env for _ in range(num_envs)])
                self.env = training.envs[0]
        else:
            raise ConfigError(f"env must be an env id or a Gymnasium env, got {type(env).__name__}")
        self.check_env(self.env)
        self.rng = numpy_stream(self.seed, "acting")  # exploration, random actions, replay batches
        self._idle_checked = False  # `warn_if_nothing_is_learned` speaks once, at most
        self.loop = self.loop_class(self, training, self._make_eval_env)

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

    def initial_state(self) -> Any:
        """The state the policy starts each episode with (a recurrent latent); None for stateless agents."""
        return None

    def policy(self, obs, state: Any, info: dict, deterministic: bool = False) -> tuple[Any, Any]:
        """The action for `obs` (with the env's `info` from the step that produced it) and the next state;
        stateless agents act on `obs` alone."""
        return self.act(obs, deterministic), state

    @abstractmethod
    def observe(self, obs, action, reward: float, next_obs, terminated: bool, truncated: bool,
                info: dict | None = None) -> None:
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

    # --- learning, through the loop -----------------------------------------------------------------
    def learn(self, total_steps: int | None = None, *, episodes: int | None = None,
              eval_every: int | None = None, eval_episodes: int = 5,
              callback: Callable[[dict], None] | None = None, progress: bool = False) -> list[dict]:
        """Take `total_steps` more real env steps (or until `episodes` more episodes end, whichever first).

        Every `eval_every` env steps (counted from the agent's first step, so resumed runs keep the
        schedule) it evaluates the greedy policy, appends a metrics row to the returned list and passes it
        to `callback`.
        """
        return self.loop.run(total_steps, episodes=episodes, eval_every=eval_every,
                             eval_episodes=eval_episodes, callback=callback, progress=progress)

    def evaluate(self, episodes: int = 5, max_steps: int | None = None,
                 progress: Callable[[int, int, int], None] | None = None) -> dict[str, float]:
        """Mean return and length of the greedy policy on a separate env (the training env is untouched)."""
        return self.loop.evaluate(episodes, max_steps, progress)

    def metrics_row(self, eval_episodes: int = 5,
                    progress: Callable[[int, int, int], None] | None = None) -> dict[str, float]:
        return self.loop.metrics_row(eval_episodes, progress)

    @property
    def env_steps(self) -> int:
        return self.loop.env_steps

    @property
    def episodes(self) -> int:
        return self.loop.episodes

    @property
    def evaluations(self) -> int:
        return self.loop.evaluations

    @property
    def wall_time(self) -> float:
        return self.loop.wall_time

    @property
    def episode_returns(self) -> list[float]:
        return self.loop.episode_returns

    @property
    def episode_lengths(self) -> list[int]:
        return self.loop.episode_lengths

    def abandon_episode(self) -> None:
        """Drop the episodes in progress (they are not counted); the next step starts fresh ones."""
        self.loop.abandon_episodes()

    def hold_training_layout(self, env: gym.Env) -> None:
        """Envs that change over their lifetime (the chapter-8 mazes) are judged in the layout the training
        env has now: `env`'s clock is set to training's before its episode and after each of its steps."""
        clock = getattr(self.env.unwrapped, "lifetime_steps", None)
        if clock is not None:
            env.unwrapped.lifetime_steps = clock

    def warn_if_nothing_is_learned(self, step_target: int | None) -> None:
        """Once per agent: a run learning in chunks (learn(1000) at a time) is told at its first chunk (later
        chunks only end later). A harness that knows the whole run's end checks that first."""
        if self._idle_checked or step_target is None:
            return
        self._idle_checked = True
        first = self.first_learning_step()
        if first is not None and step_target < first[0]:
            warnings.warn(f"{self.agent_id} learns nothing before env step {first[0]} ({first[1]}), and this "
                          f"run ends at env step {step_target}: it only collects experience; give it more "
                          "steps or an earlier start", stacklevel=4)

    def assert_finite(self) -> None:
        if not self.check_finite():
            raise TrainingDivergedError(
                f"{self.agent_id} diverged: NaN or infinite values after {self.env_steps} env steps"
            )

    # --- checkpoints --------------------------------------------------------------------------------
    def save(self, path: str | Path, buffers: str = "inline") -> Path:
        """Write everything needed to continue exactly where this agent stands, atomically. `buffers`:
        "inline" puts replay buffers in the file; "beside" keeps them as chunk files in `<path>.buffers/`,
        written only where they changed since the last save there (a run's checkpoints at each evaluation)."""
        if buffers not in ("inline", "beside"):
            raise ConfigError(f"buffers must be 'inline' or 'beside', got {buffers!r}")
        with files_beside(buffers_beside(path)) if buffers == "beside" else nullcontext() as files:
            loop = self.loop.state_dict()
            loop["rng"] = self.rng.bit_generator.state
            written = save_checkpoint(path, {"agent_id": self.agent_id, "env_id": self.env_id,
                                             "env_kwargs": self.env_kwargs, "num_envs": self.num_envs,
                                             "seed": self.seed, "config": config_to_dict(self.config),
                                             "agent": self.state_dict(), "loop": loop})
        if files is not None:  # the checkpoint is in place: chunk files it no longer needs can go
            files.keep_only(files.written)
        return written

    @classmethod
    def from_checkpoint(cls, payload: dict[str, Any], env: gym.Env | None = None) -> Agent:
        """The agent a checkpoint holds; `env`: the env instance it was trained on, when it was given one
        rather than an id (an instance is not saved)."""
        if payload.get("agent_id") != cls.agent_id:
            raise CheckpointError(f"this is a checkpoint of {payload.get('agent_id')!r}, not of "
                                  f"{cls.agent_id!r}; modelrl.load(path) rebuilds whichever agent a "
                                  "checkpoint holds")
        try:
            env_id = payload["env_id"]
            if env is None and env_id is None:
                raise CheckpointError(f"this {cls.agent_id} checkpoint was trained on an env instance, "
                                      "not an env id: give that env again (modelrl.load(path, env=...))")
            if env is None:
                require_env_module_imported(env_id, "this checkpoint")
            config = build_config(cls.config_class, payload["config"], owner=cls.agent_id)
            agent = cls(env if env is not None else env_id, config, seed=payload["seed"],
                        env_kwargs=payload["env_kwargs"] if env is None else None,
                        num_envs=payload.get("num_envs", 1))
            try:
                agent.load_state_dict(payload["agent"])
            except (RuntimeError, ValueError) as error:  # torch's size mismatch, a buffer's capacity
                detail = " ".join(str(error).split())[:300]
                raise CheckpointError(f"this {cls.agent_id} checkpoint does not fit the agent its config "
                                      f"builds in this modelrl version: {detail}") from None
            agent.rng.bit_generator.state = payload["loop"]["rng"]
            agent.loop.load_state_dict(payload["loop"])
        except KeyError as missing:
            raise CheckpointError(f"this {cls.agent_id} checkpoint lacks {missing}: it was written by "
                                  "another modelrl version, or is damaged") from None
        return agent

    @classmethod
    def load(cls, path: str | Path, env: gym.Env | None = None) -> Agent:
        """Rebuild this kind of agent from a checkpoint (`modelrl.load`, or `Agent.load`, takes any kind)."""
        if cls is Agent:  # the base class: whichever agent the checkpoint holds
            from modelrl.agents import load

            return load(path, env=env)
        payload = load_checkpoint(path)
        with files_beside(buffers_beside(path)):
            return cls.from_checkpoint(payload, env)
