"""A learned terminal value for planners: V(s) fitted by TD(0) on real transitions, with a Polyak-averaged
target network, and added at the planning horizon (the lecture's "Planning V2"; LOOP, Sikchi et al. 2021).

A short horizon sees only the next few rewards; `V(s_H)` stands in for everything after it, so a planner
with a value can plan short and cheap. The value learned from replayed real steps is that of the policy
that acted (the planner itself, mixed over its history): the bootstrap target is
`r + gamma (1 - terminated) V_target(s')`, never bootstrapping through a termination, always through a
time limit.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F

from modelrl.models.mlp import mlp


class TerminalValue:
    """`value(states (N, D)) -> (N,)`, learned by `update(batch)` from dicts of tensors with `obs, reward,
    next_obs, terminated` (a `ReplayBuffer.sample_tensors` batch)."""

    def __init__(self, obs_dim: int, *, gamma: float, hidden_size: int = 256, num_layers: int = 2,
                 lr: float = 3e-4, tau: float = 0.005, device: str | torch.device = "cpu"):
        if not 0 <= gamma < 1:
            raise ValueError(f"a learned value needs a discount in [0, 1), got {gamma}")
        self.gamma, self.tau = gamma, tau
        self.net = mlp(obs_dim, 1, hidden_size, num_layers).to(device)
        self.target = copy.deepcopy(self.net).requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr)
        self.updates = 0
        self.loss = torch.zeros(())

    @torch.no_grad()
    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        return self.net(states).squeeze(-1)

    def update(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            next_value = self.target(batch["next_obs"]).squeeze(-1)
            target = batch["reward"] + self.gamma * (~batch["terminated"]).float() * next_value
        loss = F.mse_loss(self.net(batch["obs"]).squeeze(-1), target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            for target_parameter, parameter in zip(self.target.parameters(), self.net.parameters(),
                                                   strict=True):
                target_parameter.lerp_(parameter, self.tau)
        self.updates += 1
        self.loss = loss.detach()
        return self.loss

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "target": self.target.state_dict(),
                "optimizer": self.optimizer.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = state["updates"]

    def parameters_finite(self) -> bool:
        return all(torch.isfinite(p).all() for p in self.net.parameters())


class CriticValue:
    """LOOP's terminal value: `V(s) = min_i Q_i(s, mode of pi(s))` of a SAC learner (`SACLearner`'s `actor`
    and twin `critic`, unit actions). It learns nothing itself: the learner's own updates train it,
    off-policy, so it values the policy being improved rather than the planner's past behaviour."""

    def __init__(self, learner):
        self.learner = learner

    @torch.no_grad()
    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        return self.learner.critic(states, self.learner.actor.mode(states)).min(0).values
