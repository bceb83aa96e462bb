"""`dqn`: deep Q-networks (Mnih et al. 2015) with a hard-copied target network, double Q (van Hasselt et
al. 2016) and a linearly decaying epsilon-greedy policy. `DQNLearner` is the update alone, so deep Dyna-Q
trains the same learner on imagined transitions too."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from modelrl.agents.base import Agent
from modelrl.buffers import ReplayBuffer
from modelrl.config import check_range
from modelrl.device import resolve_device
from modelrl.errors import ConfigError, IncompatibleEnvError
from modelrl.models.mlp import mlp
from modelrl.seeding import seeded_weights


@dataclass
class DQNConfig:
    """Defaults: rl-baselines3-zoo's tuned CartPole-v1 values (Mnih et al.'s Atari values need millions of
    frames); the exploration decay is its 16% of a 50k-step run. Double Q is on, as in van Hasselt et al."""

    lr: float = 2.3e-3  # Adam learning rate
    gamma: float = 0.99  # discount factor
    batch_size: int = 64  # transitions per gradient update
    buffer_size: int = 100_000  # real transitions kept for replay
    learning_starts: int = 1000  # random actions (and no updates) before this many steps
    train_freq: int = 256  # env steps between bursts of updates
    gradient_steps: int = 128  # updates per burst
    target_update_interval: int = 10  # env steps between copies into the target network
    exploration_initial_eps: float = 1.0  # epsilon at the start of the decay
    exploration_final_eps: float = 0.04  # epsilon after the decay
    exploration_steps: int = 8_000  # env steps over which epsilon decays linearly
    hidden_size: int = 256  # units per hidden layer of the Q network
    num_layers: int = 2  # hidden layers of the Q network
    double_q: bool = True  # the online network picks the next action, the target values it
    max_grad_norm: float = 10.0  # gradient norm clip
    device: str = "auto"  # auto (CUDA when present), cpu, cuda or cuda:N

    def validate(self) -> None:
        for name in ("batch_size", "buffer_size", "train_freq", "target_update_interval", "hidden_size",
                     "num_layers", "exploration_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        check_range(self, "learning_starts", 0)
        check_range(self, "gradient_steps", 0)
        for name in ("exploration_initial_eps", "exploration_final_eps"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        check_range(self, "lr", 0, low_open=True)
        check_range(self, "max_grad_norm", 0, low_open=True)
        check_range(self, "gamma", 0, 1)

    def epsilon(self, step: int) -> float:
        progress = min(1.0, step / self.exploration_steps)
        return (self.exploration_initial_eps
                + progress * (self.exploration_final_eps - self.exploration_initial_eps))


class DQNLearner:
    """A Q network, its target copy and the (double) Q-learning update on batches of device tensors
    `obs, action (int), reward, next_obs, terminated`."""

    def __init__(self, obs_dim: int, num_actions: int, config: DQNConfig, device: torch.device):
        self.config = config
        self.q = mlp(obs_dim, num_actions, config.hidden_size, config.num_layers).to(device)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.q.parameters(), lr=config.lr, fused=True)
        self._params = list(self.q.parameters())
        self.updates = 0

    def update(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        config = self.config
        with torch.no_grad():
            next_q_target = self.q_target(batch["next_obs"])
            if config.double_q:  # the online net picks the action, the target net values it
                best = self.q(batch["next_obs"]).argmax(-1, keepdim=True)
                next_q = next_q_target.gather(-1, best).squeeze(-1)
            else:
                next_q = next_q_target.max(-1).values
            not_done = 1.0 - batch["terminated"].to(next_q.dtype)
            target = batch["reward"] + config.gamma * not_done * next_q
        q = self.q(batch["obs"]).gather(-1, batch["action"].long().unsqueeze(-1)).squeeze(-1)
        loss = F.smooth_l1_loss(q, target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self._params, config.max_grad_norm, foreach=True)
        self.optimizer.step()
        self.updates += 1
        return loss.detach()

    def sync_target(self) -> None:
        self.q_target.load_state_dict(self.q.state_dict())

    @torch.no_grad()
    def greedy(self, obs: torch.Tensor) -> torch.Tensor:
        return self.q(obs).argmax(-1)

    def state_dict(self) -> dict[str, Any]:
        return {"q": self.q.state_dict(), "q_target": self.q_target.state_dict(),
                "optimizer": self.optimizer.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.q.load_state_dict(state["q"])
        self.q_target.load_state_dict(state["q_target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = state["updates"]

    def parameters_finite(self) -> bool:
        return bool(torch.stack([p.detach().isfinite().all() for p in self._params]).all())


class DQN(Agent):
    agent_id = "dqn"
    config_class = DQNConfig
    metric_names = ("epsilon", "updates", "q_loss")

    def __init__(self, env, config=None, seed: int = 0, env_kwargs: dict | None = None, num_envs: int = 1):
        super().__init__(env, config, seed, env_kwargs, num_envs)
        self.device = resolve_device(self.config.device)
        obs_shape = self.env.observation_space.shape
        self.num_actions = int(self.env.action_space.n)
        with seeded_weights(self.seed):
            self.learner = DQNLearner(obs_shape[0], self.num_actions, self.config, self.device)
        self.buffer = ReplayBuffer(self.config.buffer_size, obs_shape, (), action_dtype=np.int64,
                                   name="buffer_size")
        self._loss: torch.Tensor | None = None

    def check_env(self, env: gym.Env) -> None:
        self.require_flat_box_observations(env)
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise IncompatibleEnvError(
                f"{self.agent_id} needs Discrete actions; {self.env_id} has {env.action_space} (use sac)")

    @property
    def epsilon(self) -> float:
        return self.config.epsilon(self.env_steps)

    def act(self, obs, deterministic: bool = False):
        # Greedy evaluation draws nothing, so evaluating leaves training's random stream as it was.
        if not deterministic and (self.env_steps < self.config.learning_starts
                                  or self.rng.random() < self.epsilon):
            return int(self.rng.integers(self.num_actions))
        state = torch.as_tensor(np.asarray(obs, np.float32), device=self.device)
        return int(self.learner.greedy(state))

    def first_learning_step(self) -> tuple[int, str]:
        config = self.config
        first = -(-max(1, config.learning_starts) // config.train_freq) * config.train_freq
        return first, f"learning_starts={config.learning_starts}, train_freq={config.train_freq}"

    def observe(self, obs, action, reward, next_obs, terminated, truncated, info=None) -> None:
        self.buffer.add(obs, action, reward, next_obs, terminated, truncated)
        config, step = self.config, self.env_steps
        if step >= config.learning_starts and step % config.train_freq == 0:
            self.train_burst()
        if step % config.target_update_interval == 0:
            self.learner.sync_target()

    def train_burst(self) -> None:
        for _ in range(self.config.gradient_steps):
            batch = self.buffer.sample_tensors(self.config.batch_size, self.rng, self.device)
            self._loss = self.learner.update(batch)

    def metrics(self) -> dict[str, float]:
        row = {"epsilon": self.epsilon, "updates": self.learner.updates}
        if self._loss is not None:
            row["q_loss"] = float(self._loss)
        return row

    def check_finite(self) -> bool:
        return self.learner.parameters_finite()

    def state_dict(self) -> dict[str, Any]:
        return {"learner": self.learner.state_dict(), "buffer": self.buffer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.learner.load_state_dict(state["learner"])
        self.buffer.load_state_dict(state["buffer"])
