"""Planner settings: which optimiser, its population and iterations, the horizon, the particles.

One dataclass for every agent that plans (`mpc`, `pets`, and later value-guided planners), whose fields are
its config keys; `optimizer_kwargs` is the one place that maps them onto an optimiser's arguments.
Defaults are mbrl-lib's PETS cart-pole tutorial (Chua et al. 2018's CEM).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import torch

from modelrl.config import check_range
from modelrl.errors import ConfigError
from modelrl.planning.mpc import MPC
from modelrl.planning.value import TerminalValue


@dataclass
class PlannerConfig:
    """Planning settings; defaults are mbrl-lib's PETS cart-pole tutorial (Chua et al. 2018's CEM)."""

    # the planner: CEM, iCEM, MPPI or random shooting
    optimizer: Literal["cem", "icem", "mppi", "random"] = "cem"
    horizon: int = 15  # planned steps ahead (H)
    population: int = 500  # iCEM: the first iteration's population
    iterations: int = 5  # refits of the sampling distribution per planned step (random shooting: one draw)
    elite_ratio: float = 0.1  # CEM
    alpha: float = 0.1  # share of the old mean and variance kept at each refit (CEM, iCEM; MPPI has none)
    temperature: float = 1.0  # MPPI, in return units
    icem_elites: int = 10  # iCEM (Pinneri et al. 2020): elites, population decay, kept share, noise colour
    icem_decay: float = 1.25  # iCEM: population shrinks by this factor each iteration
    icem_keep_elites: float = 0.3  # iCEM: share of the last iteration's elites carried into the next
    noise_beta: float = 2.0  # iCEM: colour of the sampled noise (0 white, 2 pink-red; smoother actions)
    particles: int = 20  # model rollouts per candidate sequence (PETS trajectory sampling)
    # particles' ensemble members: TS-inf keeps one per particle, TS1 redraws each step, mean averages
    propagation: Literal["ts-inf", "ts1", "mean"] = "ts-inf"
    gamma: float = 1.0  # PETS sums undiscounted rewards over the horizon
    planning_reward: Literal["env", "shaped"] = "env"  # shaped: the env's labelled dense planning reward
    # bfloat16: a learned model's matmuls autocast to bfloat16 while planning (its training stays float32);
    # about 2x faster planning on CPUs with AMX or AVX512-BF16 and on GPUs
    planning_precision: Literal["float32", "bfloat16"] = "float32"
    # learn V(s) by TD(0) from real steps and add gamma^H V(s_H) to every planned return (needs gamma < 1)
    terminal_value: bool = False
    value_hidden_size: int = 256  # units of the value network's two hidden layers
    value_lr: float = 3e-4  # Adam learning rate of the value
    value_batch_size: int = 256  # replayed transitions per value update
    # value updates per real step (pets: from its first model fit on); TD(0) needs many for the value to
    # reach the task's scale early: on Pendulum, PETS H=5 at 1,000 steps scored -775 with 1, -151 with 30
    value_updates_per_step: int = 30
    value_tau: float = 0.01  # Polyak step of the value's target network
    # where V(s_H) comes from: "td", V learned by TD(0) as above (the value of the planner that acted);
    # "critic", the policy prior's SAC critic, min of its twin Q(s, pi's mean action) (LOOP; needs
    # policy_prior): learned off-policy, so it values the improving policy rather than the past behaviour
    value_source: Literal["td", "critic"] = "td"
    # learn a SAC policy from the real steps and let it propose a share of every population: its own action
    # sequences rolled through the planner's model (LOOP, Sikchi et al. 2021; TD-MPC2's 24 of 512)
    policy_prior: bool = False
    prior_share: float = 0.05  # share of each population the policy proposes (at least one sequence)
    prior_updates_per_step: int = 1  # the policy prior's SAC updates per real step

    def validate(self) -> None:
        for name in ("horizon", "population", "iterations", "particles", "icem_elites"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.elite_ratio <= 1:
            raise ConfigError(f"elite_ratio must be in (0, 1], got {self.elite_ratio}")
        if not 0 <= self.alpha < 1:
            raise ConfigError(f"alpha must be in [0, 1), got {self.alpha}")
        check_range(self, "temperature", 0, low_open=True)
        check_range(self, "icem_decay", 1)
        check_range(self, "icem_keep_elites", 0, 1)
        if not 0 < self.gamma <= 1:
            raise ConfigError(f"gamma must be in (0, 1], got {self.gamma}")
        for name in ("value_hidden_size", "value_batch_size"):
            check_range(self, name, 1)
        check_range(self, "value_updates_per_step", 0)
        check_range(self, "prior_updates_per_step", 0)
        check_range(self, "value_lr", 0, low_open=True)
        check_range(self, "value_tau", 0, 1, low_open=True)
        check_range(self, "prior_share", 0, 1, low_open=True, high_open=True)
        if self.policy_prior and self.prior_count() >= self.population:
            raise ConfigError(f"prior_share={self.prior_share} of a population of {self.population} leaves "
                              "no room for the planner's own samples")
        if self.value_source == "critic" and not (self.terminal_value and self.policy_prior):
            raise ConfigError("value_source='critic' takes the terminal value from the policy prior's "
                              "critic: set terminal_value=True and policy_prior=True")
        if self.terminal_value and self.gamma >= 1:
            raise ConfigError("terminal_value needs a discount below 1 (the value of an endless task is "
                              f"unbounded): set gamma, e.g. gamma=0.99; got gamma={self.gamma}")

    def optimizer_kwargs(self) -> dict[str, Any]:
        """The settings `self.optimizer`'s function takes (`modelrl.planning.optimizers`), by its names."""
        if self.optimizer == "random":
            return {"population": self.population}
        if self.optimizer == "cem":
            return {"iterations": self.iterations, "population": self.population,
                    "elite_ratio": self.elite_ratio, "alpha": self.alpha}
        if self.optimizer == "mppi":
            return {"iterations": self.iterations, "population": self.population,
                    "temperature": self.temperature}
        return {"iterations": self.iterations, "population": self.population, "num_elites": self.icem_elites,
                "decay": self.icem_decay, "keep_elites": self.icem_keep_elites, "noise_beta": self.noise_beta,
                "alpha": self.alpha}

    def prior_count(self) -> int:
        """Sequences the policy prior proposes to each population."""
        return max(1, round(self.prior_share * self.population))

    def make_value(self, obs_dim: int, device: str | torch.device = "cpu") -> TerminalValue | None:
        """The TD-learned terminal value these settings ask for (None without `terminal_value`, or when
        the value is the policy prior's critic: its agent builds that)."""
        if not self.terminal_value or self.value_source != "td":
            return None
        return TerminalValue(obs_dim, gamma=self.gamma, hidden_size=self.value_hidden_size, lr=self.value_lr,
                             tau=self.value_tau, device=device)

    def make_mpc(self, action_space: gym.Space, *, generator: torch.Generator | None = None,
                 device: str | torch.device = "cpu") -> MPC:
        """A receding-horizon controller planning with these settings."""
        return MPC(action_space, self.horizon, self.optimizer, self.optimizer_kwargs(), generator=generator,
                   device=device)
