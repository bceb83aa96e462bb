"""`pets`: probabilistic ensembles with trajectory sampling (Chua et al. 2018).

Random actions for the first `random_steps`; after that, the ensemble is refitted on every real transition
so far (at each episode's end, or every `train_every` steps) and actions come from MPC over particles
propagated through it. Defaults are mbrl-lib's PETS tutorial on the continuous cart-pole.
`terminal_value=True` also learns V(s) by TD from the real steps (`modelrl.planning.value`) and adds
gamma^H V(s_H) to every planned return, so a short horizon sees past its end; `policy_prior=True` learns a
SAC policy from them, whose own sequences through the ensemble join every population (LOOP).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import gymnasium as gym

from modelrl.agents.learned_model import LearnedModelConfig
from modelrl.agents.mpc import MPCAgent
from modelrl.config import check_range
from modelrl.models.training import ModelTrainer
from modelrl.planning.config import PlannerConfig
from modelrl.planning.trajectory import ModelObjective


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


class PETS(MPCAgent):
    agent_id = "pets"
    config_class = PETSConfig
    metric_names = (*MPCAgent.metric_names, *ModelTrainer.metric_names)

    def build_objective(self) -> ModelObjective:
        config, env = self.config, self.env
        discrete = isinstance(env.action_space, gym.spaces.Discrete)
        action_dim = int(env.action_space.n) if discrete else int(env.action_space.shape[0])
        self.trainer = config.model_trainer(int(env.observation_space.shape[0]), action_dim, self.device,
                                            self.seed, discrete_actions=discrete,
                                            learn_reward=config.learned_reward,
                                            learn_termination=config.learned_reward)
        self.model, self.spec = self.trainer.model, self.trainer.model.spec
        self.buffer = self.real_steps_buffer()
        reward = None if config.learned_reward else self.known_reward()
        termination = None if config.learned_reward else self.known.termination
        return ModelObjective(self.model, reward, termination, particles=config.particles,
                              propagation=config.propagation, gamma=config.gamma, generator=self.generator,
                              terminal_value=self.value, precision=self.planning_dtype())

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
        if self.trainer.fits > 0:
            self.update_learners()

    def first_learning_step(self) -> tuple[int, str]:
        return self.config.random_steps, f"random_steps={self.config.random_steps}"

    def fit_model(self):
        return self.trainer.fit(self.buffer, self.generator)

    def metrics(self) -> dict[str, float]:
        return {**super().metrics(), **self.trainer.metrics()}

    def check_finite(self) -> bool:
        return self.trainer.parameters_finite() and super().check_finite()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), **self.trainer.state_dict()}  # the buffer: MPCAgent's

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.trainer.load_state_dict(state)
