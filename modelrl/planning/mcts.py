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

`gumbel=True` chooses the root's actions as Gumbel MuZero does (Danihelka et al. 2022), which keeps improving
on the prior with very few simulations: Gumbel noise g is added to the root's logits, the `max_considered`
best actions by g + logits are kept, and sequential halving spends the simulations on them, each phase
visiting the remaining actions equally and keeping the better half by g + logits + sigma(q), sigma(q) =
(c_visit + max visits) c_scale q with q min-max normalised. The action is the best remaining one by that
score, and the policy target is softmax(logits + sigma(completed q)), unvisited actions' q completed by the
value mixed with the visited ones' (v_mix). Below the root, pUCT as usual.
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
    gumbel: bool = False  # Gumbel MuZero's root: sampled top actions and sequential halving (no Dirichlet)
    max_considered: int = 16  # Gumbel: actions kept at the root
    c_visit: float = 50.0  # Gumbel: sigma(q) = (c_visit + max visits) c_scale q
    c_scale: float = 0.1


@dataclass
class SearchResult:
    visits: torch.Tensor  # (B, A) root visit counts
    q: torch.Tensor  # (B, A) mean return of each root action (0 where unvisited)
    value: torch.Tensor  # (B,) the search's value of each root
    prior: torch.Tensor  # (B, A) the root's prior, noise included
    action: torch.Tensor  # (B,) the action to play: the most visited, or Gumbel's choice
    # (B, A) the policy target: the visit distribution, or Gumbel's softmax of completed q
    improved_policy: torch.Tensor

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
    base = rows * nodes  # flat index of each tree's root; node n of tree b is base[b] + n
    sign = -1.0 if config.two_player else 1.0

    # Per node (flat, B * N rows). `edges` packs what pUCT reads of a node's edges, one gather per depth:
    # the prior, the visit counts, the sums of returns, and 0 or -inf for legal or illegal moves.
    states = torch.zeros(batch * nodes, *state.shape[1:], dtype=state.dtype, device=device)
    edges = torch.zeros(batch * nodes, 4, actions, device=device)
    node_value = torch.zeros(batch * nodes, device=device)
    terminal = torch.zeros(batch * nodes, dtype=torch.bool, device=device)
    parent = torch.full((batch * nodes,), -1, dtype=torch.long, device=device)  # flat index, -1 at roots
    parent_action = torch.zeros(batch * nodes, dtype=torch.long, device=device)
    # Per edge (flat, B * N * A): the child's flat index (-1 while unexpanded) and the reward on the edge.
    child = torch.full((batch * nodes * actions,), -1, dtype=torch.long, device=device)
    edge_reward = torch.zeros(batch * nodes * actions, device=device)
    low = torch.full((batch,), math.inf, device=device)  # min-max statistics of the backed-up returns
    high = torch.full((batch,), -math.inf, device=device)

    root_prior = _masked_softmax(logits, legal)
    root_logits = logits.masked_fill(~legal, -math.inf)
    if config.gumbel:
        rng = rng if rng is not None else np.random.default_rng()
        gumbel = torch.as_tensor(rng.gumbel(size=(batch, actions)), dtype=logits.dtype, device=device)
        considered = min(config.max_considered, actions)
        score = gumbel + root_logits
        kept = torch.zeros_like(legal).scatter_(1, score.topk(considered, -1).indices, True) & legal
        # each root halves over its own number of kept actions (fewer where fewer moves are legal)
        table = torch.as_tensor([considered_visits(max(k, 1), config.simulations)
                                 for k in range(considered + 1)], device=device)
        schedule = table[kept.sum(-1)]  # (B, simulations)
    elif config.root_noise > 0:
        rng = rng if rng is not None else np.random.default_rng()
        noise = rng.dirichlet([config.dirichlet_alpha] * actions, size=batch)
        noise = torch.as_tensor(noise, dtype=root_prior.dtype, device=device) * legal
        noise = noise / noise.sum(-1, keepdim=True).clamp_min(1e-12)
        root_prior = (1 - config.root_noise) * root_prior + config.root_noise * noise
    states[base], node_value[base] = state, value
    edges[base, 0], edges[base, 3] = root_prior, _illegal_bias(legal)

    for simulation in range(config.simulations):
        # Selection: every tree walks down until its chosen edge has no child yet, or leads to a game's end.
        node = base
        offset, scale = _normaliser(low, high)
        if config.gumbel:  # the root's action comes from sequential halving's schedule
            due = kept & (edges[base, 1] == schedule[:, simulation, None])
            root_action = _gumbel_choice(config, score, due, edges[base], low, high)
        while True:
            action = _puct(config, edges.index_select(0, node), offset, scale).argmax(-1)
            if config.gumbel:
                action = torch.where(node == base, root_action, action)
            edge = node * actions + action
            next_node = child.index_select(0, edge)
            deeper = (next_node >= 0) & ~terminal.index_select(0, next_node.clamp_min(0))
            if not deeper.any():
                break
            node = torch.where(deeper, next_node, node)
        expand = next_node < 0
        # Expansion: one model call for every tree (trees that reached a game's end reuse its node; their
        # row of the call is discarded).
        reward, logits, value, next_state, ended, next_legal = model.step(states.index_select(0, node),
                                                                          action)
        new = base + simulation + 1
        leaf = torch.where(expand, new, next_node)
        # Trees that do not expand write their row into their last node instead: nothing points there
        # until a tree's final simulation expands into it (and overwrites it), so the writes need no mask.
        write = torch.where(expand, new, base + nodes - 1)
        moves = next_legal & ~ended[:, None]
        states[write] = next_state.to(states.dtype)
        edges[write, 0], edges[write, 3] = _masked_softmax(logits, moves), _illegal_bias(moves)
        node_value[write] = value.masked_fill(ended, 0.0)
        terminal[write], parent[write], parent_action[write] = ended, node, action
        child[edge] = torch.where(expand, new, child[edge])
        edge_reward[edge] = torch.where(expand, reward.to(edge_reward.dtype), edge_reward[edge])
        # Backup: from the leaf's value up every path to its root, all trees together.
        returns = node_value.index_select(0, leaf)
        current = leaf
        while True:
            up = parent.index_select(0, current)
            climbing = up >= 0
            if not climbing.any():
                break
            source = up.clamp_min(0)
            taken = parent_action.index_select(0, current)
            flat_edge = source * actions + taken
            returns = torch.where(climbing, edge_reward.index_select(0, flat_edge)
                                  + config.discount * sign * returns, returns)
            step = climbing.to(returns.dtype)
            # edges[:, 1] and [:, 2] as flat (B * N * A) views: node-major, then the field, then the action
            offset = source * 4 * actions + taken
            edges.view(-1).index_add_(0, offset + actions, step)
            edges.view(-1).index_add_(0, offset + 2 * actions, returns * step)
            low = torch.where(climbing, torch.minimum(low, returns), low)
            high = torch.where(climbing, torch.maximum(high, returns), high)
            current = torch.where(climbing, up, current)

    root_edges = edges[base]
    visits, totals = root_edges[:, 1], root_edges[:, 2]
    q = torch.where(visits > 0, totals / visits.clamp_min(1), 0.0)
    value = (node_value[base] + totals.sum(-1)) / (1 + visits.sum(-1))
    if not config.gumbel:
        return SearchResult(visits, q, value, root_prior, visits.argmax(-1), visits / visits.sum(-1, True))
    most = visits.max(-1, keepdim=True).values
    action = _gumbel_choice(config, score, kept & (visits == most), root_edges, low, high)
    # completed q: unvisited actions take v_mix, the value mixed with the visited actions' q by the prior
    seen = visits > 0
    mixed = (root_prior * q * seen).sum(-1) / (root_prior * seen).sum(-1).clamp_min(1e-12)
    v_mix = (node_value[base] + visits.sum(-1) * mixed) / (1 + visits.sum(-1))
    completed = torch.where(seen, q, v_mix[:, None])
    improved = (root_logits + _sigma(config, completed, visits, low, high)).softmax(-1)
    return SearchResult(visits, q, value, root_prior, action, improved)


def considered_visits(considered: int, simulations: int) -> list[int]:
    """Sequential halving's schedule: for each simulation, the visit count a root action must have to be
    visited next. Each phase visits every remaining action equally, then halves them (down to two)."""
    if considered <= 1:
        return list(range(simulations))
    phases = math.ceil(math.log2(considered))
    sequence, visits, remaining = [], [0] * considered, considered
    while len(sequence) < simulations:
        for _ in range(max(1, simulations // (phases * remaining))):
            sequence += visits[:remaining]
            visits[:remaining] = [v + 1 for v in visits[:remaining]]
        remaining = max(2, remaining // 2)
    return sequence[:simulations]


def _sigma(config: MCTSConfig, q: torch.Tensor, visits: torch.Tensor, low, high) -> torch.Tensor:
    spread = (high - low).unsqueeze(-1)
    known = spread > 0
    normalised = torch.where(known, (q - low.unsqueeze(-1)) / spread.where(known, 1.0), 0.5)
    return (config.c_visit + visits.max(-1, keepdim=True).values) * config.c_scale * normalised


def _gumbel_choice(config: MCTSConfig, score, allowed, root_edges, low, high) -> torch.Tensor:
    """The allowed root action with the best g + logits + sigma(q) (q of unvisited actions: 0)."""
    visits, totals = root_edges[:, 1], root_edges[:, 2]
    q = torch.where(visits > 0, totals / visits.clamp_min(1), 0.0)
    ranked = score + torch.where(visits > 0, _sigma(config, q, visits, low, high), 0.0)
    return ranked.masked_fill(~allowed, -math.inf).argmax(-1)


def _illegal_bias(legal: torch.Tensor) -> torch.Tensor:
    return torch.where(legal, 0.0, -math.inf)


def _masked_softmax(logits: torch.Tensor, legal: torch.Tensor) -> torch.Tensor:
    masked = logits.masked_fill(~legal, -math.inf)
    probs = masked.softmax(-1)
    return torch.where(legal.any(-1, keepdim=True), probs, 0.0).nan_to_num(0.0)


def _puct(config: MCTSConfig, edges: torch.Tensor, offset: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """MuZero's pUCT score of every edge `(B, A)` from the nodes' packed `edges` `(B, 4, A)`: prior, visits,
    sums of returns, illegal bias (illegal edges -inf). Q is normalised as (q - offset) scale (`_normaliser`);
    unvisited edges count 0."""
    prior, visits, totals, bias = edges.unbind(1)
    parent_visits = visits.sum(-1, keepdim=True) + 1  # the node's own expansion counts as a visit
    # c1 + log((N + c2 + 1) / c2), times sqrt(N)
    exploration = torch.log1p((parent_visits + 1) / config.pb_c_base).add_(config.pb_c_init)
    exploration *= parent_visits.sqrt()
    q = (totals / visits.clamp_min(1) - offset) * scale * (visits > 0)
    return q + prior * exploration / (1 + visits) + bias


def _normaliser(low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each tree's offset and scale that map its min-max range of returns onto [0, 1] (none while the
    range is empty), as `(B, 1)` columns."""
    spread = (high - low).unsqueeze(-1)
    known = spread > 0
    return torch.where(known, low.unsqueeze(-1), 0.0), torch.where(known, 1 / spread.where(known, 1.0), 1.0)


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
