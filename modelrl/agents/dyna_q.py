"""The Dyna family (Sutton 1990; Sutton & Barto 2018, chapter 8): Dyna-Q, Dyna-Q+, prioritized sweeping.

Each real step updates a table model; planning then replays transitions drawn from the model through the
same one-step Q-learning update as real experience. Planning draws from a random stream of its own, so the
amount of planning does not change which actions are taken: with the same seed, Dyna-Q's first episode on
the Dyna maze is the same for every n, as in Example 8.1.
- Dyna-Q plans on `planning_steps` (n) pairs: a state drawn uniformly from those seen, then an action
  uniformly from those tried there (the book's Tabular Dyna-Q, step f).
- Dyna-Q+ adds kappa * sqrt(tau) to planned rewards, tau being the real steps since the pair was last
  tried, and lets never-tried actions into planning, modelled as staying put with reward 0 (section 8.3).
- Prioritized sweeping (section 8.4; Moore & Atkeson 1993, Peng & Williams 1993) plans on the pairs
  with the largest expected change, working backwards through their predecessors.
"""

from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from modelrl.agents.tabular import QLearningConfig, TabularAgent
from modelrl.envs import is_deterministic
from modelrl.errors import ConfigError
from modelrl.models.tabular import Outcome, TabularModel

# A planning update takes about a microsecond, so this many already cost a second or more per real step.
MAX_PLANNING_STEPS = 1_000_000
PLANNING_CHUNK = 4096  # draws made at once: memory stays bounded and Ctrl-C acts between chunks


def check_planning_steps(planning_steps: int) -> None:
    if not 0 <= planning_steps <= MAX_PLANNING_STEPS:
        raise ConfigError(f"planning_steps must be from 0 to {MAX_PLANNING_STEPS:,} (planning updates per real "
                          f"step, each about a microsecond), got {planning_steps:,}")


@dataclass
class DynaQConfig(QLearningConfig):
    planning_steps: int = 5  # n; Figure 8.2 compares 0, 5 and 50
    # "deterministic" keeps the last outcome of each pair (the book's Dyna-Q); "sample" draws outcomes in
    # proportion to their counts (stochastic envs); "auto" picks deterministic only for envs that say so.
    model: Literal["auto", "deterministic", "sample"] = "auto"

    def validate(self) -> None:
        super().validate()
        check_planning_steps(self.planning_steps)


@dataclass
class DynaQPlusConfig(DynaQConfig):
    kappa: float = 1e-3  # bonus scale; small next to the maze's goal reward of 1
    plan_untried_actions: bool = True  # the book's footnote to Dyna-Q+

    def validate(self) -> None:
        super().validate()
        if not (math.isfinite(self.kappa) and self.kappa >= 0):
            raise ConfigError(f"kappa must be finite and >= 0, got {self.kappa}")


@dataclass
class PrioritizedSweepingConfig(DynaQConfig):
    theta: float = 1e-4  # pairs whose expected change is at most theta are not queued

    def validate(self) -> None:
        super().validate()
        if self.planning_steps < 1:
            raise ConfigError("prioritized sweeping learns only by planning: planning_steps must be >= 1")
        if not (math.isfinite(self.theta) and self.theta >= 0):
            raise ConfigError(f"theta must be finite and >= 0, got {self.theta}")


class _ModelBasedTabular(TabularAgent):
    """A tabular agent with a table model of its env."""

    metric_names = (*TabularAgent.metric_names, "model_pairs")

    def __init__(self, env_id: str, config=None, seed: int = 0, env_kwargs: dict | None = None):
        super().__init__(env_id, config, seed, env_kwargs)
        kind = self.config.model
        stochastic = (not is_deterministic(self.env)) if kind == "auto" else kind == "sample"
        self.model = TabularModel(stochastic=stochastic)
        self.planning_rng = np.random.default_rng(np.random.SeedSequence([self.seed, 2]))

    def _draws(self, n: int):
        """Uniform numbers that pick among a pair's outcomes; a deterministic model needs none."""
        return self.planning_rng.random(n).tolist() if self.model.stochastic else itertools.repeat(0.0, n)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "model": self.model.state_dict(),
                "planning_rng": self.planning_rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        model = state["model"]
        if isinstance(model, TabularModel):  # a format-1 checkpoint held the model itself
            model = model.state_dict()
        self.model = TabularModel.from_state_dict(model)  # new lists: never shared with the state's owner
        self.planning_rng.bit_generator.state = state["planning_rng"]

    def metrics(self) -> dict[str, float]:
        return {**super().metrics(), "model_pairs": len(self.model)}


class DynaQ(_ModelBasedTabular):
    agent_id = "dyna-q"
    config_class = DynaQConfig

    def observe(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        self.q_update(obs, action, reward, next_obs, terminated)
        self.model.observe(obs, action, reward, next_obs, terminated)
        self.plan(self.config.planning_steps)

    def planning_bonus(self) -> list[list[float]] | None:
        """A table (rows of floats) added to planned rewards (Dyna-Q+), or None."""
        return None

    def plan(self, n: int) -> None:
        """n one-step Q-learning updates on pairs drawn from the model (`TabularModel.draw`)."""
        q, model = self.q_rows, self.model
        lr, gamma = self.config.lr, self.config.gamma
        bonus = self.planning_bonus() if n else None
        pairs = model.pairs
        for done in range(0, n, PLANNING_CHUNK):
            chunk = min(PLANNING_CHUNK, n - done)
            for (u_state, u_action), u in zip(self.planning_rng.random((chunk, 2)).tolist(), self._draws(chunk)):
                i = model.draw(u_state, u_action)
                state, action = pairs[i]
                reward, next_state, terminated = model.sample(i, u)
                if bonus is not None:
                    reward += bonus[state][action]
                row = q[state]
                target = reward if terminated else reward + gamma * max(q[next_state])
                row[action] += lr * (target - row[action])
            self.updates += chunk


class DynaQPlus(DynaQ):
    agent_id = "dyna-q-plus"
    config_class = DynaQPlusConfig

    def __init__(self, env_id: str, config=None, seed: int = 0, env_kwargs: dict | None = None):
        super().__init__(env_id, config, seed, env_kwargs)
        self.last_tried = np.zeros((self.n_states, self.n_actions), dtype=np.int64)

    def observe(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        self.last_tried[obs, action] = self.env_steps
        if self.config.plan_untried_actions:
            for other in range(self.n_actions):
                self.model.assume(obs, other, Outcome(0.0, int(obs), False))
        super().observe(obs, action, reward, next_obs, terminated, truncated)

    def planning_bonus(self) -> list[list[float]]:
        return (self.config.kappa * np.sqrt(self.env_steps - self.last_tried)).tolist()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "last_tried": self.last_tried.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.last_tried = state["last_tried"].copy()


class PrioritizedSweeping(_ModelBasedTabular):
    """Real steps only queue their pair; all Q updates come from the queue (Sutton & Barto, p. 170)."""

    agent_id = "prioritized-sweeping"
    config_class = PrioritizedSweepingConfig
    metric_names = (*_ModelBasedTabular.metric_names, "queue_length")

    def __init__(self, env_id: str, config=None, seed: int = 0, env_kwargs: dict | None = None):
        super().__init__(env_id, config, seed, env_kwargs)
        self._heap: list[tuple[float, int, int]] = []  # (-priority, state, action); stale entries skipped
        self._priority: dict[tuple[int, int], float] = {}  # the live priority of each queued pair

    def _expected_change(self, state, action, reward, next_state, terminated) -> float:
        target = reward if terminated else reward + self.config.gamma * max(self.q_rows[next_state])
        return abs(target - self.q_rows[state][action])

    def _push(self, state: int, action: int, priority: float) -> None:
        if priority <= self.config.theta or self._priority.get((state, action), -1.0) >= priority:
            return
        self._priority[(state, action)] = priority
        heapq.heappush(self._heap, (-priority, state, action))
        if len(self._heap) > 4 * len(self._priority) + 1024:  # drop stale entries before they pile up
            self._heap = [(-p, s, a) for (s, a), p in self._priority.items()]
            heapq.heapify(self._heap)

    def _pop(self) -> tuple[int, int]:
        while True:
            negative_priority, state, action = heapq.heappop(self._heap)
            if self._priority.get((state, action)) == -negative_priority:
                del self._priority[(state, action)]
                return state, action

    def observe(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        self.model.observe(obs, action, reward, next_obs, terminated)
        self._push(obs, action, self._expected_change(obs, action, reward, next_obs, terminated))
        n = self.config.planning_steps
        # drawn a chunk at a time (the first whether used or not), reversed so that pop() takes them in order
        draws = list(self._draws(min(PLANNING_CHUNK, n)))[::-1]
        for done in range(n):
            if not self._priority:
                break
            if not draws:
                draws = list(self._draws(min(PLANNING_CHUNK, n - done)))[::-1]
            state, action = self._pop()
            self.q_update(state, action, *self.model.sample(self.model.index(state, action), draws.pop()))
            for (prev_state, prev_action), (prev_reward, prev_terminated) in self.model.predecessors.get(
                state, {}
            ).items():
                change = self._expected_change(prev_state, prev_action, prev_reward, state, prev_terminated)
                self._push(prev_state, prev_action, change)

    def metrics(self) -> dict[str, float]:
        return {**super().metrics(), "queue_length": len(self._priority)}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "heap": list(self._heap), "priority": dict(self._priority)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._heap, self._priority = list(state["heap"]), dict(state["priority"])
