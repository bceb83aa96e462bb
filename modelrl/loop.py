"""The loop an agent learns in: it owns the envs, steps them with the agent's actions, counts real env steps
and episodes, evaluates on a separate env, and hands each evaluation's metrics row to a callback (the runner
logs it and checkpoints).

`TransitionLoop` is the default: each real transition goes to `agent.observe` as it happens, which suits the
agents that learn per step (Dyna, DQN, SAC, MBPO, PETS). It steps one env, or several (`num_envs`, a
Gymnasium vector env) with one action each per step; each env keeps its own episode, its `info` (action
masks, the current player) and the agent's recurrent state for it (`Agent.initial_state` / `Agent.policy`).
An agent that learns otherwise (on sequences at a train ratio, from self-play games) names its own loop in
`Agent.loop_class`, with the same `run`, `evaluate`, `state_dict` and `load_state_dict`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from modelrl.envs import restore_env, save_env_state
from modelrl.errors import ConfigError, IncompatibleEnvError
from modelrl.seeding import stream_seed

if TYPE_CHECKING:
    from modelrl.agents.base import Agent

# Evaluation episodes of envs without a time limit stop here, so a policy that loops cannot hang a run.
DEFAULT_EVAL_MAX_STEPS = 1000
RECENT_EPISODES = 10  # the training `episode_return` in a metrics row averages this many


def evaluation_seed(seed: int, evaluation: int, episode: int) -> int:
    """The reset seed of one evaluation episode: derived from all three, so no two runs' evaluations share
    initial states, however many evaluations they make."""
    return stream_seed(seed, "evaluation", evaluation, episode)


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


class EnvSlot:
    """One training env's episode in progress: its last observation and info (None between episodes), the
    agent's recurrent state for it, and the return and length so far."""

    def __init__(self):
        self.obs, self.info, self.state = None, {}, None
        self.episode_return, self.episode_length = 0.0, 0

    def clear(self) -> None:
        self.obs, self.info, self.state = None, {}, None
        self.episode_return, self.episode_length = 0.0, 0


class TransitionLoop:
    """Real env steps one transition at a time, each handed to the agent as it happens."""

    def __init__(self, agent: Agent, env: gym.Env | gym.vector.VectorEnv,
                 make_eval_env: Callable[[], gym.Env]):
        self.agent, self.env, self.make_eval_env = agent, env, make_eval_env
        self.vector = isinstance(env, gym.vector.VectorEnv)
        if self.vector:
            mode = env.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP)
            if mode != gym.vector.AutoresetMode.NEXT_STEP:
                raise IncompatibleEnvError(f"vector envs must reset in Gymnasium's NEXT_STEP mode, "
                                           f"not {mode}")
        self.num_envs = env.num_envs if self.vector else 1
        self.slots = [EnvSlot() for _ in range(self.num_envs)]
        self.resetting = [False] * self.num_envs  # a vector env resets these on its next step
        self.env_steps = self.episodes = self.evaluations = 0
        self.wall_time = 0.0
        self.episode_returns: list[float] = []
        self.episode_lengths: list[int] = []
        self.eval_env: gym.Env | None = None

    # --- training ---------------------------------------------------------------------------------
    def run(self, total_steps: int | None = None, *, episodes: int | None = None,
            eval_every: int | None = None, eval_episodes: int = 5,
            callback: Callable[[dict], None] | None = None, progress: bool = False) -> list[dict]:
        """See `Agent.learn`. With several envs a step takes one from each, so a run may end up to
        `num_envs - 1` steps past `total_steps`, and evaluations fall at the first step past each multiple
        of `eval_every`."""
        if total_steps is None and episodes is None:
            raise ConfigError("learn() needs total_steps or episodes")
        limits = (("total_steps", total_steps, 0), ("episodes", episodes, 0), ("eval_every", eval_every, 1),
                  ("eval_episodes", eval_episodes, 0))
        for name, value, minimum in limits:
            if value is not None and value < minimum:
                raise ConfigError(f"{name} must be >= {minimum}, got {value}")
        step_target = None if total_steps is None else self.env_steps + total_steps
        episode_target = None if episodes is None else self.episodes + episodes
        self.agent.warn_if_nothing_is_learned(step_target)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total_steps, unit="step", desc=self.agent.agent_id, dynamic_ncols=True)
        history = []
        started, wall_before = time.perf_counter(), self.wall_time
        while (step_target is None or self.env_steps < step_target) and (
            episode_target is None or self.episodes < episode_target
        ):
            before = self.env_steps
            self.step()
            if bar is not None:
                bar.update(self.env_steps - before)
            if eval_every and self.env_steps // eval_every > before // eval_every:
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
        self.agent.assert_finite()
        return history

    def step(self) -> None:
        """One step of every training env."""
        if self.vector:
            self._step_vector()
        else:
            self._step_single()

    def _step_single(self) -> None:
        agent, env, slot = self.agent, self.env, self.slots[0]
        if slot.obs is None:
            # Only the very first reset is seeded; later ones continue the env's own random stream.
            first = self.env_steps == 0 and self.episodes == 0
            slot.obs, slot.info = env.reset(seed=stream_seed(agent.seed, "env") if first else None)
            if first:
                env.action_space.seed(stream_seed(agent.seed, "action space"))
            slot.state = agent.initial_state()
            agent.on_reset(evaluation=False)
        obs = slot.obs
        action, slot.state = agent.policy(obs, slot.state, slot.info, deterministic=False)
        next_obs, reward, terminated, truncated, info = env.step(action)
        self._record(0, slot, obs, action, reward, next_obs, terminated, truncated, info)

    def _step_vector(self) -> None:
        agent, env = self.agent, self.env
        if all(slot.obs is None for slot in self.slots) and not any(self.resetting):
            first = self.env_steps == 0 and self.episodes == 0
            seeds = [stream_seed(agent.seed, "env", i) for i in range(self.num_envs)] if first else None
            observations, infos = env.reset(seed=seeds)
            if first:
                env.action_space.seed(stream_seed(agent.seed, "action space"))
            for i, slot in enumerate(self.slots):
                slot.obs, slot.info, slot.state = observations[i], split_info(infos, i), agent.initial_state()
            agent.on_reset(evaluation=False)
        actions = []
        for i, slot in enumerate(self.slots):
            if self.resetting[i]:  # this env's step resets it; its action is ignored
                actions.append(env.single_action_space.sample())
                continue
            action, slot.state = agent.policy(slot.obs, slot.state, slot.info, deterministic=False)
            actions.append(action)
        observations, rewards, terminations, truncations, infos = env.step(np.stack(actions))
        for i, slot in enumerate(self.slots):
            if self.resetting[i]:
                self.resetting[i] = False
                slot.obs, slot.info, slot.state = observations[i], split_info(infos, i), agent.initial_state()
                continue
            self._record(i, slot, slot.obs, actions[i], rewards[i], observations[i], terminations[i],
                         truncations[i], split_info(infos, i))
            self.resetting[i] = slot.obs is None

    def _record(self, index: int, slot: EnvSlot, obs, action, reward, next_obs, terminated, truncated,
                info: dict) -> None:
        self.env_steps += 1
        slot.episode_return += float(reward)
        slot.episode_length += 1
        self.deliver(index, obs, action, float(reward), next_obs, bool(terminated), bool(truncated), info)
        if terminated or truncated:
            self.episodes += 1
            self.episode_returns.append(slot.episode_return)
            self.episode_lengths.append(slot.episode_length)
            slot.clear()
        else:
            slot.obs, slot.info = next_obs, info

    def deliver(self, index: int, obs, action, reward: float, next_obs, terminated: bool, truncated: bool,
                info: dict) -> None:
        """Hand env `index`'s transition to the agent (a loop of agents that keep each env's stream apart
        passes the index on)."""
        self.agent.observe(obs, action, reward, next_obs, terminated, truncated, info=info)

    def abandon_episodes(self) -> None:
        """Drop the episodes in progress (they are not counted); the next step starts fresh ones."""
        for slot in self.slots:
            slot.clear()
        self.resetting = [False] * self.num_envs

    # --- evaluation -------------------------------------------------------------------------------
    def evaluate(self, episodes: int = 5, max_steps: int | None = None,
                 progress: Callable[[int, int, int], None] | None = None) -> dict[str, float]:
        """Mean return and length of the greedy policy on a separate env (the training envs are untouched),
        each episode reset from `evaluation_seed`. `progress(episode, episodes, step)` is called after
        every step, for a progress display."""
        agent = self.agent
        if self.eval_env is None:
            self.eval_env = self.make_eval_env()
        env = self.eval_env
        if max_steps is None:
            max_steps = env.spec.max_episode_steps if env.spec and env.spec.max_episode_steps else None
            max_steps = max_steps or DEFAULT_EVAL_MAX_STEPS
        returns, lengths = [], []
        for episode in range(episodes):
            agent.hold_training_layout(env)
            obs, info = env.reset(seed=evaluation_seed(agent.seed, self.evaluations, episode))
            state = agent.initial_state()
            agent.on_reset(evaluation=True)
            total, length, done = 0.0, 0, False
            while not done and length < max_steps:
                action, state = agent.policy(obs, state, info, deterministic=True)
                obs, reward, terminated, truncated, info = env.step(action)
                agent.hold_training_layout(env)
                total += float(reward)
                length += 1
                if progress is not None:
                    progress(episode, episodes, length)
                done = terminated or truncated
            returns.append(total)
            lengths.append(length)
        self.evaluations += 1
        return {"eval_return": float(np.mean(returns)), "eval_length": float(np.mean(lengths))}

    def metrics_row(self, eval_episodes: int = 5,
                    progress: Callable[[int, int, int], None] | None = None) -> dict[str, float]:
        self.agent.assert_finite()
        recent = self.episode_returns[-RECENT_EPISODES:]
        row = {
            "env_steps": self.env_steps,
            "episodes": self.episodes,
            "wall_time": round(self.wall_time, 4),
            "episode_return": float(np.mean(recent)) if recent else math.nan,
        }
        row.update(self.evaluate(eval_episodes, progress=progress) if eval_episodes > 0 else {})
        row.update(self.agent.metrics())
        return row

    # --- checkpoints --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Counters, and the episodes in progress with their envs as plain data (`save_env_state`); an env
        that cannot be saved so restarts its episode on resume."""
        state = {"env_steps": self.env_steps, "episodes": self.episodes, "wall_time": self.wall_time,
                 "evaluations": self.evaluations, "episode_returns": self.episode_returns,
                 "episode_lengths": self.episode_lengths}
        if not self.vector:
            slot, env_state = self.slots[0], save_env_state(self.env)
            kept = env_state is not None
            state.update(obs=slot.obs if kept else None, episode_return=slot.episode_return if kept else 0.0,
                         episode_length=slot.episode_length if kept else 0, env=env_state,
                         policy_state=slot.state if kept else None,
                         info=plain_info(slot.info) if kept else {})
            return state
        # A vector env's sub-envs are saved where they can be reached (a SyncVectorEnv's); otherwise every
        # episode in progress restarts.
        subs = getattr(self.env, "envs", None)
        env_states = [save_env_state(sub) for sub in subs] if subs is not None else [None] * self.num_envs
        kept = all(s is not None for s in env_states) and not any(self.resetting)
        state["vector"] = {"envs": env_states if kept else None,
                           "slots": ([{"obs": slot.obs, "episode_return": slot.episode_return,
                                       "episode_length": slot.episode_length, "policy_state": slot.state,
                                       "info": plain_info(slot.info)} for slot in self.slots]
                                     if kept else None)}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env_steps, self.episodes = state["env_steps"], state["episodes"]
        self.wall_time, self.evaluations = state["wall_time"], state["evaluations"]
        self.episode_returns, self.episode_lengths = (list(state["episode_returns"]),
                                                      list(state["episode_lengths"]))
        self.abandon_episodes()
        if not self.vector:
            slot = self.slots[0]
            if state.get("env") is None or not restore_env(self.env, state["env"]):
                return  # the env could not be saved, or restored: its episode restarts
            slot.obs, slot.episode_return, slot.episode_length = (state["obs"], state["episode_return"],
                                                                  state["episode_length"])
            slot.state, slot.info = state.get("policy_state"), dict(state.get("info") or {})
            return
        saved = state.get("vector") or {}
        envs = saved.get("envs")
        if envs is None or len(envs) != self.num_envs or not hasattr(self.env, "envs"):
            return
        self.env.reset()  # a vector env steps only after a reset; the sub-envs are then put back
        if not all(restore_env(sub, sub_state) for sub, sub_state in zip(self.env.envs, envs, strict=True)):
            return  # the episodes restart: the slots are clear, so the next step resets the vector env
        for slot, saved_slot in zip(self.slots, saved["slots"], strict=True):
            slot.obs, slot.episode_return = saved_slot["obs"], saved_slot["episode_return"]
            slot.episode_length, slot.state = saved_slot["episode_length"], saved_slot["policy_state"]
            slot.info = dict(saved_slot["info"])


class StreamLoop(TransitionLoop):
    """The transition loop for agents that learn from each env's stream of steps as a sequence (Dreamer's
    replay of windows): every transition goes to `agent.observe_stream(index, ...)` with its env's index."""

    def deliver(self, index: int, obs, action, reward: float, next_obs, terminated: bool, truncated: bool,
                info: dict) -> None:
        self.agent.observe_stream(index, obs, action, reward, next_obs, terminated, truncated, info)


def split_info(infos: dict, index: int) -> dict:
    """Env `index`'s part of a vector env's info (Gymnasium stacks each key, with a `_key` mask of the envs
    that set it)."""
    return {key: value[index] for key, value in infos.items()
            if not key.startswith("_") and infos.get(f"_{key}", np.ones(index + 1, bool))[index]}


def plain_info(info: dict) -> dict:
    """The part of an info dict a checkpoint can hold (numbers, strings, arrays); the rest is dropped."""
    from modelrl.envs.snapshot import is_plain

    return {key: value for key, value in info.items() if isinstance(key, str) and is_plain(value)}
