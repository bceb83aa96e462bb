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
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from modelrl.agents.tabular import QLearningConfig, QTable, TabularAgent
from modelrl.envs import is_deterministic
from modelrl.errors import ConfigError
from modelrl.models.tabular import Outcome, TabularModel
from modelrl.seeding import numpy_stream

# A planning update takes about a microsecond, so this many already cost a second or more per real step.
MAX_PLANNING_STEPS = 1_000_000
PLANNING_CHUNK = 4096  # draws made at once: memory stays bounded and Ctrl-C acts between chunks


def check_planning_steps(planning_steps: int) -> None:
    if not 0 <= planning_steps <= MAX_PLANNING_STEPS:
        raise ConfigError(f"planning_steps must be from 0 to {MAX_PLANNING_STEPS:,} (planning updates per "
                          f"real step, each about a microsecond), got {planning_steps:,}")


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


class DynaPlanning:
    """Dyna-Q's planning (Sutton & Barto's Tabular Dyna-Q, steps e-f): the model learns each real step, then
    `planning_steps` one-step Q-learning updates replay pairs drawn from it: a state uniformly among those
    seen, then an action uniformly among those tried there. With a `bonus` (Dyna-Q+), planned rewards get
    its exploration bonus."""

    learns_directly = True

    def __init__(self, table: QTable, model: TabularModel, rng: np.random.Generator, planning_steps: int,
                 bonus: ExplorationBonus | None = None):
        self.table, self.model, self.rng = table, model, rng
        self.planning_steps, self.bonus = planning_steps, bonus

    def observe(self, state: int, action: int, reward: float, next_state: int, terminated: bool,
                step: int) -> None:
        if self.bonus is not None:
            self.bonus.observe(state, action, step, self.model)
        self.model.observe(state, action, reward, next_state, terminated)
        self.plan(self.planning_steps, step)

    def plan(self, n: int, step: int) -> None:
        """n one-step Q-learning updates on pairs drawn from the model (`TabularModel.draw`)."""
        q, model, pairs = self.table.rows, self.model, self.model.pairs
        lr, gamma = self.table.lr, self.table.gamma
        bonus = self.bonus.rows(step) if self.bonus is not None and n else None
        for done in range(0, n, PLANNING_CHUNK):
            chunk = min(PLANNING_CHUNK, n - done)
            pair_draws = self.rng.random((chunk, 2)).tolist()
            for (u_state, u_action), u in zip(pair_draws, model.uniform_draws(self.rng, chunk)):
                i = model.draw(u_state, u_action)
                state, action = pairs[i]
                reward, next_state, terminated = model.sample(i, u)
                if bonus is not None:
                    reward += bonus[state][action]
                row = q[state]
                target = reward if terminated else reward + gamma * max(q[next_state])
                row[action] += lr * (target - row[action])
            self.table.updates += chunk

    def metrics(self) -> dict[str, float]:
        return {"model_pairs": len(self.model)}

    def state_dict(self) -> dict[str, Any]:
        bonus = {} if self.bonus is None else self.bonus.state_dict()
        return {"model": self.model.state_dict(), "planning_rng": self.rng.bit_generator.state, **bonus}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_model_and_rng(self, state)
        if self.bonus is not None:
            self.bonus.load_state_dict(state)


class ExplorationBonus:
    """Dyna-Q+ (section 8.3): kappa sqrt(tau) added to planned rewards, tau being the real steps since the
    pair was last tried; never-tried actions enter planning, modelled as staying put with reward 0 (the
    book's footnote), when `plan_untried_actions`."""

    def __init__(self, n_states: int, n_actions: int, kappa: float, plan_untried_actions: bool):
        self.last_tried = np.zeros((n_states, n_actions), dtype=np.int64)
        self.kappa, self.plan_untried_actions = kappa, plan_untried_actions

    def observe(self, state: int, action: int, step: int, model: TabularModel) -> None:
        self.last_tried[state, action] = step
        if self.plan_untried_actions:
            for other in range(self.last_tried.shape[1]):
                model.assume(state, other, Outcome(0.0, int(state), False))

    def rows(self, step: int) -> list[list[float]]:
        """The bonus of every pair at real step `step`, as rows of floats (planning reads them one by one)."""
        return (self.kappa * np.sqrt(step - self.last_tried)).tolist()

    def state_dict(self) -> dict[str, Any]:
        return {"last_tried": self.last_tried.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last_tried = state["last_tried"].copy()


class SweepingPlanning:
    """Prioritized sweeping (section 8.4, p. 170): a real step only queues its pair, by its expected change;
    all Q updates come from the queue, largest change first, each queueing the predecessors of its state."""

    learns_directly = False

    def __init__(self, table: QTable, model: TabularModel, rng: np.random.Generator, planning_steps: int,
                 theta: float):
        self.table, self.model, self.rng = table, model, rng
        self.planning_steps, self.theta = planning_steps, theta
        self.heap: list[tuple[float, int, int]] = []  # (-priority, state, action); stale entries skipped
        self.priority: dict[tuple[int, int], float] = {}  # the live priority of each queued pair

    def expected_change(self, state: int, action: int, reward: float, next_state: int,
                        terminated: bool) -> float:
        return abs(self.table.target(reward, next_state, terminated) - self.table.rows[state][action])

    def push(self, state: int, action: int, priority: float) -> None:
        if priority <= self.theta or self.priority.get((state, action), -1.0) >= priority:
            return
        self.priority[(state, action)] = priority
        heapq.heappush(self.heap, (-priority, state, action))
        if len(self.heap) > 4 * len(self.priority) + 1024:  # drop stale entries before they pile up
            self.heap = [(-p, s, a) for (s, a), p in self.priority.items()]
            heapq.heapify(self.heap)

    def pop(self) -> tuple[int, int]:
        while True:
            negative_priority, state, action = heapq.heappop(self.heap)
            if self.priority.get((state, action)) == -negative_priority:
                del self.priority[(state, action)]
                return state, action

    def observe(self, state: int, action: int, reward: float, next_state: int, terminated: bool,
                step: int) -> None:
        model = self.model
        model.observe(state, action, reward, next_state, terminated)
        self.push(state, action, self.expected_change(state, action, reward, next_state, terminated))
        n = self.planning_steps
        # drawn a chunk at a time (the first whether used or not), reversed so that pop() takes them in order
        draws = model.uniform_draws(self.rng, min(PLANNING_CHUNK, n))[::-1]
        for done in range(n):
            if not self.priority:
                break
            if not draws:
                draws = model.uniform_draws(self.rng, min(PLANNING_CHUNK, n - done))[::-1]
            queued_state, queued_action = self.pop()
            self.table.update(queued_state, queued_action,
                              *model.sample(model.index(queued_state, queued_action), draws.pop()))
            for (prev_state, prev_action), (prev_reward, prev_terminated) in model.predecessors.get(
                queued_state, {}
            ).items():
                change = self.expected_change(prev_state, prev_action, prev_reward, queued_state,
                                              prev_terminated)
                self.push(prev_state, prev_action, change)

    def metrics(self) -> dict[str, float]:
        return {"model_pairs": len(self.model), "queue_length": len(self.priority)}

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "planning_rng": self.rng.bit_generator.state,
                "heap": list(self.heap), "priority": dict(self.priority)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_model_and_rng(self, state)
        self.heap, self.priority = list(state["heap"]), dict(state["priority"])


def load_model_and_rng(planning: DynaPlanning | SweepingPlanning, state: dict[str, Any]) -> None:
    model = state["model"]
    if isinstance(model, TabularModel):  # a format-1 checkpoint held the model itself
        model = model.state_dict()
    planning.model = TabularModel.from_state_dict(model)  # new lists: never shared with the state's owner
    planning.rng.bit_generator.state = state["planning_rng"]


def table_model(agent: TabularAgent) -> TabularModel:
    """The agent's table model: deterministic or sample, as its config's `model` says ("auto": by the env)."""
    kind = agent.config.model
    return TabularModel(stochastic=(not is_deterministic(agent.env)) if kind == "auto" else kind == "sample")


def planning_rng(agent: TabularAgent) -> np.random.Generator:
    """Planning's random stream, apart from acting's: the amount of planning never changes the actions
    taken."""
    return numpy_stream(agent.seed, "planning")


class DynaQ(TabularAgent):
    agent_id = "dyna-q"
    config_class = DynaQConfig
    metric_names = (*TabularAgent.metric_names, "model_pairs")

    def make_planning(self) -> DynaPlanning:
        return DynaPlanning(self.table, table_model(self), planning_rng(self), self.config.planning_steps)


class DynaQPlus(TabularAgent):
    agent_id = "dyna-q-plus"
    config_class = DynaQPlusConfig
    metric_names = DynaQ.metric_names

    def make_planning(self) -> DynaPlanning:
        bonus = ExplorationBonus(self.n_states, self.n_actions, self.config.kappa,
                                 self.config.plan_untried_actions)
        return DynaPlanning(self.table, table_model(self), planning_rng(self), self.config.planning_steps,
                            bonus)


class PrioritizedSweeping(TabularAgent):
    agent_id = "prioritized-sweeping"
    config_class = PrioritizedSweepingConfig
    metric_names = (*DynaQ.metric_names, "queue_length")

    def make_planning(self) -> SweepingPlanning:
        return SweepingPlanning(self.table, table_model(self), planning_rng(self), self.config.planning_steps,
                                self.config.theta)
