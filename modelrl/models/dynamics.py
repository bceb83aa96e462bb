"""A learned dynamics model p(s', r, done | s, a): an ensemble over normalised inputs that predicts the
state delta s' - s, and optionally the reward and a termination logit.

Shapes put the ensemble first: `(E, B, D)`. Members in `elites` (the best on held-out data after the last
fit) are the ones planners use.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from modelrl.checkpoint import load_checkpoint, save_checkpoint
from modelrl.errors import CheckpointError
from modelrl.models.ensemble import EnsembleMLP


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a `DynamicsModel` (saved beside its weights)."""

    obs_dim: int
    action_dim: int  # for discrete actions: the number of actions (they are one-hot encoded)
    discrete_actions: bool = False
    ensemble_size: int = 5
    num_elites: int = 5
    hidden_size: int = 200
    num_layers: int = 3
    probabilistic: bool = True
    learn_reward: bool = False
    learn_termination: bool = False
    activation: str = "silu"


@dataclass
class Prediction:
    """Model outputs in env units, each `(E, B, ...)`: means, variances (None if deterministic),
    reward (None unless learned) and termination probability (None unless learned)."""

    next_obs: torch.Tensor
    next_obs_var: torch.Tensor | None
    reward: torch.Tensor | None
    reward_var: torch.Tensor | None
    terminated: torch.Tensor | None


def _zero_termination_weight_if_missing(state, prefix, *args) -> None:
    """Checkpoints from before the calibrated termination: their threshold was the weighted logit at 0."""
    state.setdefault(prefix + "termination_log_weight", torch.zeros(()))


class DynamicsModel(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        if not 1 <= spec.num_elites <= spec.ensemble_size:
            raise ValueError(f"num_elites must be in [1, {spec.ensemble_size}], got {spec.num_elites}")
        self.spec = spec
        self.obs_dim = spec.obs_dim
        self.in_dim = spec.obs_dim + spec.action_dim
        self.gaussian_dim = spec.obs_dim + int(spec.learn_reward)  # delta and reward: MSE or Gaussian NLL
        out_dim = self.gaussian_dim + int(spec.learn_termination)  # plus a termination logit
        self.net = EnsembleMLP(
            self.in_dim, out_dim, spec.ensemble_size, spec.hidden_size, spec.num_layers,
            spec.probabilistic, spec.activation,
        )
        self.register_buffer("input_mean", torch.zeros(self.in_dim))
        self.register_buffer("input_std", torch.ones(self.in_dim))
        self.register_buffer("target_mean", torch.zeros(self.gaussian_dim))
        self.register_buffer("target_std", torch.ones(self.gaussian_dim))
        self.register_buffer("elites", torch.arange(spec.num_elites))
        # log of the weight `fit` gave terminal rows: the logit it trains is the calibrated one plus this
        self.register_buffer("termination_log_weight", torch.zeros(()))
        self._register_load_state_dict_pre_hook(_zero_termination_weight_if_missing)

    @property
    def ensemble_size(self) -> int:
        return self.spec.ensemble_size

    @property
    def device(self) -> torch.device:
        return self.input_mean.device

    # --- data to network units ----------------------------------------------------------------------
    def encode_action(self, action: torch.Tensor) -> torch.Tensor:
        if self.spec.discrete_actions:
            return F.one_hot(action.long(), self.spec.action_dim).to(self.input_mean.dtype)
        return action

    def inputs(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return (torch.cat([obs, self.encode_action(action)], -1) - self.input_mean) / self.input_std

    def targets(self, obs, next_obs, reward=None) -> torch.Tensor:
        parts = [next_obs - obs] + ([reward.unsqueeze(-1)] if self.spec.learn_reward else [])
        return (torch.cat(parts, -1) - self.target_mean) / self.target_std

    def set_normalizer(self, obs, action, next_obs, reward=None) -> None:
        """Standardise inputs and targets by the statistics of the training data."""
        inputs = torch.cat([obs, self.encode_action(action)], -1)
        targets = self.targets(obs, next_obs, reward) * self.target_std + self.target_mean
        for data, mean, std in ((inputs, self.input_mean, self.input_std), (targets, self.target_mean,
                                                                              self.target_std)):
            mean.copy_(data.mean(0))
            spread = data.std(0) if len(data) > 1 else torch.zeros_like(std)
            # A dimension constant in the data (an Ant's contact forces before any contact) stays unscaled:
            # dividing by a tiny std would blow up the first value that differs.
            std.copy_(torch.where(spread < 1e-6, torch.ones_like(spread), spread))
        if self.spec.discrete_actions:  # one-hot columns stay as they are
            self.input_mean[self.obs_dim :] = 0.0
            self.input_std[self.obs_dim :] = 1.0

    # --- prediction -----------------------------------------------------------------------------------
    def forward(self, inputs: torch.Tensor, members: torch.Tensor | None = None):
        """Network outputs in normalised units: (mean, log-variance or None); `inputs` is `(E, B, in)`."""
        return self.net(inputs, members)

    def predict(self, obs: torch.Tensor, action: torch.Tensor,
                members: torch.Tensor | None = None) -> Prediction:
        """Predictions of every member (or of `members`); `(B, ...)` inputs go to all of them."""
        if obs.dim() == 2:
            count = self.ensemble_size if members is None else len(members)
            obs, action = obs.expand(count, *obs.shape), action.expand(count, *action.shape)
        mean, logvar = self(self.inputs(obs, action), members)
        g = self.gaussian_dim
        out = mean[..., :g] * self.target_std + self.target_mean
        var = None if logvar is None else logvar[..., :g].exp() * self.target_std**2
        d = self.obs_dim
        return Prediction(
            next_obs=obs + out[..., :d],
            next_obs_var=None if var is None else var[..., :d],
            reward=out[..., d] if self.spec.learn_reward else None,
            reward_var=None if var is None or not self.spec.learn_reward else var[..., d],
            terminated=torch.sigmoid(self.termination_logit(mean)) if self.spec.learn_termination else None,
        )

    def sample(
        self, obs: torch.Tensor, action: torch.Tensor, generator: torch.Generator | None = None,
        members: torch.Tensor | None = None, deterministic: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """One imagined step per row: (next_obs, reward or None, terminated (bool) or None).

        Probabilistic members draw from their Gaussian unless `deterministic`; termination is drawn from
        its predicted probability (any member), or is that probability above one half if `deterministic`.
        """
        mean, logvar = self(self.inputs(obs, action), members)
        g = self.gaussian_dim
        out = mean[..., :g]
        if logvar is not None and not deterministic:
            noise = torch.randn(out.shape, generator=generator, device=out.device, dtype=out.dtype)
            out = out + noise * (0.5 * logvar[..., :g]).exp()
        out = out * self.target_std + self.target_mean
        d = self.obs_dim
        reward = out[..., d] if self.spec.learn_reward else None
        terminated = None
        if self.spec.learn_termination:
            logit = self.termination_logit(mean)
            if deterministic:
                terminated = logit > 0
            else:
                uniform = torch.rand(logit.shape, generator=generator, device=logit.device, dtype=logit.dtype)
                terminated = uniform < torch.sigmoid(logit)
        return obs + out[..., :d], reward, terminated

    def termination_logit(self, outputs: torch.Tensor) -> torch.Tensor:
        """The calibrated termination logit from the network's outputs."""
        return outputs[..., self.gaussian_dim] - self.termination_log_weight

    # --- files ----------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        return save_checkpoint(path, {"kind": "dynamics-model", "spec": asdict(self.spec),
                                      "state": {k: v.cpu() for k, v in self.state_dict().items()}})

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> DynamicsModel:
        payload = load_checkpoint(path)
        if payload.get("kind") == "dynamics-model":
            spec, state = payload["spec"], payload["state"]
        elif isinstance(payload.get("agent"), dict) and "model_spec" in payload["agent"]:
            spec, state = payload["agent"]["model_spec"], payload["agent"]["model"]  # an agent's checkpoint
        else:
            raise CheckpointError(f"{path} holds no dynamics model")
        model = cls(ModelSpec(**spec))
        model.load_state_dict(state)
        return model.to(device)
