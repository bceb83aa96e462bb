"""(32e) Search speed: simulations per second of our batched MCTS for a batch of roots, beside DeepMind's mctx
(JAX on CPU, `benchmarks/anchors/mctx_search_timing.sh`, its own venv) with the same small network and batch,
and beside a plain per-node Python MCTS written here (one Python object per node, one network call per
simulation for one state), all in the same run, one thread. Ours runs twice: eager, and with
`MCTSConfig(compile=True)` (each simulation's bookkeeping and backup one torch.compile'd call; compiled before
the timing, as mctx's search is).

The network is MuZero-shaped with random weights: representation 16 -> 64 -> 32, dynamics (latent and a
one-hot of 9 actions) 41 -> 64 -> 32 with a reward from the hidden layer, prediction 32 -> 64 -> 9 logits and
a value. Single-agent search, discount 0.997, pUCT with MuZero's constants, Dirichlet noise at the roots.
In each of `--rounds` rounds the three sides run in turn, each `--searches` timed searches after an untimed
one (mctx's compile); a side's rate in a round is from the median search, and each ratio is reported as the
median and range of its per-round values. The per-node baseline searches one root at a time,
`--python-roots` of them per timed search, and its rate is per simulation as well.

    OMP_NUM_THREADS=1 python benchmarks/mcts_speed.py [--batch 64] [--simulations 50] [--searches 10] \
        [--rounds 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import subprocess
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from common import RESULTS, spread, timed_calls, write_results
from torch import nn

from modelrl.planning.mcts import MCTSConfig, search

ANCHOR = Path(__file__).resolve().parent / "anchors" / "mctx_search_timing.sh"
ACTIONS, OBS, LATENT, HIDDEN = 9, 16, 32, 64


class Network(nn.Module):
    def __init__(self):
        super().__init__()
        self.representation = nn.Sequential(nn.Linear(OBS, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, LATENT))
        self.dynamics_hidden = nn.Sequential(nn.Linear(LATENT + ACTIONS, HIDDEN), nn.ReLU())
        self.next_latent, self.reward = nn.Linear(HIDDEN, LATENT), nn.Linear(HIDDEN, 1)
        self.prediction_hidden = nn.Sequential(nn.Linear(LATENT, HIDDEN), nn.ReLU())
        self.logits, self.value = nn.Linear(HIDDEN, ACTIONS), nn.Linear(HIDDEN, 1)

    def predict(self, z):
        h = self.prediction_hidden(z)
        return self.logits(h), self.value(h).squeeze(-1)

    # the search's model interface
    def root(self, obs):
        z = self.representation(obs)
        return (*self.predict(z), z)

    def step(self, z, action):
        h = self.dynamics_hidden(torch.cat([z, nn.functional.one_hot(action, ACTIONS).float()], -1))
        next_z = self.next_latent(h)
        logits, value = self.predict(next_z)
        ended = torch.zeros(len(z), dtype=torch.bool)
        legal = torch.ones(len(z), ACTIONS, dtype=torch.bool)
        return self.reward(h).squeeze(-1), logits, value, next_z, ended, legal


class Node:
    """The per-node baseline: a Python object per node, children in a dict."""

    def __init__(self, prior: float):
        self.prior, self.visits, self.value_sum, self.reward = prior, 0, 0.0, 0.0
        self.children: dict[int, Node] = {}
        self.state = None

    def value(self) -> float:
        return self.value_sum / self.visits if self.visits else 0.0


@torch.no_grad()
def per_node_search(network: Network, obs: torch.Tensor, config: MCTSConfig,
                    rng: np.random.Generator) -> Node:
    logits, value, z = network.root(obs[None])
    root = Node(1.0)
    root.state = z
    _expand(root, logits[0])
    noise = rng.dirichlet([config.dirichlet_alpha] * ACTIONS)
    for action, child in root.children.items():
        child.prior = (1 - config.root_noise) * child.prior + config.root_noise * noise[action]
    low, high = math.inf, -math.inf
    for _ in range(config.simulations):
        node, path = root, [root]
        while True:  # down to an edge not yet expanded
            action, child = max(node.children.items(),
                                key=lambda item, node=node: _ucb(node, item[1], low, high, config))
            path.append(child)
            if child.state is None:
                break
            node = child
        reward, logits, value, next_z, _, _ = network.step(node.state, torch.tensor([action]))
        child.state, child.reward = next_z, float(reward[0])
        _expand(child, logits[0])
        returns = float(value[0])
        for visited in reversed(path):
            visited.value_sum += returns
            visited.visits += 1
            q = visited.reward + config.discount * visited.value()
            low, high = min(low, q), max(high, q)
            returns = visited.reward + config.discount * returns
    return root


def _expand(node: Node, logits: torch.Tensor) -> None:
    priors = logits.softmax(-1).tolist()
    node.children = {action: Node(prior) for action, prior in enumerate(priors)}


def _ucb(parent: Node, child: Node, low: float, high: float, config: MCTSConfig) -> float:
    c = config.pb_c_init + math.log((parent.visits + config.pb_c_base + 1) / config.pb_c_base)
    u = c * child.prior * math.sqrt(parent.visits) / (1 + child.visits)
    if child.visits == 0:
        return u
    q = child.reward + config.discount * child.value()
    return (q - low) / (high - low) + u if high > low else q + u


def anchor_round(args) -> dict:
    done = subprocess.run(["bash", str(ANCHOR), "--batch", str(args.batch), "--simulations",
                           str(args.simulations), "--searches", str(args.searches)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{ANCHOR.name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--simulations", type=int, default=50)
    parser.add_argument("--searches", type=int, default=10, help="timed searches per side and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, the sides alternating within each")
    parser.add_argument("--python-roots", type=int, default=8, help="roots per timed per-node search")
    parser.add_argument("--skip-anchor", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    network = Network().eval()
    config = MCTSConfig(simulations=args.simulations, discount=0.997, two_player=False)
    obs = torch.randn(args.batch, OBS)
    legal = torch.ones(args.batch, ACTIONS, dtype=torch.bool)
    rng = np.random.default_rng(0)
    compiled_config = dataclasses.replace(config, compile=True)
    ours, compiled, per_node, mctx = ("modelrl batched", "modelrl batched, compiled", "per-node Python",
                                      "mctx (JAX, jit)")
    sides = {ours: {"roots": args.batch, "seconds": []}, compiled: {"roots": args.batch, "seconds": []},
             per_node: {"roots": args.python_roots, "seconds": []}}
    compile_start = time.perf_counter()
    search(network, obs, legal, compiled_config, rng)
    compile_seconds = time.perf_counter() - compile_start
    anchors = []
    if not args.skip_anchor:
        sides[mctx] = {"roots": args.batch, "seconds": []}
    for _ in range(args.rounds):
        sides[ours]["seconds"].append(timed_calls(lambda: search(network, obs, legal, config, rng),
                                                  args.searches)[1])
        sides[compiled]["seconds"].append(timed_calls(
            lambda: search(network, obs, legal, compiled_config, rng), args.searches)[1])
        sides[per_node]["seconds"].append(timed_calls(
            lambda: [per_node_search(network, o, config, rng) for o in obs[:args.python_roots]],
            args.searches)[1])
        if not args.skip_anchor:
            anchors.append(anchor_round(args))
            sides[mctx]["seconds"].append(anchors[-1]["seconds"])
    for side in sides.values():  # a rate per round: the median of its searches
        side["simulations_per_second"] = [side["roots"] * args.simulations / statistics.median(seconds)
                                          for seconds in side["seconds"]]
    rounds = {name: side["simulations_per_second"] for name, side in sides.items()}
    rate = {name: statistics.median(values) for name, values in rounds.items()}
    summary = {"simulations_per_second": rate, "rounds": args.rounds, "compile_seconds": compile_seconds,
               "ours_over_per_node": spread([a / b for a, b in zip(rounds[ours], rounds[per_node])]),
               "compiled_over_eager": spread([a / b for a, b in zip(rounds[compiled], rounds[ours])])}
    if anchors:
        summary["ours_over_mctx"] = spread([a / b for a, b in zip(rounds[ours], rounds[mctx])])
        summary["compiled_over_mctx"] = spread([a / b for a, b in zip(rounds[compiled], rounds[mctx])])
    print(json.dumps(summary, indent=2))
    write_results("mcts_speed", {"batch": args.batch, "simulations": args.simulations, "threads": 1,
                                 "network": {"obs": OBS, "latent": LATENT, "hidden": HIDDEN,
                                             "actions": ACTIONS},
                                 "sides": sides, "anchor": anchors[-1] if anchors else None,
                                 "summary": summary})
    fig, ax = plt.subplots(figsize=(8.5, 4))
    ax.tick_params(axis="x", labelsize=8)
    ax.bar(list(rate), list(rate.values()), color=["C0", "C2", "C7", "C1"][:len(rate)])
    for i, values in enumerate(rounds.values()):
        ax.plot([i] * len(values), values, "k.", label="rounds" if i == 0 else None)
    ax.set(ylabel="simulations per second", yscale="log",
           title=f"MCTS, {args.batch} roots x {args.simulations} simulations, one thread\n"
                 f"bars: median of {args.rounds} alternating rounds")
    for i, value in enumerate(rate.values()):
        ax.text(i, value, f"{value:,.0f}", ha="center", va="bottom")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(RESULTS / "mcts_speed.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
