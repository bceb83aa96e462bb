"""Receding-horizon model predictive control: plan a sequence, execute its first action, replan.

`MPC` owns the search distribution between real steps (the warm start: last plan shifted by one step) and
the elites an optimiser returns (iCEM's), carried over shifted; `reset()` forgets both at an episode's start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from modelrl.errors import IncompatibleEnvError
from modelrl.planning.optimizers import OPTIMIZERS, PlanResult
from modelrl.planning.sequences import ActionSequence, CategoricalSequence, GaussianSequence


class MPC:
    def __init__(self, action_space: gym.Space, horizon: int, optimizer: str = "cem",
                 optimizer_kwargs: dict[str, Any] | None = None, *, generator: torch.Generator | None = None,
                 device: str | torch.device = "cpu", std_scale: float = 0.25):
        """`std_scale`: a Box plan's initial std, as a share of the bounds' width."""
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; choose from {sorted(OPTIMIZERS)}")
        self.device = torch.device(device)
        if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
            low = torch.as_tensor(action_space.low, dtype=torch.float32, device=self.device)
            high = torch.as_tensor(action_space.high, dtype=torch.float32, device=self.device)
            self.initial: ActionSequence = GaussianSequence.initial(horizon, low, high, std_scale)
        elif isinstance(action_space, gym.spaces.Discrete):
            self.initial = CategoricalSequence.initial(horizon, int(action_space.n), self.device)
        else:
            raise IncompatibleEnvError(f"MPC plans over 1-D Box or Discrete actions, not {action_space}")
        self.action_space, self.horizon = action_space, horizon
        self.optimizer, self.optimizer_kwargs = optimizer, dict(optimizer_kwargs or {})
        self.generator = generator
        self.last: PlanResult | None = None
        self.distribution, self.carried_elites = self.initial, None

    def reset(self) -> None:
        self.distribution, self.carried_elites, self.last = self.initial, None, None

    def plan(self, objective: Callable[[torch.Tensor], torch.Tensor],
             prior: torch.Tensor | None = None) -> PlanResult:
        """`prior`: a policy's proposed sequences, mixed into the population (see `optimizers`)."""
        kwargs = dict(self.optimizer_kwargs)
        if prior is not None:
            kwargs["prior"] = prior
        if self.carried_elites is not None:  # only optimisers that return elites (iCEM) get them back
            kwargs["carried_elites"] = self.carried_elites
        result = OPTIMIZERS[self.optimizer](objective, self.distribution, self.generator, **kwargs)
        self.last = result
        self.distribution = result.distribution.shift(self.initial)
        if result.elites is not None:  # shifted by one step, a fresh last step appended, drawn as iCEM draws
            tail = self.initial.sample(len(result.elites), self.generator, bounds="clip")[:, -1:]
            self.carried_elites = torch.cat([result.elites[:, 1:], tail], 1)
        return result

    def act(self, objective: Callable[[torch.Tensor], torch.Tensor],
            prior: torch.Tensor | None = None) -> np.ndarray | int:
        """Plan and return the first action, as the env takes it."""
        first = self.plan(objective, prior).actions[0]
        if isinstance(self.initial, CategoricalSequence):
            return int(first)
        return first.cpu().numpy().astype(self.action_space.dtype)

    def state_dict(self) -> dict[str, Any]:
        """The search distribution as its tensors by field name (a checkpoint holds no Python objects)."""
        distribution = {field.name: getattr(self.distribution, field.name)
                        for field in fields(self.distribution)}
        return {"distribution": distribution, "carried_elites": self.carried_elites}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Checkpoints load onto the CPU; the plan moves to this planner's device."""
        distribution, elites = state["distribution"], state["carried_elites"]
        if not isinstance(distribution, dict):  # a format-1 checkpoint held the distribution object itself
            distribution = {field.name: getattr(distribution, field.name) for field in fields(distribution)}
        self.distribution = type(self.initial)(**{name: value.to(self.device)
                                                  for name, value in distribution.items()})
        self.carried_elites = None if elites is None else elites.to(self.device)
