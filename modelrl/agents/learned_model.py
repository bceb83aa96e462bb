"""The learned-model settings of every agent that trains a `DynamicsModel` (PETS, MBPO, deep Dyna-Q): one
config mixin, so the same key means the same thing in each (each agent sets its paper's defaults), with its
checks and the trainer it builds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from modelrl.config import check_range
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
    model_probabilistic: bool = True  # members predict a Gaussian (NLL loss) rather than a mean (MSE)

    def validate_model(self) -> None:
        if not 1 <= self.num_elites <= self.ensemble_size:
            raise ConfigError(f"num_elites must be in [1, ensemble_size={self.ensemble_size}], got "
                              f"{self.num_elites}")
        for name in ("model_hidden_size", "model_batch_size", "model_patience", "model_max_epochs"):
            check_range(self, name, 1)
        check_range(self, "model_layers", 0)  # 0: a linear model
        check_range(self, "model_lr", 0, low_open=True)
        check_range(self, "model_weight_decay", 0)
        check_range(self, "model_holdout_ratio", 0, 1, high_open=True)

    def model_trainer(self, obs_dim: int, action_dim: int, device: torch.device, seed: int,
                      **spec) -> ModelTrainer:
        """An ensemble learning state deltas and, unless `spec` says otherwise, reward, with its trainer."""
        spec = ModelSpec(obs_dim=obs_dim, action_dim=action_dim, ensemble_size=self.ensemble_size,
                         num_elites=self.num_elites, hidden_size=self.model_hidden_size,
                         num_layers=self.model_layers, probabilistic=self.model_probabilistic,
                         activation=self.model_activation, **{"learn_reward": True, **spec})
        return ModelTrainer(spec, device, seed=seed, lr=self.model_lr, weight_decay=self.model_weight_decay,
                            batch_size=self.model_batch_size, max_epochs=self.model_max_epochs,
                            holdout_ratio=self.model_holdout_ratio, patience=self.model_patience)
