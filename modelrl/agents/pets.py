"""`pets`: probabilistic ensembles with trajectory sampling (Chua et al. 2018).

Random actions for the first `random_steps`; after that, the ensemble is refitted on every real transition
so far (at each episode's end, or every `train_every` steps) and actions come from MPC over particles
propagated through it. Defaults are mbrl-lib's PETS tutorial on the continuous cart-pole.
`terminal_value=True` also learns V(s) by TD from the real steps (`modelrl.planning.value`) and adds
gamma^H V(s_H) to every planned return, so a short horizon sees past its end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np

from modelrl.agents.learned_model import LearnedModelConfig
from modelrl.agents.mpc import MPCAgent
from modelrl.buffers import ReplayBuffer
from modelrl.config import check_range
from modelrl.errors import ConfigError
from modelrl.models.training import ModelTrainer
from modelrl.planning.config import PlannerConfig
from modelrl.planning.trajectory import ModelObjective
from modelrl.planning.value import TerminalValue
from modelrl.seeding import seeded_weights


@dataclass
class PETSConfig(PlannerConfig, LearnedModelConfig):
    """The model's defaults are mbrl-lib's PETS tutorial (PETS itself used SiLU); with patience equal to the
    epochs, a refit never stops early."""

    model_activation: Literal["silu", "relu", "leaky_relu", "tanh"] = "leaky_relu"
    model_batch_size: int = 32
    model_holdout_ratio: float = 0.05
    model_patience: int = 50
    model_max_epochs: int = 50
    learned_reward: bool = False  # learn reward and termination instead of the env's known functions
    random_steps: int = 200  # one 200-step trial of random actions
    train_every: int = 0  # refit every this many steps; 0: at each episode's end
    buffer_size: int = 1_000_000  # real transitions kept for model fitting
    device: str = "auto"  # auto (CUDA when present), cpu, cuda or cuda:N
    # learn V(s) by TD(0) from real steps and add gamma^H V(s_H) to every planned return (needs gamma < 1)
    terminal_value: bool = False
    value_hidden_size: int = 256  # units of the value network's two hidden layers
    value_lr: float = 3e-4  # Adam learning rate of the value
    value_batch_size: int = 256  # replayed transitions per value update
    value_updates_per_step: int = 1  # value updates per real step, from the first model fit on
    value_tau: float = 0.005  # Polyak step of the value's target network
    # Before the model settings were shared with mbpo and deep-dyna-q, pets named them so.
    renamed_keys: ClassVar[dict[str, str]] = {
        "hidden_size": "model_hidden_size", "num_layers": "model_layers", "activation": "model_activation",
        "probabilistic": "model_probabilistic", "lr": "model_lr", "weight_decay": "model_weight_decay",
        "batch_size": "model_batch_size", "model_epochs": "model_max_epochs",
        "holdout_ratio": "model_holdout_ratio"}

    def validate(self) -> None:
        super().validate()
        self.validate_model()
        check_range(self, "random_steps", 1)
        check_range(self, "buffer_size", 1)
        check_range(self, "train_every", 0)
        for name in ("value_hidden_size", "value_batch_size"):
            check_range(self, name, 1)
        check_range(self, "value_updates_per_step", 0)
        check_range(self, "value_lr", 0, low_open=True)
        check_range(self, "value_tau", 0, 1, low_open=True)
        if self.terminal_value and self.gamma >= 1:
            raise ConfigError("terminal_value needs a discount below 1 (the value of an endless task is "
                              f"unbounded): set gamma, e.g. gamma=0.99; got gamma={self.gamma}")


class PETS(MPCAgent):
    agent_id = "pets"
    config_class = PETSConfig
    metric_names = (*MPCAgent.metric_names, *ModelTrainer.metric_names, "value_loss")

    def build_objective(self) -> ModelObjective:
        config, env = self.config, self.env
        discrete = isinstance(env.action_space, gym.spaces.Discrete)
        action_dim = int(env.action_space.n) if discrete else int(env.action_space.shape[0])
        self.trainer = config.model_trainer(int(env.observation_space.shape[0]), action_dim, self.device,
                                            self.seed, discrete_actions=discrete,
                                            learn_reward=config.learned_reward,
                                            learn_termination=config.learned_reward)
        self.model, self.spec = self.trainer.model, self.trainer.model.spec
        self.buffer = ReplayBuffer(config.buffer_size, env.observation_space.shape,
                                   () if discrete else env.action_space.shape,
                                   action_dtype=np.int64 if discrete else np.float32, name="buffer_size")
        reward = None if config.learned_reward else self.known_reward()
        termination = None if config.learned_reward else self.known.termination
        self.value = None
        if config.terminal_value:
            with seeded_weights(self.seed, "value"):
                self.value = TerminalValue(int(env.observation_space.shape[0]), gamma=config.gamma,
                                           hidden_size=config.value_hidden_size, lr=config.value_lr,
                                           tau=config.value_tau, device=self.device)
        return ModelObjective(self.model, reward, termination, particles=config.particles,
                              propagation=config.propagation, gamma=config.gamma, generator=self.generator,
                              terminal_value=self.value)

    def act(self, obs, deterministic: bool = False):
        if self.trainer.fits == 0:  # no model yet: uniform random actions
            space, rng = self.env.action_space, self.eval_rng if deterministic else self.rng
            if isinstance(space, gym.spaces.Discrete):
                return int(rng.integers(space.n))
            return rng.uniform(space.low, space.high).astype(space.dtype)
        return super().act(obs, deterministic)

    def observe(self, obs, action, reward, next_obs, terminated, truncated, info=None) -> None:
        self.buffer.add(obs, action, reward, next_obs, terminated, truncated)
        every = self.config.train_every
        due = (terminated or truncated) if every == 0 else self.env_steps % every == 0
        if self.env_steps == self.config.random_steps or (self.env_steps > self.config.random_steps and due):
            self.fit_model()
        if self.value is not None and self.trainer.fits > 0:
            for _ in range(self.config.value_updates_per_step):
                self.value.update(self.buffer.sample_tensors(self.config.value_batch_size, self.rng,
                                                             self.device))

    def first_learning_step(self) -> tuple[int, str]:
        return self.config.random_steps, f"random_steps={self.config.random_steps}"

    def fit_model(self):
        return self.trainer.fit(self.buffer, self.generator)

    def metrics(self) -> dict[str, float]:
        row = {**super().metrics(), **self.trainer.metrics()}
        if self.value is not None and self.value.updates:
            row["value_loss"] = float(self.value.loss)
        return row

    def check_finite(self) -> bool:
        return self.trainer.parameters_finite() and (self.value is None or self.value.parameters_finite())

    def state_dict(self) -> dict[str, Any]:
        state = {**super().state_dict(), **self.trainer.state_dict(), "buffer": self.buffer.state_dict()}
        if self.value is not None:
            state["value"] = self.value.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.trainer.load_state_dict(state)
        self.buffer.load_state_dict(state["buffer"])
        if self.value is not None:
            self.value.load_state_dict(state["value"])
