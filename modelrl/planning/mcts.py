"""Monte Carlo tree search over a batch of roots at once (AlphaZero, Silver et al. 2018; MuZero, Schrittwieser
et al. 2020), the trees held in preallocated tensors.

Each of `B` trees has room for `simulations + 1` nodes; node 0 is the root and simulation s adds node s + 1.
Per node: the model's state, prior, legal moves, value estimate, parent and the action from it; per edge
(node, action): the child's index (-1 while unexpanded), the reward on it, its visit count and the sum of the
returns backed up through it. A simulation walks down all trees together (one vectorised pUCT step per
depth), makes one batched model call for every tree's leaf, and backs the leaf's value up all the paths
together: never a Python object per node.

Values are for the player to move at a node. `two_player=True` (alternating zero-sum games) negates a
child's value when it is seen from its parent (negamax); otherwise a child's value is discounted and added
to the edge's reward. pUCT is MuZero's (c1 = 1.25, c2 = 19652) over Q values normalised by the min and max
seen in each tree (unvisited edges count as the minimum), Dirichlet noise mixes into the root's prior, and
illegal moves are never chosen.

A model for `search` has two batched methods:
    root(obs) -> (logits (B, A), value (B,), state (B, ...))
    step(state, action) -> (reward (B,), logits (B, A), value (B,), next state, terminal (B,), legal (B, A))
`reward` is what the acting player gets for the step; at a terminal state `value` is ignored (0).
`GameModel` is that model for a `modelrl.envs.games` board game's rules and a network of the boards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class MCTSConfig:
    simulations: int = 50
    discount: float = 1.0
    two_player: bool = True
    pb_c_init: float = 1.25
    pb_c_base: float = 19652.0
    dirichlet_alpha: float = 0.3
    root_noise: float = 0.25  # share of Dirichlet noise in the root's prior (0: none, as in evaluation)


@dataclass
class SearchResult:
    visits: torch.Tensor  # (B, A) root visit counts
    q: torch.Tensor  # (B, A) mean return of each root action (0 where unvisited)
    value: torch.Tensor  # (B,) the search's value of each root
    prior: torch.Tensor  # (B, A) the root's prior, noise included

    def policy(self, temperature: float = 1.0) -> torch.Tensor:
        """Visit counts ^ (1 / temperature), normalised; temperature 0: all mass on the most visited."""
        if temperature == 0:
            best = self.visits.argmax(-1)
            return torch.nn.functional.one_hot(best, self.visits.shape[-1]).float()
        weights = self.visits ** (1.0 / temperature)
        return weights / weights.sum(-1, keepdim=True)


@torch.no_grad()
def search(model, obs, legal: torch.Tensor, config: MCTSConfig, rng: np.random.Generator | None = None
           ) -> SearchResult:
    """Search from `B` roots (`obs`, with `legal` `(B, A)` moves) and return the roots' statistics."""
    logits, value, state = model.root(obs)
    batch, actions = logits.shape
    device = logits.device
    nodes = config.simulations + 1
    rows = torch.arange(batch, device=device)
    sign = -1.0 if config.two_player else 1.0

    states = torch.zeros(batch, nodes, *state.shape[1:], dtype=state.dtype, device=device)
    prior = torch.zeros(batch, nodes, actions, device=device)
    legal_moves = torch.zeros(batch, nodes, actions, dtype=torch.bool, device=device)
    node_value = torch.zeros(batch, nodes, device=device)
    terminal = torch.zeros(batch, nodes, dtype=torch.bool, device=device)
    parent = torch.full((batch, nodes), -1, dtype=torch.long, device=device)
    parent_action = torch.zeros(batch, nodes, dtype=torch.long, device=device)
    child = torch.full((batch, nodes, actions), -1, dtype=torch.long, device=device)
    edge_reward = torch.zeros(batch, nodes, actions, device=device)
    edge_visits = torch.zeros(batch, nodes, actions, device=device)
    edge_value = torch.zeros(batch, nodes, actions, device=device)
    low = torch.full((batch,), math.inf, device=device)  # min-max statistics of the backed-up returns
    high = torch.full((batch,), -math.inf, device=device)

    root_prior = _masked_softmax(logits, legal)
    if config.root_noise > 0:
        rng = rng if rng is not None else np.random.default_rng()
        noise = rng.dirichlet([config.dirichlet_alpha] * actions, size=batch)
        noise = torch.as_tensor(noise, dtype=root_prior.dtype, device=device) * legal
        noise = noise / noise.sum(-1, keepdim=True).clamp_min(1e-12)
        root_prior = (1 - config.root_noise) * root_prior + config.root_noise * noise
    states[:, 0], prior[:, 0], legal_moves[:, 0], node_value[:, 0] = state, root_prior, legal, value

    for simulation in range(config.simulations):
        # Selection: every tree walks down until its chosen edge has no child yet, or leads to a game's end.
        node = torch.zeros(batch, dtype=torch.long, device=device)
        walking = torch.ones(batch, dtype=torch.bool, device=device)
        while True:
            action = _puct(config, prior[rows, node], legal_moves[rows, node], edge_visits[rows, node],
                           edge_value[rows, node], low, high).argmax(-1)
            next_node = child[rows, node, action]
            deeper = walking & (next_node >= 0)
            deeper &= ~terminal[rows, next_node.clamp_min(0)]
            if not deeper.any():
                break
            node = torch.where(deeper, next_node, node)
            walking = deeper
        leaf_child = child[rows, node, action]
        expand = leaf_child < 0
        # Expansion: one model call for every tree (trees that reached a game's end reuse its node).
        reward, logits, value, next_state, ended, next_legal = model.step(states[rows, node], action)
        new = simulation + 1
        index = torch.where(expand, torch.full_like(node, new), leaf_child)
        if expand.any():
            e = rows[expand]
            states[e, new] = next_state[expand].to(states.dtype)
            prior[e, new] = _masked_softmax(logits[expand], next_legal[expand])
            legal_moves[e, new] = next_legal[expand] & ~ended[expand, None]
            node_value[e, new] = torch.where(ended[expand], 0.0, value[expand])
            terminal[e, new] = ended[expand]
            parent[e, new], parent_action[e, new] = node[expand], action[expand]
            child[e, node[expand], action[expand]] = new
            edge_reward[e, node[expand], action[expand]] = reward[expand]
        # Backup: from the leaf's value up every path to its root.
        returns = node_value[rows, index]
        current = index
        climbing = torch.ones(batch, dtype=torch.bool, device=device)
        while climbing.any():
            up, taken = parent[rows, current], parent_action[rows, current]
            climbing = climbing & (up >= 0)
            if not climbing.any():
                break
            source = up.clamp_min(0)
            returns = torch.where(climbing, edge_reward[rows, source, taken]
                                  + config.discount * sign * returns, returns)
            c = rows[climbing]
            edge_visits[c, source[climbing], taken[climbing]] += 1
            edge_value[c, source[climbing], taken[climbing]] += returns[climbing]
            low = torch.where(climbing, torch.minimum(low, returns), low)
            high = torch.where(climbing, torch.maximum(high, returns), high)
            current = torch.where(climbing, up, current)

    visits, totals = edge_visits[:, 0], edge_value[:, 0]
    q = torch.where(visits > 0, totals / visits.clamp_min(1), 0.0)
    value = (node_value[:, 0] + totals.sum(-1)) / (1 + visits.sum(-1))
    return SearchResult(visits, q, value, root_prior)


def _masked_softmax(logits: torch.Tensor, legal: torch.Tensor) -> torch.Tensor:
    masked = logits.masked_fill(~legal, -math.inf)
    probs = masked.softmax(-1)
    return torch.where(legal.any(-1, keepdim=True), probs, 0.0).nan_to_num(0.0)


def _puct(config: MCTSConfig, prior, legal, visits, totals, low, high) -> torch.Tensor:
    """MuZero's pUCT score of every edge `(B, A)`; illegal edges -inf."""
    parent_visits = visits.sum(-1, keepdim=True) + 1  # the node's own expansion counts as a visit
    exploration = (config.pb_c_init + torch.log((parent_visits + config.pb_c_base + 1) / config.pb_c_base))
    exploration = exploration * parent_visits.sqrt() / (1 + visits)
    q = totals / visits.clamp_min(1)
    spread = (high - low).unsqueeze(-1)
    known = spread > 0
    normalised = torch.where(known, (q - low.unsqueeze(-1)) / spread.where(known, 1.0), q)
    normalised = torch.where(visits > 0, normalised, 0.0)
    return torch.where(legal, normalised + prior * exploration, -math.inf)


class GameModel:
    """A board game's rules as the search's model (AlphaZero): states are boards seen by the player to move;
    `network(boards) -> (logits (B, A), value (B,))` evaluates them (None: a uniform prior and value 0, so
    only the games' ends inform the search)."""

    def __init__(self, game, network=None):
        self.game, self.network = game, network

    def evaluate(self, boards: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.network is None:
            return torch.zeros(len(boards), self.game.actions, device=boards.device), torch.zeros(
                len(boards), device=boards.device)
        return self.network(boards)

    def root(self, boards: torch.Tensor):
        logits, value = self.evaluate(boards)
        return logits, value, boards

    def step(self, boards: torch.Tensor, actions: torch.Tensor):
        next_boards, won, over = self.game.play(boards, actions)
        logits, value = self.evaluate(next_boards)
        return won.float(), logits, value, next_boards, over, self.game.legal(next_boards)
