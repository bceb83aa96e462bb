"""Monte Carlo tree search over a batch of roots at once (AlphaZero, Silver et al. 2018; MuZero, Schrittwieser
et al. 2020), the trees held in preallocated tensors.

Each of `B` trees has room for `simulations + 1` nodes; node 0 is the root and simulation s adds node s + 1.
Per node: the model's state and value estimate; per edge (node, action): the prior, legality, the child's
row (a shared never-open row while unexpanded) and where the walk goes next (that row while the child is
open, the edge's own node otherwise: a tree that has stopped stays put), the reward on it, its visit count
and the sum of the returns backed up through it. A simulation scores every edge of every tree at once (two
multiply-adds of pUCT's terms, which each backup refreshes for the nodes it passed), walks down all trees
together (a gather, an argmax and a lookup per depth, until no tree moves), makes one batched model call for
every tree's leaf, and backs the leaf's value up every path at all depths at once (one matmul of the path's
rewards and leaf value by discount powers): never a Python object per node, nor a Python step per node of a
path. With `compile=True` all of a simulation but the walk and the model call is one torch.compile'd call.

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

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from modelrl.config import check_range
from modelrl.device import require_cpp_compiler


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
    # torch.compile each simulation's bookkeeping and backup into one call (1.5x the simulations per second
    # of benchmarks/mcts_speed.py on one CPU core; each new batch size compiles, about 20 s); the same
    # statistics as eager, to float rounding
    compile: bool = False

    def __post_init__(self) -> None:
        check_range(self, "simulations", 1)
        check_range(self, "discount", 0, 1, low_open=True)
        check_range(self, "dirichlet_alpha", 0, low_open=True)
        check_range(self, "root_noise", 0, 1)
        check_range(self, "max_considered", 1)
        for name in ("pb_c_init", "pb_c_base", "c_visit", "c_scale"):
            check_range(self, name, 0, low_open=True)


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


def search(model, obs, legal: torch.Tensor, config: MCTSConfig, rng: np.random.Generator | None = None
           ) -> SearchResult:
    """Search from `B` roots (`obs`, with `legal` `(B, A)` moves) and return the roots' statistics."""
    # Inference mode cuts torch's per-operation cost (the search is hundreds of small operations per
    # simulation: 1.2-1.3x faster than no_grad here); the results are cloned out of it so that callers may
    # use them in anything autograd records.
    with torch.inference_mode():
        result = _search(model, obs, legal, config, rng)
    return SearchResult(*(getattr(result, field.name).clone() for field in dataclasses.fields(result)))


def _search(model, obs, legal: torch.Tensor, config: MCTSConfig, rng: np.random.Generator | None
            ) -> SearchResult:
    logits, value, state = model.root(obs)
    batch, actions = logits.shape
    device = logits.device
    nodes = config.simulations + 1
    rows = batch * nodes + 1  # every tree's nodes, and one row that every unexpanded edge points to
    base = torch.arange(batch, device=device) * nodes  # each tree's root: node n of tree b is row base[b] + n
    unexpanded = rows - 1
    discount = config.discount * (-1.0 if config.two_player else 1.0)  # a child's value seen by its parent

    # Per node: the model's state and the value estimate.
    states = torch.zeros(rows, *state.shape[1:], dtype=state.dtype, device=device)
    node_value = torch.zeros(rows, device=device)
    # Per edge (row, action): the prior, 0 or -inf for a legal or illegal move, the visit count, the sum of
    # the returns backed up through it; flat (row * A + action): the child's row, the child's row again where
    # the child is open (expanded and not a game's end: selection goes on below it) and the edge's own row
    # elsewhere (a walk that takes it stays put), and the reward on the edge.
    # (separate tensors, the flat ones written flat: a compiled step copies whole buffers that alias or are
    # written through views)
    prior, bias = (torch.zeros(rows, actions, device=device) for _ in range(2))
    visits_flat, totals_flat = (torch.zeros(rows * actions, device=device) for _ in range(2))
    visits, totals = visits_flat.view(rows, actions), totals_flat.view(rows, actions)
    child = torch.full((rows * actions,), unexpanded, dtype=torch.long, device=device)
    open_child = torch.arange(rows * actions, device=device) // actions
    edge_reward = torch.zeros(rows * actions, device=device)
    # What pUCT reads of a node's edges, term-major and refreshed by each backup for the nodes it passed:
    # prior * E(N) / (1 + visits) + bias, the mean return q (0 while unvisited) and 1 where visited.
    # E(N) = (c1 + log(1 + (N + 1) / c2)) sqrt(N), tabulated over N.
    scores = torch.zeros(3, rows, actions, device=device)
    counts = torch.arange(nodes + 1, dtype=torch.float32, device=device)
    exploration = torch.log1p((counts + 1) / config.pb_c_base).add_(config.pb_c_init).mul_(counts.sqrt())
    low = torch.full((batch,), math.inf, device=device)  # min-max statistics of the backed-up returns
    high = torch.full((batch,), -math.inf, device=device)
    # powers[k, d] = discount^(k - d) for k >= d: the returns along a path from its rewards and leaf value
    exponent = torch.arange(nodes + 1, device=device)
    exponent = exponent[:, None] - exponent[None, :-1]
    powers = torch.where(exponent >= 0, discount ** exponent.clamp_min(0).float(), 0.0)

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
    tree = Tree(states, node_value, prior, bias, visits_flat, totals_flat, child, open_child, edge_reward,
                scores, exploration, powers)
    record = _compiled_record(device.type) if config.compile else _record

    _write_nodes(tree, base, state, value.to(node_value.dtype), root_prior, legal)
    puct = _puct(tree, batch, low, high)
    for simulation in range(config.simulations):
        # Selection: every tree walks down until its chosen edge has no child yet, or leads to a game's end;
        # a tree that has stopped keeps choosing the same edge while the others go on.
        if config.gumbel:  # the root's action comes from sequential halving's schedule
            due = kept & (visits[base] == schedule[:, simulation, None])
            root_action = _gumbel_choice(config, score, due, visits[base], totals[base], low, high)
        node, path = base, []
        while True:
            action = puct.index_select(0, node).argmax(-1)
            if config.gumbel:
                action = root_action if not path else torch.where(node == base, root_action, action)
            edge = torch.add(action, node, alpha=actions)
            path.append(edge)
            below = open_child.index_select(0, edge)
            if torch.equal(below, node):
                break
            node = below
        # Expansion: one model call for every tree, then the bookkeeping and the backup
        step = model.step(states.index_select(0, node), action)
        if config.compile:  # a few path lengths (8, 16, 32... up to the most a path can have), so that
            # the compiled step is specialised a few times
            padded = min(max(8, 1 << (len(path) - 1).bit_length()), config.simulations)
            path = path + path[-1:] * (padded - len(path))
        low, high, puct = record(tree, edge, torch.stack(path, 1), *step,
                                 base + simulation + 1, base + nodes - 1, low, high)

    visits, totals = visits[base], totals[base]
    q = torch.where(visits > 0, totals / visits.clamp_min(1), 0.0)
    value = (node_value[base] + totals.sum(-1)) / (1 + visits.sum(-1))
    if not config.gumbel:
        return SearchResult(visits, q, value, root_prior, visits.argmax(-1), visits / visits.sum(-1, True))
    most = visits.max(-1, keepdim=True).values
    action = _gumbel_choice(config, score, kept & (visits == most), visits, totals, low, high)
    # completed q: unvisited actions take v_mix, the value mixed with the visited actions' q by the prior
    seen = visits > 0
    mixed = (root_prior * q * seen).sum(-1) / (root_prior * seen).sum(-1).clamp_min(1e-12)
    v_mix = (node_value[base] + visits.sum(-1) * mixed) / (1 + visits.sum(-1))
    completed = torch.where(seen, q, v_mix[:, None])
    improved = (root_logits + _sigma(config, completed, visits, low, high)).softmax(-1)
    return SearchResult(visits, q, value, root_prior, action, improved)


class Tree(NamedTuple):
    """The trees' preallocated statistics (see `_search`) and two tables the backup reads."""
    states: torch.Tensor
    node_value: torch.Tensor
    prior: torch.Tensor
    bias: torch.Tensor
    visits: torch.Tensor  # flat, as child
    totals: torch.Tensor
    child: torch.Tensor
    open_child: torch.Tensor
    edge_reward: torch.Tensor
    scores: torch.Tensor
    exploration: torch.Tensor
    powers: torch.Tensor


def _write_nodes(tree: Tree, rows: torch.Tensor, state, value, prior, legal) -> None:
    tree.states.index_copy_(0, rows, state.to(tree.states.dtype))
    tree.node_value.index_copy_(0, rows, value)
    tree.prior.index_copy_(0, rows, prior)
    illegal = _illegal_bias(legal)
    tree.bias.index_copy_(0, rows, illegal)
    blank = torch.zeros_like(prior)
    tree.scores.index_copy_(1, rows, torch.stack([prior * tree.exploration[1] + illegal, blank, blank]))


def _puct(tree: Tree, batch: int, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Every edge's pUCT score, q normalised by its tree's min and max, as `(B * nodes, A)`."""
    offset, scale = _normaliser(low, high)
    shift = -offset * scale
    actions = tree.prior.shape[-1]
    explore, q, seen = tree.scores[:, :-1].view(3, batch, -1, actions)
    puct = torch.addcmul(torch.addcmul(explore, q, scale[:, :, None]), seen, shift[:, :, None])
    return puct.view(-1, actions)


def _record(tree: Tree, edge, path_edges, reward, logits, value, next_state, ended, next_legal, new, last,
            low, high):
    """A simulation's work after its model call: the new nodes written (a tree that reached a game's end
    writes into its `last` row instead: nothing points there until its final simulation expands into it
    and overwrites it, so the writes need no mask), the leaves' values backed up the `(B, depth)` paths
    (a tree that stopped early repeats its last edge), and pUCT's scores for the next simulation. Returns
    the new min and max returns and the scores."""
    actions = tree.prior.shape[-1]
    unexpanded = tree.prior.shape[0] - 1
    next_node = tree.child.index_select(0, edge)
    new_node = next_node == unexpanded
    moves = next_legal & ~ended[:, None]
    leaf_value = value.to(tree.node_value.dtype).masked_fill(ended, 0.0)
    _write_nodes(tree, torch.where(new_node, new, last), next_state, leaf_value,
                 _masked_softmax(logits, moves), moves)
    tree.child.index_copy_(0, edge, torch.where(new_node, new, next_node))
    # (an edge whose child existed ends at a game's end: it stays closed)
    tree.open_child.index_copy_(0, edge, torch.where(new_node & ~ended, new, edge // actions))
    tree.edge_reward.index_copy_(0, edge, torch.where(new_node, reward.to(tree.edge_reward.dtype),
                                                      tree.edge_reward.index_select(0, edge)))
    # Backup, all trees and depths at once: a path's k-th edge gets the return r_k + d r_k+1 + ... +
    # d^(L-k) v from its rewards and the leaf's value v (0 at a game's end), d the signed discount.
    batch, depth = path_edges.shape
    # (two edges in a row are never the same but where a path repeats its last)
    valid = torch.cat([path_edges[:, :1] >= 0, path_edges[:, 1:] != path_edges[:, :-1]], 1)
    rewards = tree.edge_reward.index_select(0, path_edges.view(-1)).view(batch, depth) * valid
    ends = torch.cat([rewards, torch.zeros_like(rewards[:, :1])], 1).scatter_(
        1, valid.sum(1, keepdim=True), torch.where(new_node, leaf_value, 0.0)[:, None])
    returns = ends @ tree.powers[:depth + 1, :depth]
    low = torch.minimum(low, returns.masked_fill(~valid, math.inf).amin(1))
    high = torch.maximum(high, returns.masked_fill(~valid, -math.inf).amax(1))
    # (the repeats add 0, and refresh the same row)
    flat, weight = path_edges.view(-1), valid.view(-1)
    tree.visits.index_add_(0, flat, weight.to(tree.visits.dtype))
    tree.totals.index_add_(0, flat, returns.view(-1) * weight)
    # refresh what pUCT reads of the nodes on the paths
    on_nodes = flat // actions
    seen_visits = tree.visits.view(-1, actions).index_select(0, on_nodes)
    seen_totals = tree.totals.view(-1, actions).index_select(0, on_nodes)
    parent_visits = seen_visits.sum(-1).long() + 1  # N: the node's own expansion counts as a visit
    explore = (tree.prior.index_select(0, on_nodes) * tree.exploration.index_select(0, parent_visits)[:, None]
               / (1 + seen_visits) + tree.bias.index_select(0, on_nodes))
    tree.scores.index_copy_(1, on_nodes, torch.stack(
        [explore, seen_totals / seen_visits.clamp_min(1), (seen_visits > 0).to(tree.scores.dtype)]))
    return low, high, _puct(tree, batch, low, high)


@functools.cache
def _compiled_record(device_type: str):
    if device_type == "cpu":
        require_cpp_compiler()
    return torch.compile(_record, dynamic=False, fullgraph=True)


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


def _gumbel_choice(config: MCTSConfig, score, allowed, visits, totals, low, high) -> torch.Tensor:
    """The allowed root action with the best g + logits + sigma(q) (q of unvisited actions: 0)."""
    q = torch.where(visits > 0, totals / visits.clamp_min(1), 0.0)
    ranked = score + torch.where(visits > 0, _sigma(config, q, visits, low, high), 0.0)
    return ranked.masked_fill(~allowed, -math.inf).argmax(-1)


def _illegal_bias(legal: torch.Tensor) -> torch.Tensor:
    return torch.where(legal, 0.0, -math.inf)


def _masked_softmax(logits: torch.Tensor, legal: torch.Tensor) -> torch.Tensor:
    masked = logits.masked_fill(~legal, -math.inf)
    probs = masked.softmax(-1)
    return torch.where(legal.any(-1, keepdim=True), probs, 0.0).nan_to_num(0.0)


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
