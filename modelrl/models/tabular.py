"""The table model of Dyna: what each tried (state, action) led to.

Two kinds, one class (Sutton & Barto, section 8.2):
- deterministic: remembers the last outcome of each pair, as in Tabular Dyna-Q. It follows a maze that
  changes, since the newest outcome replaces the old.
- sample: counts every outcome and draws them in proportion to their counts, a sample model of a
  stochastic env such as slippery FrozenLake.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Outcome(NamedTuple):
    reward: float
    next_state: int
    terminated: bool


class TabularModel:
    """Pairs are numbered in the order first seen; planning draws a state among those seen, then one of the
    actions tried there (`draw`)."""

    def __init__(self, stochastic: bool = False):
        self.stochastic = stochastic
        self.pairs: list[tuple[int, int]] = []
        self._index: dict[tuple[int, int], int] = {}
        self._outcomes: list[list[Outcome]] = []
        self._counts: list[list[int]] = []
        self._assumed: set[int] = set()  # pairs never tried, given a made-up outcome (Dyna-Q+)
        self.states: list[int] = []  # states with a modelled pair, in the order first seen
        self._pairs_of: list[list[int]] = []  # the pair indices of each of `states`
        self._slot: dict[int, int] = {}  # state -> its place in `states`
        # next_state -> {(state, action): (reward, terminated)}: the pairs predicted to lead there
        self.predecessors: dict[int, dict[tuple[int, int], tuple[float, bool]]] = {}

    def __len__(self) -> int:
        return len(self.pairs)

    def __contains__(self, pair: tuple[int, int]) -> bool:
        return pair in self._index

    def observe(self, state: int, action: int, reward: float, next_state: int, terminated: bool) -> None:
        outcome = Outcome(float(reward), int(next_state), bool(terminated))
        pair = (int(state), int(action))
        i = self._index.get(pair)
        if i is None:
            i = self._add(pair)
        elif i in self._assumed or not self.stochastic:
            self._assumed.discard(i)
            for old in self._outcomes[i]:
                self.predecessors[old.next_state].pop(pair, None)
            self._outcomes[i], self._counts[i] = [], []
        outcomes, counts = self._outcomes[i], self._counts[i]
        if outcome in outcomes:
            counts[outcomes.index(outcome)] += 1
        else:
            outcomes.append(outcome)
            counts.append(1)
        self.predecessors.setdefault(outcome.next_state, {})[pair] = (outcome.reward, outcome.terminated)

    def assume(self, state: int, action: int, outcome: Outcome) -> None:
        """Give a never-tried pair a made-up outcome, replaced as soon as the pair is really tried."""
        pair = (int(state), int(action))
        if pair in self._index:
            return
        i = self._add(pair)
        self._assumed.add(i)
        self._outcomes[i].append(outcome)
        self._counts[i].append(1)
        self.predecessors.setdefault(outcome.next_state, {})[pair] = (outcome.reward, outcome.terminated)

    def sample(self, index: int, u: float = 0.0) -> Outcome:
        """The outcome of pair `index`; `u` in [0, 1) picks among several in proportion to their counts."""
        outcomes = self._outcomes[index]
        if len(outcomes) == 1:
            return outcomes[0]
        counts = self._counts[index]
        threshold = u * sum(counts)
        for outcome, count in zip(outcomes, counts):
            threshold -= count
            if threshold < 0:
                return outcome
        return outcomes[-1]

    def uniform_draws(self, rng, n: int) -> list[float]:
        """The uniform numbers `sample` picks among a pair's outcomes with, for n samples: a deterministic
        model needs none (zeros, and nothing drawn from `rng`)."""
        return rng.random(n).tolist() if self.stochastic else [0.0] * n

    def draw(self, u_state: float, u_action: float) -> int:
        """The index of a pair: a state uniform among those seen, then an action uniform among those tried
        there (Sutton & Barto's Tabular Dyna-Q, step f); `u_state`, `u_action` in [0, 1)."""
        pairs = self._pairs_of[int(u_state * len(self.states))]
        return pairs[int(u_action * len(pairs))]

    def index(self, state: int, action: int) -> int:
        return self._index[(state, action)]

    def state_dict(self) -> dict[str, Any]:
        """The model as plain lists, tuples and numbers (what a checkpoint may hold). Predecessors are kept
        as they are, not rebuilt: their order decides prioritized sweeping's ties, and a pair's entry is its
        latest outcome there, which the counts do not tell."""
        return {"stochastic": self.stochastic, "pairs": list(self.pairs),
                "outcomes": [[tuple(outcome) for outcome in outcomes] for outcomes in self._outcomes],
                "counts": [list(counts) for counts in self._counts], "assumed": sorted(self._assumed),
                "predecessors": {state: dict(pairs) for state, pairs in self.predecessors.items()}}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> TabularModel:
        model = cls(stochastic=state["stochastic"])
        for pair, outcomes, counts in zip(state["pairs"], state["outcomes"], state["counts"], strict=True):
            i = model._add(tuple(pair))  # in the saved order: the pairs' numbers and the states' order return
            model._outcomes[i] = [Outcome(*outcome) for outcome in outcomes]
            model._counts[i] = list(counts)
        model._assumed = set(state["assumed"])
        model.predecessors = {next_state: dict(pairs) for next_state, pairs in state["predecessors"].items()}
        return model

    def _add(self, pair: tuple[int, int]) -> int:
        i = len(self.pairs)
        self._index[pair] = i
        self.pairs.append(pair)
        slot = self._slot.setdefault(pair[0], len(self.states))
        if slot == len(self.states):
            self.states.append(pair[0])
            self._pairs_of.append([])
        self._pairs_of[slot].append(i)
        self._outcomes.append([])
        self._counts.append([])
        return i
