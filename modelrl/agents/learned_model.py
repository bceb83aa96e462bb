"""The learned-model settings that agents training a `DynamicsModel` beside their learner share (MBPO,
deep Dyna-Q): one config mixin with its checks, and the trainer it builds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from modelrl.errors import ConfigError
from modelrl.models.dynamics import ModelSpec
from modelrl.models.training import ModelTrainer


@dataclass
class LearnedModelConfig:
    ensemble_size: int = 5  # members of the dynamics ensemble
    num_elites: int = 5  # members that imagine (best on held-out data)
    model_hidden_size: int = 200  # units per hidden layer of each member
    model_layers: int = 3  # hidden layers of each member
    model_activation: Literal["silu", "relu", "leaky_relu", "tanh"] = "silu"  # members' hidden activation
    model_lr: float = 1e-3  # the model's Adam learning rate
    model_weight_decay: float = 5e-5  # the model's L2 weight decay
    model_batch_size: int = 256  # model training batch size
    model_holdout_ratio: float = 0.2  # share of the data held out to pick elites and stop early
    model_patience: int = 5  # epochs without held-out improvement before a refit stops
    model_max_epochs: int = 20  # epochs per refit at most

    def validate_model(self) -> None:
        if not 1 <= self.num_elites <= self.ensemble_size:
            raise ConfigError(f"num_elites must be in [1, ensemble_size={self.ensemble_size}], got "
                              f"{self.num_elites}")
        for name in ("model_hidden_size", "model_batch_size", "model_patience", "model_max_epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.model_holdout_ratio < 1:
            raise ConfigError(f"model_holdout_ratio must be in [0, 1), got {self.model_holdout_ratio}")

    def model_trainer(self, obs_dim: int, action_dim: int, device: torch.device, seed: int,
                      **spec) -> ModelTrainer:
        """A probabilistic ensemble learning reward (and whatever `spec` adds) with its trainer."""
        spec = ModelSpec(obs_dim=obs_dim, action_dim=action_dim, ensemble_size=self.ensemble_size,
                         num_elites=self.num_elites, hidden_size=self.model_hidden_size,
                         num_layers=self.model_layers, probabilistic=True, learn_reward=True,
                         activation=self.model_activation, **spec)
        return ModelTrainer(spec, device, seed=seed, lr=self.model_lr, weight_decay=self.model_weight_decay,
                            batch_size=self.model_batch_size, max_epochs=self.model_max_epochs,
                            holdout_ratio=self.model_holdout_ratio, patience=self.model_patience)
