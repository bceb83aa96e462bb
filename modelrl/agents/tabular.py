"""Tabular agents: the Q-table, epsilon-greedy acting and the one-step Q-learning update they share.

Q-learning (Watkins 1989; Sutton & Barto section 6.5) is the model-free baseline of the Dyna family.
Defaults are those of Sutton & Barto Example 8.1 (alpha=0.1, epsilon=0.1, gamma=0.95).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from modelrl.agents.base import Agent
from modelrl.envs import make_env
from modelrl.errors import ConfigError, IncompatibleEnvError
from modelrl.memory import require_memory


@dataclass
class QLearningConfig:
    lr: float = 0.1  # step size alpha
    gamma: float = 0.95  # discount factor
    epsilon: float = 0.1  # probability of a random action while training (epsilon-greedy)
    initial_q: float = 0.0  # starting value of every Q-table entry (optimistic values explore)

    def validate(self) -> None:
        if not 0.0 < self.lr <= 1.0:
            raise ConfigError(f"lr must be in (0, 1], got {self.lr}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ConfigError(f"gamma must be in [0, 1], got {self.gamma}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ConfigError(f"epsilon must be in [0, 1], got {self.epsilon}")


class QTable:
    """`rows[state][action]`: Python floats, since planning is a loop of scalar reads and writes, where a list
    is about ten times faster than indexing a NumPy array; and the one-step Q-learning update on them."""

    def __init__(self, n_states: int, n_actions: int, initial: float, lr: float, gamma: float):
        self.rows = [[float(initial)] * n_actions for _ in range(n_states)]
        self.lr, self.gamma = lr, gamma
        self.updates = 0  # real and planned: the cost axis of Example 8.4

    def target(self, reward: float, next_state: int, terminated: bool) -> float:
        return reward if terminated else reward + self.gamma * max(self.rows[next_state])

    def update(self, state: int, action: int, reward: float, next_state: int, terminated: bool) -> None:
        row = self.rows[state]
        row[action] += self.lr * (self.target(reward, next_state, terminated) - row[action])
        self.updates += 1

    def array(self) -> np.ndarray:
        return np.array(self.rows, dtype=np.float64)


class Planning(Protocol):
    """What a tabular agent does with each real step besides acting: Dyna's planning
    (`modelrl.agents.dyna_q`). `learns_directly`: the real step also updates Q directly (prioritized
    sweeping only queues it)."""

    learns_directly: bool
    model: Any

    def observe(self, state: int, action: int, reward: float, next_state: int, terminated: bool,
                step: int) -> None: ...

    def metrics(self) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class TabularAgent(Agent):
    """Q-learning on a table, and, for the Dyna family, a planning component (`make_planning`) that learns
    a model from each real step and plans with it. One class per agent id, each one level below this."""

    metric_names: ClassVar[tuple[str, ...]] = ("updates",)

    def __init__(self, env, config=None, seed: int = 0, env_kwargs: dict | None = None, num_envs: int = 1):
        super().__init__(env, config, seed, env_kwargs, num_envs)
        self.n_states = int(self.env.observation_space.n)
        self.n_actions = int(self.env.action_space.n)
        # a list of rows of pointers to one shared float: 8 bytes an entry, 56 a row
        require_memory(self.n_states * (8 * self.n_actions + 56),
                       f"a Q-table of {self.n_states:,} states x {self.n_actions:,} actions ({self.env_id})")
        self.table = QTable(self.n_states, self.n_actions, self.config.initial_q, self.config.lr,
                            self.config.gamma)
        self.planning = self.make_planning()
        self._path_env = None

    def make_planning(self) -> Planning | None:
        """The component that plans after each real step; None: learn from real steps only."""
        return None

    def check_env(self, env: gym.Env) -> None:
        for name, space in (("observation", env.observation_space), ("action", env.action_space)):
            if not isinstance(space, spaces.Discrete) or space.start != 0:
                raise IncompatibleEnvError(
                    f"agent '{self.agent_id}' needs a Discrete {name} space starting at 0; "
                    f"{self.env_id} has {space}"
                )

    @property
    def q(self) -> np.ndarray:
        """The Q-table, shape (states, actions): a copy."""
        return self.table.array()

    @property
    def updates(self) -> int:
        return self.table.updates

    @property
    def model(self):
        """The planning component's model of the env (a `TabularModel`), None without one."""
        return None if self.planning is None else self.planning.model

    def act(self, obs, deterministic: bool = False) -> int:
        values = self.table.rows[int(obs)]
        best_value = max(values)
        if deterministic:
            return values.index(best_value)
        if self.rng.random() < self.config.epsilon:
            return int(self.rng.integers(self.n_actions))
        best = [a for a, v in enumerate(values) if v == best_value]  # ties broken at random, as in the book
        if not best:  # NaN compares unequal to everything
            self.assert_finite()
        return best[0] if len(best) == 1 else best[int(self.rng.integers(len(best)))]

    def observe(self, obs, action, reward, next_obs, terminated, truncated, info=None) -> None:
        if self.planning is None or self.planning.learns_directly:
            self.table.update(obs, action, reward, next_obs, terminated)
        if self.planning is not None:
            self.planning.observe(obs, action, reward, next_obs, terminated, self.env_steps)

    def greedy_path_length(self) -> int | None:
        """Steps the greedy policy takes from a fresh reset to termination, None if it never gets there.

        For deterministic envs (the mazes), where one rollout tells whether the policy is optimal: a state
        seen twice means the greedy policy loops.
        """
        if self._path_env is None:
            self._path_env = make_env(self.env_id, **self.env_kwargs).unwrapped  # loops are caught below
        env = self._path_env
        self.hold_training_layout(env)
        obs, _ = env.reset(seed=self.seed)
        seen = {obs}
        for step in range(1, self.n_states + 1):
            obs, _, terminated, truncated, _ = env.step(self.act(obs, deterministic=True))
            self.hold_training_layout(env)
            if terminated:
                return step
            if truncated or obs in seen:
                return None
            seen.add(obs)
        return None

    def state_dict(self) -> dict[str, Any]:
        planning = {} if self.planning is None else self.planning.state_dict()
        return {"q": self.q, "updates": self.updates, **planning}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["q"].shape != (self.n_states, self.n_actions):
            raise IncompatibleEnvError(f"Q-table of shape {state['q'].shape} does not fit {self.env_id}")
        self.table.rows = state["q"].tolist()
        self.table.updates = state["updates"]
        if self.planning is not None:
            self.planning.load_state_dict(state)

    def check_finite(self) -> bool:
        return bool(np.isfinite(self.q).all())

    def metrics(self) -> dict[str, float]:
        return {"updates": self.updates, **({} if self.planning is None else self.planning.metrics())}


class QLearning(TabularAgent):
    """One-step tabular Q-learning: learns from real experience only."""

    agent_id = "q-learning"
    config_class = QLearningConfig
