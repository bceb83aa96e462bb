"""`pets`: probabilistic ensembles with trajectory sampling (Chua et al. 2018).

Random actions for the first `random_steps`; after that, the ensemble is refitted on every real transition
so far (at each episode's end, or every `train_every` steps) and actions come from MPC over particles
propagated through it. Defaults are mbrl-lib's PETS tutorial on the continuous cart-pole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from modelrl.agents.mpc import MPCAgent, PlannerConfig
from modelrl.buffers import ReplayBuffer
from modelrl.config import check_range
from modelrl.errors import ConfigError
from modelrl.models.dynamics import ModelSpec
from modelrl.models.training import ModelTrainer
from modelrl.planning.trajectory import ModelObjective


@dataclass
class PETSConfig(PlannerConfig):
    ensemble_size: int = 5  # members of the probabilistic ensemble
    num_elites: int = 5  # members used for planning (best on held-out data)
    hidden_size: int = 200  # units per hidden layer of each member
    num_layers: int = 3  # hidden layers of each member
    activation: Literal["leaky_relu", "silu", "relu", "tanh"] = "leaky_relu"  # the tutorial's; PETS: silu
    probabilistic: bool = True  # members predict a Gaussian (NLL loss) rather than a mean (MSE)
    learned_reward: bool = False  # learn reward and termination instead of the env's known functions
    lr: float = 1e-3  # the model's Adam learning rate
    weight_decay: float = 5e-5  # the model's L2 weight decay
    batch_size: int = 32  # model training batch size
    model_epochs: int = 50  # per refit; with patience = epochs there is no early stop (the tutorial's)
    model_patience: int = 50  # epochs without held-out improvement before a refit stops
    holdout_ratio: float = 0.05  # share of the data held out to pick elites and stop early
    random_steps: int = 200  # one 200-step trial of random actions
    train_every: int = 0  # refit every this many steps; 0: at each episode's end
    buffer_size: int = 1_000_000  # real transitions kept for model fitting

    def validate(self) -> None:
        super().validate()
        if not 1 <= self.num_elites <= self.ensemble_size:
            raise ConfigError(f"num_elites must be in [1, ensemble_size={self.ensemble_size}], got "
                              f"{self.num_elites}")
        for name in ("hidden_size", "batch_size", "model_epochs", "model_patience", "random_steps",
                     "buffer_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("num_layers", "train_every", "weight_decay"):
            check_range(self, name, 0)
        check_range(self, "lr", 0, low_open=True)
        if not 0 <= self.holdout_ratio < 1:
            raise ConfigError(f"holdout_ratio must be in [0, 1), got {self.holdout_ratio}")


class PETS(MPCAgent):
    agent_id = "pets"
    config_class = PETSConfig
    metric_names = (*MPCAgent.metric_names, *ModelTrainer.metric_names)

    def build_objective(self) -> ModelObjective:
        config, env = self.config, self.env
        discrete = isinstance(env.action_space, gym.spaces.Discrete)
        action_dim = int(env.action_space.n) if discrete else int(env.action_space.shape[0])
        self.spec = ModelSpec(
            obs_dim=int(env.observation_space.shape[0]), action_dim=action_dim, discrete_actions=discrete,
            ensemble_size=config.ensemble_size, num_elites=config.num_elites, hidden_size=config.hidden_size,
            num_layers=config.num_layers, probabilistic=config.probabilistic,
            learn_reward=config.learned_reward, learn_termination=config.learned_reward,
            activation=config.activation,
        )
        self.trainer = ModelTrainer(self.spec, self.device, seed=self.seed, lr=config.lr,
                                    weight_decay=config.weight_decay, batch_size=config.batch_size,
                                    max_epochs=config.model_epochs, holdout_ratio=config.holdout_ratio,
                                    patience=config.model_patience)
        self.model = self.trainer.model
        self.buffer = ReplayBuffer(config.buffer_size, env.observation_space.shape,
                                   () if discrete else env.action_space.shape,
                                   action_dtype=np.int64 if discrete else np.float32, name="buffer_size")
        reward = None if config.learned_reward else self.known_reward()
        termination = None if config.learned_reward else self.known.termination
        return ModelObjective(self.model, reward, termination, particles=config.particles,
                              propagation=config.propagation, gamma=config.gamma, generator=self.generator)

    def act(self, obs, deterministic: bool = False):
        if self.trainer.fits == 0:  # no model yet: uniform random actions
            space, rng = self.env.action_space, self.eval_rng if deterministic else self.rng
            if isinstance(space, gym.spaces.Discrete):
                return int(rng.integers(space.n))
            return rng.uniform(space.low, space.high).astype(space.dtype)
        return super().act(obs, deterministic)

    def observe(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        self.buffer.add(obs, action, reward, next_obs, terminated, truncated)
        every = self.config.train_every
        due = (terminated or truncated) if every == 0 else self.env_steps % every == 0
        if self.env_steps == self.config.random_steps or (self.env_steps > self.config.random_steps and due):
            self.fit_model()

    def first_learning_step(self) -> tuple[int, str]:
        return self.config.random_steps, f"random_steps={self.config.random_steps}"

    def fit_model(self):
        return self.trainer.fit(self.buffer, self.generator)

    def metrics(self) -> dict[str, float]:
        return {**super().metrics(), **self.trainer.metrics()}

    def check_finite(self) -> bool:
        return self.trainer.parameters_finite()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), **self.trainer.state_dict(), "buffer": self.buffer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.trainer.load_state_dict(state)
        self.buffer.load_state_dict(state["buffer"])
