"""`muzero`: MuZero (Schrittwieser et al. 2020): tree search inside a learned model.

Three networks: representation h (observation -> latent state, min-max scaled to [0, 1] per state, as the
paper does), dynamics g (latent state and one-hot action -> next latent state and reward) and prediction f
(latent state -> policy logits and value); `reward_head="per_action"` reads the reward instead from a head
on the current latent that gives every action's reward (the taken one's is used). Acting searches the model
(`modelrl.planning.mcts`, one root, single-agent discounted backups, Dirichlet noise) and draws the action
from the visit counts with `temperature` (the most visited when evaluating). Finished episodes go to a
replay of games with their search policies and root values.

Training samples positions t and unrolls the model K steps along the actions really taken: at every step
k the prediction is trained towards the search policy at t + k, the value towards the n-step return
r_{t+k+1} + ... + gamma^n v_root(t+k+n) (zero past the episode's end), and from k = 1 the reward towards the
real reward; values and rewards as two-hot categoricals over MuZero's support (h(x) = sign(x)(sqrt(|x| + 1)
- 1) + 0.001 x, integers -S..S). The latent's gradient is halved at each unrolled step and the unrolled
terms are divided by K, as the paper does. `updates_per_step` updates of `batch_size` positions per real step.
Replay is uniform by default; `priority_exponent=1` prioritizes it as the paper does: a position's priority
is |root value - its n-step target| when its episode ends, then |predicted value - target| each time it is
trained on; positions are drawn with probability p^alpha / sum p^alpha and their losses weighted by
(N P)^-beta, normalised by the largest (`priority_correction`). Reanalyse (MuZero Reanalyze):
`reanalyse_per_update` stored positions per update, on average, are searched again with the latest network,
`batch_size` of them in one batched search once that many are owed, and their policy and root value (the
value targets' bootstrap) replaced.

On a two-player board game (`modelrl/TicTacToe-v0`, `modelrl/ConnectFour-v0`) MuZero plays itself as
AlphaZero does (`parallel_games` games at once, one batched search per move, moves drawn from the visit
counts for the first `temperature_moves`), but searches inside its learned model with negamax backups:
the rules only tell the games' ends and the root's legal moves. Rewards are the mover's (+1 for a winning
move), so the n-step value targets alternate sign from one position to the next. Env steps are self-play
moves; evaluation plays the env's opponent.

`actors=N` plays in N actors of their own, each with its own copy of the env, feeding this one's learner:
local processes reading the network from shared memory (`backend="processes"`) or Ray actors, on this
machine or a cluster (`backend="ray"`; `modelrl.actors`); their steps count when their episode ends.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from modelrl.actors import ActorLoop, ProcessActors, RayActors, check_actor_settings
from modelrl.agents.alphazero import SelfPlay, ValueErrorCheck
from modelrl.agents.base import Agent
from modelrl.config import check_range
from modelrl.device import resolve_device
from modelrl.envs import make_env
from modelrl.envs.games import BoardGameEnv
from modelrl.errors import ConfigError, IncompatibleEnvError
from modelrl.models.distributions import TwoHot
from modelrl.models.mlp import mlp
from modelrl.planning.mcts import MCTSConfig, search
from modelrl.seeding import numpy_stream, seeded_weights, stream_seed


@dataclass
class MuZeroConfig:
    """Defaults: the paper's search and loss; sizes and counts for small control tasks (its Atari network is
    a ResNet)."""

    simulations: int = 50  # searches per real step
    discount: float = 0.997  # of rewards, in the search and the value targets
    unroll_steps: int = 5  # K
    td_steps: int = 10  # n of the value targets
    support_size: int = 20  # S: values and rewards are categoricals over -S..S after h
    latent_size: int = 64  # size of the latent state
    hidden_size: int = 128  # units of each network's hidden layers
    num_layers: int = 2  # hidden layers of each network
    lr: float = 1e-3  # Adam
    # updates over which the learning rate falls tenfold, exponentially (the paper's schedule):
    # lr * 0.1 ** (updates / lr_decay_steps); 0: constant
    lr_decay_steps: int = 0
    weight_decay: float = 1e-4  # L2 on the weights (the paper's 1e-4)
    batch_size: int = 128  # positions per update
    buffer_games: int = 500  # recent episodes kept
    updates_per_step: float = 0.5  # updates owed per real step
    learning_starts: int = 500  # real steps before the first update
    temperature: float = 1.0  # visit-count temperature of the acting policy while training
    # env steps, comma-separated, at which that temperature halves: "10000,15000" plays at 1, 0.5, then 0.25
    # (the paper's Atari schedule, over its training steps); empty: constant
    temperature_halvings: str = ""
    # alpha of prioritized replay; 0: positions drawn uniformly. The paper's 1 stalled learning on CartPole
    # and TicTacToe here: each batch's gradient was left to its few best-predicted positions (alphazero.md)
    priority_exponent: float = 0.0
    priority_correction: float = 1.0  # beta: importance weights (N P)^-beta correct the drawing
    # stored positions searched again with the latest network, per update on average; searched in one batch
    # of `batch_size` once that many are owed (one search's overhead spread over many positions)
    reanalyse_per_update: float = 0.0
    dirichlet_alpha: float = 0.25  # root noise concentration (the paper's Atari value)
    root_noise: float = 0.25  # share of noise in the root's prior while training
    parallel_games: int = 32  # board games: self-play games played at once, one batched search per move
    # board games: each sampled unroll seen under a random one of the board's symmetries (its board, the
    # actions taken and the search policies alike), as alphazero's `augment`
    augment: bool = True
    # board games: moves drawn from the visit counts at a game's start, the most visited after
    temperature_moves: int = 4
    # board games: a self-play game's first this many moves uniform over the legal ones (alphazero's)
    random_opening_moves: int = 0
    # where a step's reward is read: "dynamics" (the paper: from the dynamics network's input of latent and
    # one-hot action) or "per_action" (a head on the current latent giving every action's reward, as the
    # policy head gives every action's prior, the taken one read)
    reward_head: str = "dynamics"
    # play in this many actors of their own (each its own env), feeding this one's learner (0: play here);
    # their episodes in progress are not saved, and runs with them are not reproducible step for step
    actors: int = 0
    backend: str = "processes"  # where actors run: "processes" (local, shared memory) or "ray" (Ray actors)
    device: str = "auto"  # auto (CUDA when present), cpu, cuda or cuda:N

    def validate(self) -> None:
        for name in ("simulations", "unroll_steps", "td_steps", "support_size", "latent_size", "hidden_size",
                     "num_layers", "batch_size", "buffer_games", "parallel_games"):
            check_range(self, name, 1)
        for name in ("updates_per_step", "learning_starts", "lr_decay_steps", "weight_decay",
                     "priority_exponent", "priority_correction", "reanalyse_per_update", "temperature_moves",
                     "random_opening_moves"):
            check_range(self, name, 0)
        check_range(self, "discount", 0, 1, low_open=True)
        check_range(self, "lr", 0, low_open=True)
        check_range(self, "temperature", 0, low_open=True)
        check_range(self, "dirichlet_alpha", 0, low_open=True)
        check_range(self, "root_noise", 0, 1)
        check_actor_settings(self)
        if self.reward_head not in ("dynamics", "per_action"):
            raise ConfigError(f"reward_head must be 'dynamics' or 'per_action', got {self.reward_head!r}")
        steps = self.halving_steps()
        if steps and self.actors:
            raise ConfigError("temperature_halvings needs the learner's step count when acting, which actors "
                              "do not see: play in the learner (actors=0) or give a constant temperature")

    def halving_steps(self) -> list[int]:
        try:
            steps = [int(part) for part in self.temperature_halvings.split(",") if part.strip()]
        except ValueError:
            steps = [-1]
        if any(step < 0 for step in steps) or steps != sorted(steps):
            raise ConfigError("temperature_halvings must be env steps in increasing order, comma-separated "
                              f"(e.g. 10000,15000), got {self.temperature_halvings!r}")
        return steps

    def temperature_at(self, env_steps: int) -> float:
        """The training temperature after `env_steps` real steps."""
        return self.temperature * 0.5 ** sum(step <= env_steps for step in self.halving_steps())


def scale_latent(latent: torch.Tensor) -> torch.Tensor:
    """Each latent state min-max scaled into [0, 1] (the paper's normalisation of hidden states)."""
    low, high = latent.aminmax(dim=-1, keepdim=True)
    return (latent - low) / (high - low).clamp_min(1e-5)


class MuZeroNetwork(nn.Module):
    def __init__(self, obs_dim: int, actions: int, config: MuZeroConfig):
        super().__init__()
        latent, hidden, layers = config.latent_size, config.hidden_size, config.num_layers
        bins = 2 * config.support_size + 1
        self.actions, self.bins = actions, bins
        self.representation = mlp(obs_dim, latent, hidden, layers)
        per_action = config.reward_head == "per_action"
        self.dynamics = mlp(latent + actions, latent + (0 if per_action else bins), hidden, layers)
        self.reward = mlp(latent, actions * bins, hidden, layers) if per_action else None
        self.prediction = mlp(latent, actions + bins, hidden, layers)
        self.support = TwoHot(bins, -config.support_size, config.support_size, squash="muzero")

    def initial(self, obs: torch.Tensor) -> torch.Tensor:
        return scale_latent(self.representation(obs))

    def recurrent(self, latent: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Next latent state and reward logits."""
        out = self.dynamics(torch.cat([latent, F.one_hot(action, self.actions).float()], -1))
        size = latent.shape[-1]
        if self.reward is None:
            return scale_latent(out[:, :size]), out[:, size:]
        rewards = self.reward(latent).view(len(latent), self.actions, self.bins)
        return scale_latent(out), rewards[torch.arange(len(latent), device=latent.device), action]

    def predict(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Policy logits and value logits."""
        out = self.prediction(latent)
        return out[:, :self.actions], out[:, self.actions:]

    # the search's model interface
    def root(self, obs: torch.Tensor):
        latent = self.initial(obs)
        logits, value = self.predict(latent)
        return logits, self.support.mean(value), latent

    def step(self, latent: torch.Tensor, action: torch.Tensor):
        next_latent, reward = self.recurrent(latent, action)
        logits, value = self.predict(next_latent)
        batch = len(latent)
        return (self.support.mean(reward), logits, self.support.mean(value), next_latent,
                torch.zeros(batch, dtype=torch.bool, device=latent.device),
                torch.ones(batch, self.actions, dtype=torch.bool, device=latent.device))


class BoardModel:
    """MuZero's network as the search's model of a board game: boards in, flattened; all moves allowed below
    the root (the model has to learn which are bad)."""

    def __init__(self, network: MuZeroNetwork):
        self.network = network

    def root(self, boards: torch.Tensor):
        return self.network.root(boards.flatten(1).float())

    def step(self, latent: torch.Tensor, action: torch.Tensor):
        return self.network.step(latent, action)


def muzero_search_config(config: MuZeroConfig, evaluation: bool, two_player: bool) -> MCTSConfig:
    return MCTSConfig(simulations=config.simulations, discount=config.discount, two_player=two_player,
                      dirichlet_alpha=config.dirichlet_alpha,
                      root_noise=0.0 if evaluation else config.root_noise)


@torch.no_grad()
def search_action(network: MuZeroNetwork, obs, config: MuZeroConfig, rng: np.random.Generator,
                  deterministic: bool, legal=None, two_player: bool = False,
                  temperature: float | None = None) -> tuple[int, np.ndarray, float]:
    """Search from `obs` (one root, flattened): the action (drawn from the visit counts with `temperature`,
    by default the config's, the most visited when `deterministic`), the improved policy and the root's
    value."""
    device = next(network.parameters()).device
    obs = torch.as_tensor(np.asarray(obs, np.float32).reshape(-1), device=device)[None]
    legal = (torch.ones(1, network.actions, dtype=torch.bool, device=device) if legal is None
             else torch.as_tensor(np.asarray(legal, bool), device=device)[None])
    network.eval()
    result = search(network, obs, legal, muzero_search_config(config, deterministic, two_player), rng)
    policy, value = result.improved_policy[0].cpu().numpy(), float(result.value[0])
    if deterministic:
        return int(result.action[0]), policy, value
    visits = result.policy(config.temperature if temperature is None else temperature)[0].cpu().numpy()
    return int(rng.choice(network.actions, p=visits)), policy, value


class MuZeroPlayer:
    """One actor: episodes of its own env, played by searching with `network` (the learner's, shared, or its
    own copy that `load` updates)."""

    def __init__(self, env_id: str, env_kwargs: dict, config: MuZeroConfig, seed: int, index: int,
                 network: MuZeroNetwork | None = None):
        self.env = make_env(env_id, **env_kwargs)
        self.env.reset(seed=stream_seed(seed, "actor env", index))
        self.config, self.rng = config, numpy_stream(seed, "actor search", index)
        self.network = network if network is not None else MuZeroNetwork(
            int(self.env.observation_space.shape[0]), int(self.env.action_space.n), config)

    def load(self, weights: dict[str, torch.Tensor]) -> None:
        self.network.load_state_dict(weights)

    def play(self) -> list[dict[str, np.ndarray]]:
        """One episode, as a stored game."""
        obs, info = self.env.reset()
        game = MuZero.new_game()
        done = False
        while not done:
            action, policy, value = search_action(self.network, obs, self.config, self.rng, False,
                                                  info.get("action_mask"))
            next_obs, reward, terminated, truncated, info = self.env.step(action)
            MuZero.record(game, obs, action, reward, policy, value)
            obs, done = next_obs, terminated or truncated
        return [{key: np.asarray(values) for key, values in game.items()}]


class MuZeroLoop(ActorLoop):
    """On board games, a training step is one self-play move of every game (`agent.self_play_step`)."""

    def own_step(self) -> None:
        if self.agent.game is None:
            return super().own_step()
        self.count_games(*self.agent.self_play_step())


class MuZero(Agent):
    agent_id = "muzero"
    config_class = MuZeroConfig
    plans_every_step = True
    loop_class: ClassVar[type] = MuZeroLoop
    metric_names = ("value_loss", "value_mse_new", "value_mse_replay", "reward_loss", "policy_loss",
                    "updates", "games")

    def __init__(self, env, config=None, seed: int = 0, env_kwargs: dict | None = None, num_envs: int = 1):
        super().__init__(env, config, seed, env_kwargs, num_envs)
        config = self.config
        self.device = resolve_device(config.device)
        self.actions = int(self.env.action_space.n)
        board_game = isinstance(self.env.unwrapped, BoardGameEnv)
        self.game = self.env.unwrapped.game if board_game else None
        if self.game is not None and config.actors:
            raise ConfigError("muzero's actors play single-agent envs; on a board game it plays itself here, "
                              "parallel_games games at once (set actors=0)")
        with seeded_weights(self.seed):
            self.network = MuZeroNetwork(int(np.prod(self.env.observation_space.shape)), self.actions,
                                         config).to(self.device)
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=config.lr,
                                          weight_decay=config.weight_decay)
        self.search_rng = numpy_stream(self.seed, "search")
        self.eval_rng = numpy_stream(self.seed, "evaluation search")
        self.games: list[dict[str, np.ndarray]] = []  # finished episodes, oldest first
        self.self_play = None if self.game is None else SelfPlay(
            self.game, config.parallel_games, config.temperature_moves,
            muzero_search_config(config, False, True), self.search_rng, self.device, model=BoardModel,
            random_moves=config.random_opening_moves)
        if self.game is not None:
            cells, moves = zip(*self.game.symmetries(), strict=True)
            self.symmetry_cells = torch.stack(cells).numpy()  # symmetric board[i] = board[cells[i]]
            self.symmetry_actions = torch.stack(moves).numpy()  # symmetric policy[a] = policy[moves[a]]
            self.symmetry_inverse = np.argsort(self.symmetry_actions, axis=1)  # action b becomes inverse[b]
        self.current = self.new_game()
        self.last_search: tuple[np.ndarray, float] | None = None
        self.workers: ProcessActors | RayActors | None = None
        self.update_credit, self.updates = 0.0, 0
        self._losses: dict[str, torch.Tensor] = {}
        self.value_check = ValueErrorCheck(self.seed)

    def check_env(self, env: gym.Env) -> None:
        if not isinstance(env.unwrapped, BoardGameEnv):
            self.require_flat_box_observations(env)
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise IncompatibleEnvError(f"muzero searches over Discrete actions; {self.env_id} has "
                                       f"{env.action_space}")

    @staticmethod
    def new_game() -> dict[str, list]:
        return {"obs": [], "action": [], "reward": [], "policy": [], "root_value": []}

    @staticmethod
    def record(game: dict[str, list], obs, action: int, reward: float, policy: np.ndarray, value: float
               ) -> None:
        """One step of an episode in progress: what was seen, done and got, and the search behind it."""
        for key, item in (("obs", np.asarray(obs, np.float32)), ("action", int(action)),
                          ("reward", float(reward)), ("policy", policy), ("root_value", value)):
            game[key].append(item)

    # --- acting -------------------------------------------------------------------------------------
    def act(self, obs, deterministic: bool = False, legal=None):
        if legal is None and self.game is not None:  # the rules know the legal moves
            legal = self.game.legal(torch.as_tensor(np.asarray(obs, np.float32))[None])[0].cpu().numpy()
        action, policy, value = search_action(self.network, obs, self.config,
                                              self.eval_rng if deterministic else self.search_rng,
                                              deterministic, legal, two_player=self.game is not None,
                                              temperature=self.config.temperature_at(self.env_steps))
        if not deterministic:
            self.last_search = (policy, value)
        return action

    def policy(self, obs, state, info: dict, deterministic: bool = False):
        return self.act(obs, deterministic, info.get("action_mask")), state

    # --- learning -----------------------------------------------------------------------------------
    def observe(self, obs, action, reward, next_obs, terminated, truncated, info=None) -> None:
        game = self.current
        self.record(game, obs, action, reward, *self.last_search)
        if terminated or truncated:
            self.store({key: np.asarray(values) for key, values in game.items()})
            self.current = self.new_game()
        self.owe_updates(1, self.env_steps)

    def store(self, game: dict[str, np.ndarray]) -> None:
        """A finished episode into the replay, with its positions' first priorities."""
        targets = self.value_targets(game)
        game["priority"] = np.abs(game["root_value"] - targets) + 1e-6
        self.check_value(game["obs"], targets)
        self.games.append(game)
        self.games = self.games[-self.config.buffer_games:]

    @torch.no_grad()
    def check_value(self, obs: np.ndarray, targets: np.ndarray) -> None:
        """The value (in the value's units, not the loss's supports) on a new episode's positions and on a
        random replayed episode's, before the new one is replayed."""
        self.network.eval()
        episodes = [(obs, targets)]
        if self.games:
            old = self.games[self.value_check.rng.integers(len(self.games))]
            episodes.append((old["obs"], self.value_targets(old)))
        for kind, (positions, target) in zip(("new", "replay"), episodes, strict=False):
            value = self.network.root(torch.tensor(positions, dtype=torch.float32, device=self.device))[1]
            self.value_check.add(kind, value.cpu().numpy(), target)

    def owe_updates(self, steps: int, env_steps: int) -> None:
        """The updates `steps` more real steps owe, made once `env_steps` reach `learning_starts`."""
        self.update_credit += self.config.updates_per_step * steps
        while self.update_credit >= 1 and env_steps >= self.config.learning_starts and self.games:
            self.update_credit -= 1
            self.update(self.sample())

    # --- board games: self-play ---------------------------------------------------------------------
    def self_play_step(self) -> tuple[int, list[dict[str, np.ndarray]]]:
        """One move of every self-play game, the games that ended stored, then the updates the moves owe;
        the moves made and the games ended."""
        self.network.eval()
        finished = [{"obs": game["board"].reshape(len(game["board"]), -1).astype(np.float32),
                     "action": game["action"], "reward": game["reward"], "policy": game["policy"],
                     "root_value": game["root_value"]} for game in self.self_play.step(self.network)]
        for game in finished:
            self.store(game)
        moved = len(self.self_play.boards)
        self.owe_updates(moved, self.env_steps + moved)
        return moved, finished

    # --- actors -------------------------------------------------------------------------------------
    def player_factory(self) -> functools.partial:
        return functools.partial(MuZeroPlayer, self.env_id, dict(self.env_kwargs), self.config, self.seed)

    def game_stats(self, game: dict[str, np.ndarray]) -> tuple[float, int]:
        """A finished game's return (on a board game: the first player's outcome) and length."""
        moves = len(game["action"])
        if self.game is not None:  # the last mover won (+1) or drew (0); the first player moved last if odd
            return float(game["reward"][-1]) * (1.0 if moves % 2 else -1.0), moves
        return float(game["reward"].sum()), moves

    def actor_step(self) -> tuple[int, list[dict[str, np.ndarray]]]:
        """The episodes the actors finished since (their steps count now), stored and learned from; the
        actors then get the updated network."""
        finished = self.workers.collect()
        for game in finished:
            self.store(game)
        moved = sum(len(game["action"]) for game in finished)
        self.owe_updates(moved, self.env_steps + moved)
        self.workers.publish(self.network)
        return moved, finished

    def value_targets(self, game: dict[str, np.ndarray]) -> np.ndarray:
        """Each position's n-step return: n rewards, then gamma^n times the root value n steps on (nothing
        past the episode's end)."""
        n, gamma, rewards = self.config.td_steps, self.config.discount, game["reward"]
        if self.game is not None:  # each reward and value is the mover's: the next position's is the other's
            gamma = -gamma
        T = len(rewards)
        windows = np.lib.stride_tricks.sliding_window_view(np.concatenate([rewards, np.zeros(n)]), n)[:T]
        targets = windows @ gamma ** np.arange(n)
        targets[:max(T - n, 0)] += gamma ** n * game["root_value"][n:]
        return targets

    def sample(self) -> dict[str, torch.Tensor]:
        """A batch of positions with K + 1 steps of targets each (see the module docstring), drawn by
        priority, with their importance weights and where they came from."""
        config, rng = self.config, self.rng
        K = config.unroll_steps
        priorities = np.concatenate([game["priority"] for game in self.games]) ** config.priority_exponent
        probabilities = priorities / priorities.sum()
        flat = rng.choice(len(probabilities), config.batch_size, p=probabilities)
        weights = (len(probabilities) * probabilities[flat]) ** -config.priority_correction
        starts = np.cumsum([0] + [len(game["action"]) for game in self.games])
        picks = np.searchsorted(starts, flat, side="right") - 1
        obs, actions, values, rewards, policies, masks = [], [], [], [], [], []
        for g, t in zip(picks, flat - starts[picks], strict=True):
            game = self.games[g]
            T = len(game["action"])
            obs.append(game["obs"][t])
            steps = np.arange(t, t + K + 1)
            inside = steps < T
            masks.append(inside)
            actions.append(np.where(steps[:K] < T, game["action"][np.minimum(steps[:K], T - 1)],
                                    rng.integers(self.actions, size=K)))
            targets = self.value_targets(game)
            values.append(np.where(inside, targets[np.minimum(steps, T - 1)], 0.0))
            reward = np.zeros(K + 1)  # the reward on arriving at step k (none at k = 0)
            before = t + np.arange(K)  # the step whose reward arrives at k = 1..K
            reward[1:] = np.where(before < T, game["reward"][np.minimum(before, T - 1)], 0.0)
            rewards.append(reward)
            policy = np.full((K + 1, self.actions), 1.0 / self.actions)
            policy[inside] = game["policy"][steps[inside]]
            policies.append(policy)

        if self.game is not None and config.augment:
            pick = rng.integers(len(self.symmetry_cells), size=config.batch_size)
            obs = np.take_along_axis(np.asarray(obs), self.symmetry_cells[pick], 1)
            actions = np.take_along_axis(self.symmetry_inverse[pick], np.asarray(actions), 1)
            policies = np.take_along_axis(np.asarray(policies), self.symmetry_actions[pick][:, None, :], 2)

        def as_tensor(x, dtype=torch.float32):
            return torch.as_tensor(np.asarray(x), dtype=dtype, device=self.device)

        return {"obs": as_tensor(obs), "action": as_tensor(actions, torch.long), "value": as_tensor(values),
                "reward": as_tensor(rewards), "policy": as_tensor(policies), "mask": as_tensor(masks),
                "weight": as_tensor(weights / weights.max()), "game": as_tensor(picks, torch.long),
                "position": as_tensor(flat - starts[picks], torch.long)}

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The unrolled losses of a batch, averaged over it with the importance weights (unrolled steps
        weighed 1 / K); `first_value` is the value predicted at k = 0 (for the new priorities)."""
        network, support = self.network, self.network.support
        K = batch["action"].shape[1]
        latent = network.initial(batch["obs"])
        value_loss = reward_loss = policy_loss = 0.0
        first_value = None
        for k in range(K + 1):
            if k > 0:
                latent, reward_logits = network.recurrent(latent, batch["action"][:, k - 1])
                latent = 0.5 * latent + 0.5 * latent.detach()  # the paper's halved gradient per step
                reward_loss = reward_loss + support.loss(reward_logits, batch["reward"][:, k]) / K
            logits, value_logits = network.predict(latent)
            if k == 0:
                first_value = support.mean(value_logits).detach()
            weight = 1.0 if k == 0 else 1.0 / K
            value_loss = value_loss + weight * support.loss(value_logits, batch["value"][:, k])
            cross_entropy = -(batch["policy"][:, k] * F.log_softmax(logits, -1)).sum(-1)
            policy_loss = policy_loss + weight * cross_entropy * batch["mask"][:, k]
        importance = batch.get("weight", torch.ones_like(batch["value"][:, 0]))
        return {"value_loss": (importance * value_loss).mean(),
                "reward_loss": (importance * reward_loss).mean(),
                "policy_loss": (importance * policy_loss).mean(), "first_value": first_value}

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.network.train()
        losses = self.losses(batch)
        first_value = losses.pop("first_value")
        self.optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        if self.config.lr_decay_steps:  # set from the update count, so a resumed run continues the schedule
            for group in self.optimizer.param_groups:
                group["lr"] = self.config.lr * 0.1 ** (self.updates / self.config.lr_decay_steps)
        self.optimizer.step()
        if "game" in batch:  # the trained positions' new priorities
            errors = (first_value - batch["value"][:, 0]).abs().cpu().numpy() + 1e-6
            for g, t, error in zip(batch["game"].tolist(), batch["position"].tolist(), errors, strict=True):
                self.games[g]["priority"][t] = error
        self.updates += 1
        rate, size = self.config.reanalyse_per_update, self.config.batch_size
        owed = size * (int(self.updates * rate // size) - int((self.updates - 1) * rate // size))
        if owed and self.games:  # from the update count alone, so a resumed run reanalyses on schedule
            self.reanalyse(owed)
        self._losses = {key: value.detach() for key, value in losses.items()}
        return self._losses

    @torch.no_grad()
    def reanalyse(self, count: int) -> None:
        """Search `count` stored positions (drawn uniformly) again with the current network, without root
        noise, and keep the new search policies and root values."""
        starts = np.cumsum([0] + [len(game["action"]) for game in self.games])
        flat = self.rng.integers(starts[-1], size=count)
        picks = np.searchsorted(starts, flat, side="right") - 1
        positions = flat - starts[picks]
        stored = [self.games[g]["obs"][t] for g, t in zip(picks, positions, strict=True)]
        obs = torch.as_tensor(np.stack(stored), device=self.device)
        legal = (torch.ones(count, self.actions, dtype=torch.bool, device=self.device) if self.game is None
                 else self.game.legal(obs.view(count, *self.game.board_shape)))
        self.network.eval()
        config = muzero_search_config(self.config, True, self.game is not None)
        result = search(self.network, obs, legal, config, self.search_rng)
        policies, values = result.improved_policy.cpu().numpy(), result.value.cpu().numpy()
        for i, (g, t) in enumerate(zip(picks, positions, strict=True)):
            self.games[g]["policy"][t], self.games[g]["root_value"][t] = policies[i], values[i]

    # --- bookkeeping --------------------------------------------------------------------------------
    def metrics(self) -> dict[str, float]:
        row = {name: float(value) for name, value in self._losses.items()}
        row.update(self.value_check.metrics())
        row.update(updates=self.updates, games=len(self.games))
        return row

    def check_finite(self) -> bool:
        return all(torch.isfinite(p).all() for p in self.network.parameters())

    def state_dict(self) -> dict[str, Any]:
        current = {key: [np.asarray(v) for v in values] for key, values in self.current.items()}
        return {"network": self.network.state_dict(), "optimizer": self.optimizer.state_dict(),
                "games": self.games, "current": current, "last_search": self.last_search,
                "update_credit": self.update_credit, "updates": self.updates,
                "value_check": self.value_check.state_dict(),
                "search_rng": self.search_rng.bit_generator.state,
                "eval_rng": self.eval_rng.bit_generator.state,
                **({} if self.self_play is None else self.self_play.state_dict())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.games = [dict(game) for game in state["games"]]
        self.current = {key: [v if np.ndim(v) else v.item() for v in values]
                        for key, values in state["current"].items()}
        self.last_search = None if state["last_search"] is None else tuple(state["last_search"])
        self.update_credit, self.updates = state["update_credit"], state["updates"]
        self.value_check.load_state_dict(state.get("value_check"))
        self.search_rng.bit_generator.state = state["search_rng"]
        self.eval_rng.bit_generator.state = state["eval_rng"]
        if self.self_play is not None:
            self.self_play.load_state_dict(state)
