"""`deep-dyna-q`: DQN plus a learned model of dynamics, reward and termination that supplies imagined
experience (Dyna, Sutton 1990; deep Dyna-Q, Peng et al. 2018).

At every burst of DQN updates the model (an ensemble, refitted every `model_train_every` steps on all real
transitions) imagines `planning_steps` one-step transitions per real step since the last burst, from real
states and uniformly random actions; every real update is then followed by `planning_steps` updates on
imagined batches, the deep counterpart of tabular Dyna-Q's n planning updates per real step. With
`planning_steps = 0` it is exactly `dqn`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from modelrl.agents.dqn import DQN, DQNConfig
from modelrl.agents.learned_model import LearnedModelConfig
from modelrl.buffers import ReplayBuffer
from modelrl.device import restore_generator
from modelrl.errors import ConfigError
from modelrl.models.imagination import branched_rollouts
from modelrl.models.training import ModelTrainer
from modelrl.seeding import torch_stream


@dataclass
class DeepDynaQConfig(DQNConfig, LearnedModelConfig):
    planning_steps: int = 10  # n: imagined transitions (and updates per real update) per real step
    model_train_every: int = 1024  # real steps between refits
    imagined_buffer_size: int = 100_000  # imagined transitions kept for replay

    def validate(self) -> None:
        super().validate()
        if self.planning_steps < 0:
            raise ConfigError(f"planning_steps must be >= 0, got {self.planning_steps}")
        self.validate_model()
        for name in ("model_train_every", "imagined_buffer_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")


class DeepDynaQ(DQN):
    agent_id = "deep-dyna-q"
    config_class = DeepDynaQConfig
    metric_names = (*DQN.metric_names, *ModelTrainer.metric_names, "imagine_seconds")

    def __init__(self, env, config=None, seed: int = 0, env_kwargs: dict | None = None, num_envs: int = 1):
        super().__init__(env, config, seed, env_kwargs, num_envs)
        config = self.config
        self.trainer = config.model_trainer(self.env.observation_space.shape[0], self.num_actions,
                                            self.device, self.seed, discrete_actions=True,
                                            learn_termination=True)
        self.model = self.trainer.model
        self.generator = torch_stream(self.seed, "imagination", self.device)  # model fits and imagined steps
        self.imagined = ReplayBuffer(config.imagined_buffer_size, self.env.observation_space.shape, (),
                                     action_dtype=np.int64, name="imagined_buffer_size")
        self._fit_step: int | None = None
        self.imagine_seconds = 0.0

    def train_burst(self) -> None:
        n = self.config.planning_steps
        if n == 0:
            super().train_burst()
            return
        if self._fit_step is None or self.env_steps - self._fit_step >= self.config.model_train_every:
            self.trainer.fit(self.buffer, self.generator)
            self._fit_step = self.env_steps
        self.imagine(n * self.config.train_freq)
        config = self.config
        for _ in range(config.gradient_steps):
            self._loss = self.learner.update(
                self.buffer.sample_tensors(config.batch_size, self.rng, self.device))
            for _ in range(n):
                self.learner.update(self.imagined.sample_tensors(config.batch_size, self.rng, self.device))

    def imagine(self, count: int) -> None:
        started = time.perf_counter()
        start = self.buffer.sample_tensors(count, self.rng, self.device)["obs"]

        def random_actions(obs):
            return torch.randint(self.num_actions, (len(obs),), generator=self.generator, device=obs.device)

        data = branched_rollouts(self.model, random_actions, start, 1, self.generator)
        data = {key: value.cpu().numpy() for key, value in data.items()}
        self.imagined.add_batch(truncated=np.zeros(len(data["obs"]), bool), **data)
        self.imagine_seconds += time.perf_counter() - started

    def metrics(self) -> dict[str, float]:
        return {**super().metrics(), **self.trainer.metrics(),
                "imagine_seconds": round(self.imagine_seconds, 3)}

    def check_finite(self) -> bool:
        return super().check_finite() and self.trainer.parameters_finite()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), **self.trainer.state_dict(), "imagined": self.imagined.state_dict(),
                "generator": self.generator.get_state(), "fit_step": self._fit_step,
                "imagine_seconds": self.imagine_seconds}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.trainer.load_state_dict(state)
        self.imagined.load_state_dict(state["imagined"])
        restore_generator(self.generator, state["generator"])
        self._fit_step, self.imagine_seconds = state["fit_step"], state["imagine_seconds"]
