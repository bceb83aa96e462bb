"""`alphazero`: AlphaZero (Silver et al. 2018): tree search with the game's rules as the model, a network that
gives the search its prior and its leaf values, trained to match the search.

Self-play runs `parallel_games` games at once, each move one batched search over all of them
(`modelrl.planning.mcts`, the rules as `GameModel`): the move is drawn from the root's visit counts for the
first `temperature_moves` moves of a game, then the most visited. Every position keeps its visit
distribution; when a game ends each of its positions gets the outcome for the player who moved there (+1,
-1, 0). The network (an MLP over the board seen by the player to move: policy logits and a tanh value)
learns from a replay of recent positions: cross-entropy to the visit distribution plus squared error to the
outcome, with weight decay. `updates_per_move` updates of `batch_size` positions are owed per self-play move.

Env steps are self-play moves (every move of every game counts: the rules are the only environment).
`actors=N` moves self-play into N actors feeding this one's learner, each playing `parallel_games` games
with the learner's latest network: local processes reading it from shared memory (`backend="processes"`)
or Ray actors, on this machine or a cluster (`backend="ray"`; `modelrl.actors`); then the moves count when
their game ends.
Evaluation plays the env's built-in opponent (`modelrl/TicTacToe-v0`: random, or the exact solver with
`--env-arg opponent=solver`), searching without root noise and playing the most visited move.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from modelrl.actors import ActorLoop, ProcessActors, RayActors, check_actor_settings
from modelrl.agents.base import Agent
from modelrl.buffers import RingBuffer
from modelrl.config import check_range
from modelrl.device import resolve_device
from modelrl.envs.games import GAMES, BoardGameEnv
from modelrl.errors import ConfigError, IncompatibleEnvError
from modelrl.models.mlp import mlp
from modelrl.planning.mcts import GameModel, MCTSConfig, search
from modelrl.seeding import numpy_stream, seeded_weights


@dataclass
class AlphaZeroConfig:
    """Search settings are AlphaZero's (pUCT constants, 25% Dirichlet noise); sizes suit small boards."""

    simulations: int = 50  # searches per move (self-play and evaluation)
    parallel_games: int = 32  # self-play games played at once, one batched search per move
    temperature_moves: int = 4  # moves drawn from the visit counts at a game's start; the most visited after
    # a self-play game's first this many moves uniform over the legal ones: the openings an outside opponent
    # may play and self-play's own choices rarely reach (their positions still learn the search's policy)
    random_opening_moves: int = 0
    dirichlet_alpha: float = 1.0  # root noise concentration (AlphaZero: about 10 / typical legal moves)
    root_noise: float = 0.25  # share of noise in the root's prior during self-play
    # Gumbel MuZero's root instead (sequential halving; learns from its improved policy; strong with very
    # few simulations): self-play plays its sampled choice, evaluation its choice without noise
    gumbel: bool = False
    network: str = "mlp"  # "mlp" over the board, or "conv": AlphaZero's convolutional trunk, small
    hidden_size: int = 128  # units per hidden layer (mlp) or channels (conv)
    num_layers: int = 2  # hidden layers (mlp) or 3 x 3 convolutions (conv)
    lr: float = 1e-3  # Adam
    weight_decay: float = 1e-4  # L2 on the weights (AlphaZero's c)
    # the value's target: (1 - w) * the game's outcome + w * the search's value of the position; 0 is
    # AlphaZero's outcome alone. The search's value varies far less from game to game: with few games, the
    # outcome alone is learnt by heart (value_mse_new far above value_mse_replay)
    search_value_weight: float = 0.0
    batch_size: int = 128  # positions per update
    buffer_size: int = 20_000  # recent positions kept
    updates_per_move: float = 0.25  # updates owed per self-play move
    learning_starts: int = 256  # positions before the first update
    # train each position under a random one of the board's symmetries (AlphaGo Zero did on Go; the board
    # games here have 8 (TicTacToe) and 2 (Connect Four))
    augment: bool = True
    # self-play in this many actors of their own, feeding this one's learner (0: self-play here); their
    # games in progress are not saved, and runs with them are not reproducible move for move
    actors: int = 0
    backend: str = "processes"  # where actors run: "processes" (local, shared memory) or "ray" (Ray actors)
    device: str = "auto"  # auto (CUDA when present), cpu, cuda or cuda:N
    renamed_keys: ClassVar[dict[str, str]] = {"self_play_processes": "actors"}

    def validate(self) -> None:
        for name in ("simulations", "parallel_games", "hidden_size", "num_layers", "batch_size",
                     "buffer_size"):
            check_range(self, name, 1)
        for name in ("temperature_moves", "random_opening_moves", "learning_starts", "updates_per_move",
                     "weight_decay"):
            check_range(self, name, 0)
        check_range(self, "dirichlet_alpha", 0, low_open=True)
        check_range(self, "root_noise", 0, 1)
        check_range(self, "search_value_weight", 0, 1)
        check_range(self, "lr", 0, low_open=True)
        if self.network not in ("mlp", "conv"):
            raise ConfigError(f"network must be 'mlp' or 'conv', got {self.network!r}")
        check_actor_settings(self)


class PolicyValueNet(nn.Module):
    """Policy logits and a tanh value of boards seen by the player to move: an MLP over the cells."""

    def __init__(self, cells: int, actions: int, hidden_size: int, num_layers: int):
        super().__init__()
        self.net = mlp(cells, actions + 1, hidden_size, num_layers)

    def forward(self, boards: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(boards.flatten(1))
        return out[:, :-1], torch.tanh(out[:, -1])


class ConvPolicyValueNet(nn.Module):
    """AlphaZero's shape, small: the board as two planes (the mover's stones, the opponent's), `layers` 3 x 3
    convolutions with batch norm and ReLU, then a policy head (1 x 1 convolution to 2 planes, linear to the
    actions) and a value head (1 x 1 convolution to 1 plane, a hidden layer, tanh)."""

    def __init__(self, grid: tuple[int, int], actions: int, channels: int, layers: int):
        super().__init__()
        cells = grid[0] * grid[1]
        self.grid = grid
        trunk: list[nn.Module] = []
        for i in range(layers):
            trunk += [nn.Conv2d(2 if i == 0 else channels, channels, 3, padding=1, bias=False),
                      nn.BatchNorm2d(channels), nn.ReLU()]
        self.trunk = nn.Sequential(*trunk)
        self.policy = nn.Sequential(nn.Conv2d(channels, 2, 1), nn.ReLU(), nn.Flatten(),
                                    nn.Linear(2 * cells, actions))
        self.value = nn.Sequential(nn.Conv2d(channels, 1, 1), nn.ReLU(), nn.Flatten(),
                                   nn.Linear(cells, channels), nn.ReLU(), nn.Linear(channels, 1))
        # channels last: an update of the Connect Four net (batch 128, 4 x 64 channels) 1.2x as fast on a CPU
        self.to(memory_format=torch.channels_last)

    def forward(self, boards: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        board = boards.view(-1, 1, *self.grid)
        planes = torch.cat([(board == 1).float(), (board == -1).float()], 1)
        x = self.trunk(planes.contiguous(memory_format=torch.channels_last))
        return self.policy(x), torch.tanh(self.value(x).squeeze(-1))


class ValueErrorCheck:
    """The value's mean squared error on each new game's positions before it learns from them
    (`value_mse_new`), and at the same moment on as many positions from its replay (`value_mse_replay`), over
    the last `games` games. New far above replay: the network has learnt its replay's targets by heart
    instead of judging positions (too many updates per position, or too small a replay)."""

    def __init__(self, seed: int, games: int = 256):
        self.rng = numpy_stream(seed, "value check")  # its own draws: training's stay as they were
        self.errors = {"new": deque(maxlen=games), "replay": deque(maxlen=games)}  # (squared errors, count)

    def add(self, kind: str, predicted: np.ndarray, target: np.ndarray) -> None:
        self.errors[kind].append((float(((predicted - target) ** 2).sum()), len(target)))

    def metrics(self) -> dict[str, float]:
        return {f"value_mse_{kind}": sum(s for s, _ in window) / sum(n for _, n in window)
                for kind, window in self.errors.items() if window}

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, **{kind: list(w) for kind, w in self.errors.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:  # checkpoints from before it have none
            self.rng.bit_generator.state = state["rng"]
            for kind, window in self.errors.items():
                self.errors[kind] = deque(state[kind], maxlen=window.maxlen)


class SelfPlay:
    """`games` games of self-play at once, each move one batched search over all of them, in the model that
    `model(network)` gives: the rules (AlphaZero's `GameModel`) or a learned one (MuZero's)."""

    def __init__(self, game, games: int, temperature_moves: int, search_config: MCTSConfig,
                 rng: np.random.Generator, device, model: Callable[[nn.Module], Any] | None = None,
                 random_moves: int = 0):
        self.game, self.rng, self.device = game, rng, device
        self.temperature_moves, self.search_config = temperature_moves, search_config
        self.random_moves = random_moves  # a game's first moves, uniform over the legal ones
        self.model = model or functools.partial(GameModel, game)
        self.boards = game.initial(games, device)
        # each game's moves so far: (board, search policy, action, root value)
        self.histories: list[list[tuple[torch.Tensor, ...]]] = [[] for _ in self.boards]

    @torch.no_grad()
    def step(self, network: nn.Module) -> list[dict[str, np.ndarray]]:
        """One move in every game; the games that ended start again, returned as their positions' boards,
        search policies, actions, root values, rewards (the mover's: +1 for the winning move) and outcomes
        (for the player who moved there)."""
        game, boards = self.game, self.boards
        legal = game.legal(boards)
        result = search(self.model(network), boards, legal, self.search_config, self.rng)
        policy = result.improved_policy
        ply = torch.tensor([len(h) for h in self.histories], device=self.device)
        if self.search_config.gumbel:  # Gumbel's choice is already a sample
            actions = result.action
        else:
            sampled = torch.as_tensor([self.rng.choice(game.actions, p=p) for p in policy.cpu().numpy()],
                                      device=self.device)
            actions = torch.where(ply < self.temperature_moves, sampled, result.visits.argmax(-1))
        opening = ply < self.random_moves
        if opening.any():
            uniform = torch.as_tensor([self.rng.choice(np.flatnonzero(row)) for row in legal.cpu().numpy()],
                                      device=self.device)
            actions = torch.where(opening, uniform, actions)
        for history, *move in zip(self.histories, boards, policy, actions, result.value, strict=True):
            history.append(tuple(x.clone() for x in move))
        self.boards, won, over = game.play(boards, actions)
        finished = []
        for i in torch.nonzero(over).flatten().tolist():
            history, moves = self.histories[i], len(self.histories[i])
            # +1 for every position the winner moved from (the last mover's, every other one back)
            signs = [(1.0 if (moves - 1 - t) % 2 == 0 else -1.0) * float(won[i]) for t in range(moves)]
            board, target, action, value = (torch.stack(column).cpu().numpy() for column in zip(*history))
            reward = np.zeros(moves, np.float32)
            reward[-1] = float(won[i])
            finished.append({"board": board, "policy": target, "action": action, "root_value": value,
                             "reward": reward, "outcome": np.asarray(signs, np.float32)})
            self.histories[i] = []
            self.boards[i] = game.initial(1, self.device)[0]
        return finished

    def state_dict(self) -> dict[str, Any]:
        histories = [[tuple(x.cpu() for x in move) for move in history] for history in self.histories]
        return {"boards": self.boards.cpu(), "histories": histories}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.boards = state["boards"].to(self.device)
        self.histories = [[_full_move(move, self.device) for move in history]
                          for history in state["histories"]]


def _full_move(move: tuple[torch.Tensor, ...], device) -> tuple[torch.Tensor, ...]:
    """A saved move on `device`; checkpoints from before moves kept their action and root value hold only
    (board, policy): the action is then the one the policy favours, the value unknown (0)."""
    if len(move) == 2:
        move = (*move, move[1].argmax(), torch.tensor(0.0))
    return tuple(x.to(device) for x in move)


def game_search_config(config: AlphaZeroConfig, evaluation: bool) -> MCTSConfig:
    """Two-player search with `config`'s settings (root noise only while training)."""
    return MCTSConfig(simulations=config.simulations, two_player=True,
                      dirichlet_alpha=config.dirichlet_alpha,
                      root_noise=0.0 if evaluation else config.root_noise,
                      gumbel=config.gumbel)


def build_network(game, config: AlphaZeroConfig) -> nn.Module:
    if config.network == "conv":
        return ConvPolicyValueNet(game.grid, game.actions, config.hidden_size, config.num_layers)
    return PolicyValueNet(int(np.prod(game.board_shape)), game.actions, config.hidden_size, config.num_layers)


class SelfPlayer:
    """One actor's self-play: its own games, played with `network` (the learner's, shared, or its own copy
    that `load` updates)."""

    def __init__(self, game_name: str, config: AlphaZeroConfig, seed: int, index: int,
                 network: nn.Module | None = None):
        game = GAMES[game_name]()
        self.network = (network if network is not None else build_network(game, config)).eval()
        self.self_play = SelfPlay(game, config.parallel_games, config.temperature_moves,
                                  game_search_config(config, False),
                                  numpy_stream(seed, "self-play worker", index), "cpu",
                                  random_moves=config.random_opening_moves)

    def load(self, weights: dict[str, torch.Tensor]) -> None:
        self.network.load_state_dict(weights)

    def play(self) -> list[dict[str, np.ndarray]]:
        """Moves until as many games ended as are played at once (fewer, larger messages to the learner);
        the games that ended."""
        finished = []
        while len(finished) < len(self.self_play.boards):
            finished += self.self_play.step(self.network)
        return finished


class SelfPlayLoop(ActorLoop):
    """Training steps are self-play moves: without actors, one move of every game here
    (`agent.self_play_step`); evaluation is the default loop's, on the env against its built-in opponent."""

    def own_step(self) -> None:
        self.count_games(*self.agent.self_play_step())


class AlphaZero(Agent):
    agent_id = "alphazero"
    config_class = AlphaZeroConfig
    plans_every_step = True
    loop_class: ClassVar[type] = SelfPlayLoop
    metric_names = ("policy_loss", "value_loss", "value_mse_new", "value_mse_replay", "updates", "positions")

    def __init__(self, env, config=None, seed: int = 0, env_kwargs: dict | None = None, num_envs: int = 1):
        super().__init__(env, config, seed, env_kwargs, num_envs)
        config = self.config
        self.device = resolve_device(config.device)
        self.game = self.env.unwrapped.game
        with seeded_weights(self.seed):
            self.network = build_network(self.game, config).to(self.device)
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=config.lr,
                                          weight_decay=config.weight_decay)
        self.buffer = RingBuffer(config.buffer_size, {"board": (self.game.board_shape, np.float32),
                                                      "policy": ((self.game.actions,), np.float32),
                                                      # the value's target (see search_value_weight)
                                                      "outcome": ((), np.float32)}, "buffer_size", "position")
        cells, moves = zip(*self.game.symmetries(), strict=True)
        self.symmetry_cells = torch.stack(cells).to(self.device)
        self.symmetry_actions = torch.stack(moves).to(self.device)
        self.search_rng = numpy_stream(self.seed, "search")
        self.eval_rng = numpy_stream(self.seed, "evaluation search")
        self.self_play = SelfPlay(self.game, config.parallel_games, config.temperature_moves,
                                  game_search_config(config, False), self.search_rng, self.device,
                                  random_moves=config.random_opening_moves)
        self.workers: ProcessActors | RayActors | None = None
        self.update_credit, self.updates = 0.0, 0
        self._losses: dict[str, torch.Tensor] = {}
        self.value_check = ValueErrorCheck(self.seed)

    def check_env(self, env: gym.Env) -> None:
        if not isinstance(env.unwrapped, BoardGameEnv):
            raise IncompatibleEnvError(f"alphazero plays two-player board games with known rules "
                                       f"(modelrl/TicTacToe-v0, modelrl/ConnectFour-v0), not {self.env_id}")

    # --- acting -------------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs, deterministic: bool = False, legal=None):
        board = torch.as_tensor(np.asarray(obs, np.float32), device=self.device)[None]
        legal = self.game.legal(board) if legal is None else torch.as_tensor(legal, device=self.device)[None]
        self.network.eval()
        result = search(GameModel(self.game, self.network), board, legal,
                        game_search_config(self.config, deterministic),
                        self.eval_rng if deterministic else self.search_rng)
        if deterministic or self.config.gumbel:
            return int(result.action[0])
        return int(self.search_rng.choice(self.game.actions, p=result.policy()[0].cpu().numpy()))

    def policy(self, obs, state, info: dict, deterministic: bool = False):
        return self.act(obs, deterministic, info.get("action_mask")), state

    def observe(self, obs, action, reward, next_obs, terminated, truncated, info=None) -> None:
        """Self-play learns in `self_play_step`; a single transition teaches nothing here."""

    # --- self-play ---------------------------------------------------------------------------------
    def player_factory(self) -> functools.partial:
        return functools.partial(SelfPlayer, self.game.name, self.config, self.seed)

    @staticmethod
    def game_stats(game: dict[str, np.ndarray]) -> tuple[float, int]:
        return float(game["outcome"][0]), len(game["outcome"])  # the first player's outcome

    def self_play_step(self) -> tuple[int, list[dict[str, np.ndarray]]]:
        """One move of every game here, then what `learn_from` does; the moves made and the games ended."""
        self.network.eval()
        return self.learn_from(len(self.self_play.boards), self.self_play.step(self.network))

    def actor_step(self) -> tuple[int, list[dict[str, np.ndarray]]]:
        """The games the actors finished since (their moves count now), learned from; the actors then get
        the updated network."""
        finished = self.workers.collect()
        result = self.learn_from(sum(len(game["outcome"]) for game in finished), finished)
        self.workers.publish(self.network)
        return result

    def learn_from(self, moved: int, finished: list[dict[str, np.ndarray]]
                   ) -> tuple[int, list[dict[str, np.ndarray]]]:
        """Finished games into the replay, then the updates `moved` moves owe."""
        for game in finished:
            target = self.value_target(game)
            self.check_value(game["board"], target)
            self.buffer.add_batch(board=game["board"], policy=game["policy"], outcome=target)
        self.update_credit += self.config.updates_per_move * moved
        while self.update_credit >= 1 and len(self.buffer) >= self.config.learning_starts:
            self.update_credit -= 1
            self.update()
        return moved, finished

    def value_target(self, game: dict[str, np.ndarray]) -> np.ndarray:
        weight = self.config.search_value_weight
        return (1 - weight) * game["outcome"] + weight * game["root_value"]

    @torch.no_grad()
    def check_value(self, boards: np.ndarray, targets: np.ndarray) -> None:
        """The value on a new game's positions and on as many replayed ones, before the game is replayed."""
        self.network.eval()
        positions = len(targets)
        index = self.value_check.rng.integers(len(self.buffer), size=positions) if len(self.buffer) else []
        boards = np.concatenate([boards, self.buffer.data["board"][index]])
        values = self.network(torch.as_tensor(boards, device=self.device))[1].cpu().numpy()
        self.value_check.add("new", values[:positions], targets)
        if len(index):
            self.value_check.add("replay", values[positions:], self.buffer.data["outcome"][index])

    def update(self) -> None:
        config = self.config
        index = self.rng.integers(len(self.buffer), size=config.batch_size)
        batch = {key: torch.as_tensor(value[index], device=self.device)
                 for key, value in self.buffer.data.items()}
        if config.augment:
            pick = torch.as_tensor(self.rng.integers(len(self.symmetry_cells), size=config.batch_size),
                                   device=self.device)
            board = batch["board"]
            batch["board"] = board.flatten(1).gather(1, self.symmetry_cells[pick]).view_as(board)
            batch["policy"] = batch["policy"].gather(1, self.symmetry_actions[pick])
        self.network.train()
        logits, value = self.network(batch["board"])
        policy_loss = -(batch["policy"] * F.log_softmax(logits, -1)).sum(-1).mean()
        value_loss = F.mse_loss(value, batch["outcome"])
        self.optimizer.zero_grad(set_to_none=True)
        (policy_loss + value_loss).backward()
        self.optimizer.step()
        self.updates += 1
        self._losses = {"policy_loss": policy_loss.detach(), "value_loss": value_loss.detach()}

    # --- bookkeeping --------------------------------------------------------------------------------
    def metrics(self) -> dict[str, float]:
        row = {name: float(value) for name, value in self._losses.items()}
        row.update(self.value_check.metrics())
        row.update(updates=self.updates, positions=len(self.buffer))
        return row

    def check_finite(self) -> bool:
        return all(torch.isfinite(p).all() for p in self.network.parameters())

    def state_dict(self) -> dict[str, Any]:
        return {"network": self.network.state_dict(), "optimizer": self.optimizer.state_dict(),
                "buffer": self.buffer.state_dict(), **self.self_play.state_dict(),
                "update_credit": self.update_credit, "updates": self.updates,
                "value_check": self.value_check.state_dict(),
                "search_rng": self.search_rng.bit_generator.state,
                "eval_rng": self.eval_rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.buffer.load_state_dict(state["buffer"])
        self.self_play.load_state_dict(state)
        self.update_credit, self.updates = state["update_credit"], state["updates"]
        self.value_check.load_state_dict(state.get("value_check"))
        self.search_rng.bit_generator.state = state["search_rng"]
        self.eval_rng.bit_generator.state = state["eval_rng"]
