"""`planet`: PlaNet (Hafner et al. 2019, "Learning Latent Dynamics for Planning from Pixels").

The world model is the RSSM with Gaussian latents, trained on replayed sequences as Dreamer's is
(`modelrl.agents.latent`); there is no actor: at every step the cross-entropy method searches action
sequences in latent space, each scored by the rewards the model predicts along it from the current posterior
(one imagined rollout per candidate), and the first action of the final mean is executed, with Gaussian
exploration noise while training. The planner is `modelrl.planning`'s receding-horizon MPC.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from modelrl.agents.latent import LatentModelAgent, LatentModelConfig
from modelrl.config import check_range
from modelrl.planning.mpc import MPC


@dataclass
class PlaNetConfig(LatentModelConfig):
    """Defaults: PlaNet (Hafner et al. 2019, section 5 and appendix A); the world model keys are shared with
    `dreamer`. One addition: a continue head discounts the rewards of envs that terminate."""

    size: str = "planet"  # deterministic 200, stochastic 30, hidden 200
    latent: str = "gaussian"
    reward_head: str = "gaussian"  # PlaNet's unit-variance Gaussian reward
    batch_size: int = 50
    batch_length: int = 50
    # PlaNet trains 100 batches of 50 x 50 per collected episode; at 500 steps an episode (DMC, action
    # repeat 2) that is 500 replayed steps per env step
    train_ratio: float = 500.0
    learning_starts: int = 2500  # 5 random seed episodes of 500 steps
    model_lr: float = 1e-3
    kl_free: float = 3.0  # free nats
    # the plain KL(posterior || prior), its gradient reaching both sides
    kl_dynamics: float = 1.0
    kl_representation: float = 1.0
    horizon: int = 12  # planned steps
    iterations: int = 10  # CEM refits per real step
    population: int = 1000  # candidate sequences per iteration
    elite_ratio: float = 0.1  # 100 of 1,000
    alpha: float = 0.0  # share of the old mean and std kept at each refit (PlaNet: none)
    exploration_noise: float = 0.3  # std of the Gaussian noise added to training actions (unit box)

    def validate(self) -> None:
        super().validate()
        for name in ("horizon", "iterations", "population"):
            check_range(self, name, 1)
        check_range(self, "elite_ratio", 0, 1, low_open=True)
        check_range(self, "alpha", 0, 1, high_open=True)
        check_range(self, "exploration_noise", 0)


def planet_planner(config: PlaNetConfig, space: gym.Space, generator: torch.Generator | None = None,
                   device: str | torch.device = "cpu") -> MPC:
    """PlaNet's receding-horizon CEM over `space` (its oracle check plans the true simulator with it)."""
    cem = {"iterations": config.iterations, "population": config.population,
           "elite_ratio": config.elite_ratio, "alpha": config.alpha}
    return MPC(space, config.horizon, "cem", cem, generator=generator, device=device)


class PlaNet(LatentModelAgent):
    agent_id = "planet"
    config_class = PlaNetConfig
    metric_names = (*LatentModelAgent.model_metric_names, "planned_return")
    plans_every_step = True

    def __init__(self, env, config=None, seed: int = 0, env_kwargs: dict | None = None, num_envs: int = 1):
        super().__init__(env, config, seed, env_kwargs, num_envs)
        config = self.config
        # the planner searches the model's action space: the unit box, or action indices
        space = (gym.spaces.Discrete(self.action_dim) if self.discrete
                 else gym.spaces.Box(-1.0, 1.0, (self.action_dim,), np.float32))
        self.mpc = planet_planner(config, space, self.generator, self.device)
        self.planned_return = torch.zeros((), device=self.device)

    def on_reset(self, evaluation: bool) -> None:
        super().on_reset(evaluation)
        self.mpc.reset()

    def planned_returns(self, start: dict[str, torch.Tensor], sequences: torch.Tensor) -> torch.Tensor:
        """The predicted return of each of `N` action sequences `(N, H, ...)` from one latent state: one
        imagined rollout each, rewards weighted by the chance the episode is still going."""
        rssm, model = self.model.rssm, self.model
        n = len(sequences)
        state = {key: start[key].expand(n, *start[key].shape[1:]) for key in ("deter", "stoch")}
        actions = (F.one_hot(sequences.long(), self.action_dim).float() if self.discrete else sequences)
        total, alive = torch.zeros(n, device=self.device), torch.ones(n, device=self.device)
        for t in range(actions.shape[1]):
            state = rssm.imagine_step(state, actions[:, t], self.generator)
            features = rssm.features(state)
            total = total + alive * model.reward(features)
            alive = alive * model.continues(features)
        return total

    def decide(self, posterior: dict[str, torch.Tensor], deterministic: bool) -> torch.Tensor:
        result = self.mpc.plan(lambda sequences: self.planned_returns(posterior, sequences))
        self.planned_return = result.best_return
        first = result.actions[0]
        if self.discrete:
            return F.one_hot(first.long(), self.action_dim).float()[None]
        if not deterministic and self.config.exploration_noise > 0:
            noise = torch.randn(first.shape, device=self.device, generator=self.generator)
            first = first + self.config.exploration_noise * noise
        return first.clamp(-1, 1)[None]

    def learn_behaviour(self, batch: dict[str, torch.Tensor], posteriors: dict[str, torch.Tensor]) -> dict:
        return {}  # the planner needs nothing beyond the model

    def metrics(self) -> dict[str, float]:
        return {**super().metrics(), "planned_return": float(self.planned_return)}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "mpc": self.mpc.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.mpc.load_state_dict(state["mpc"])
