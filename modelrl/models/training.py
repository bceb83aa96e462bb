"""Fitting a `DynamicsModel`: bootstrap resamples per member, a held-out split, early stopping, elites.

One gradient step trains every member at once on its own minibatch: indices are drawn as an `(E, batch)`
tensor, so the gather, the forward pass and the loss are all batched over the ensemble.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from modelrl.models.dynamics import DynamicsModel, ModelSpec
from modelrl.seeding import seeded_weights

BOUND_PENALTY = 0.01  # PETS's weight on the soft log-variance bounds


@dataclass
class Transitions:
    """A batch of real transitions as tensors: obs (N, d), action (N, a) or (N,), reward (N,), ..."""

    obs: torch.Tensor
    action: torch.Tensor
    next_obs: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor

    @classmethod
    def from_buffer(cls, buffer, device) -> Transitions:
        """Everything in a `ReplayBuffer`, on `device`."""
        data = buffer.tensors(device)
        return cls(data["obs"], data["action"], data["next_obs"], data["reward"], data["terminated"])

    def __len__(self) -> int:
        return len(self.obs)

    def take(self, index: torch.Tensor) -> Transitions:
        return Transitions(*(x[index] for x in (self.obs, self.action, self.next_obs, self.reward,
                                                 self.terminated)))


@dataclass
class FitResult:
    epochs: int
    updates: int
    train_loss: float
    holdout_mse: list[float] = field(default_factory=list)  # per member, normalised units; [] if no split
    elites: list[int] = field(default_factory=list)


def model_loss(model: DynamicsModel, inputs, targets, terminated=None, termination_weight=None):
    """Summed over members, averaged within each: Gaussian NLL (or MSE), plus BCE for termination with
    terminal rows weighted by `termination_weight` (rare terminations would otherwise be learned slowly; the
    model takes the weight's log off its logits, so its probabilities stay calibrated)."""
    mean, logvar = model(inputs)
    g = model.gaussian_dim
    error = (mean[..., :g] - targets) ** 2
    if logvar is None:
        loss = error.mean((1, 2)).sum()
    else:
        lv = logvar[..., :g]
        loss = (error * torch.exp(-lv) + lv).mean((1, 2)).sum() + BOUND_PENALTY * model.net.bound_penalty(g)
    if model.spec.learn_termination:
        loss = loss + F.binary_cross_entropy_with_logits(mean[..., g], terminated, reduction="none",
                                                         pos_weight=termination_weight).mean(1).sum()
    return loss


@torch.no_grad()
def holdout_error(model: DynamicsModel, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Each member's mean squared error of its mean prediction, in normalised units: `(E,)`."""
    mean, _ = model(inputs.expand(model.ensemble_size, *inputs.shape))
    return ((mean[..., : model.gaussian_dim] - targets) ** 2).mean((1, 2))


def fit(
    model: DynamicsModel,
    data: Transitions,
    optimizer: torch.optim.Optimizer,
    *,
    generator: torch.Generator,
    batch_size: int = 32,
    max_epochs: int = 100,
    holdout_ratio: float = 0.05,
    max_holdout: int = 5000,
    patience: int = 5,
    min_improvement: float = 0.01,
    bootstrap: bool = True,
) -> FitResult:
    """Train until no member improves its held-out error by `min_improvement` (relative) for `patience`
    epochs, or `max_epochs`; then restore each member's best weights and pick the elites."""
    n = len(data)
    if n == 0:
        raise ValueError("cannot fit a dynamics model on no data")
    device = model.device
    order = torch.randperm(n, generator=generator, device=device)
    n_holdout = min(int(n * holdout_ratio), max_holdout, n - 1)
    train, holdout = data.take(order[n_holdout:]), data.take(order[:n_holdout])
    model.set_normalizer(train.obs, train.action, train.next_obs, train.reward)
    inputs = model.inputs(train.obs, train.action)
    targets = model.targets(train.obs, train.next_obs, train.reward)
    terminated = train.terminated.to(inputs.dtype)
    # Terminal rows weigh as much in all as the others, so a rare termination is learned as fast as the rest.
    positives = terminated.sum()
    termination_weight = ((len(terminated) - positives) / positives.clamp_min(1)).clamp(1, 1000)
    model.termination_log_weight.copy_(termination_weight.log())
    if n_holdout:
        holdout_inputs = model.inputs(holdout.obs, holdout.action)
        holdout_targets = model.targets(holdout.obs, holdout.next_obs, holdout.reward)

    E, n_train = model.ensemble_size, len(train)
    if bootstrap:
        members_data = torch.randint(n_train, (E, n_train), generator=generator, device=device)
    else:
        members_data = torch.arange(n_train, device=device).expand(E, n_train)
    member_params, shared_params = [], []
    for p in model.net.parameters():
        # Parameters all members share (the log-variance bounds) go back to the last epoch any member kept.
        (member_params if p.dim() == 3 and p.shape[0] == E else shared_params).append(p)
    best_params = [p.detach().clone() for p in member_params]
    best_shared = [p.detach().clone() for p in shared_params]
    best = holdout_error(model, holdout_inputs, holdout_targets) if n_holdout else None
    stale, updates, epoch, epoch_loss = 0, 0, 0, float("nan")
    for epoch in range(1, max_epochs + 1):
        shuffle = torch.rand(E, n_train, generator=generator, device=device).argsort(1)
        epoch_index = members_data.gather(1, shuffle)
        # One gather per epoch; minibatches are then views.
        epoch_inputs, epoch_targets = inputs[epoch_index], targets[epoch_index]
        epoch_terminated = terminated[epoch_index] if model.spec.learn_termination else None
        total = torch.zeros((), device=device)
        for start in range(0, n_train, batch_size):
            batch = slice(start, start + batch_size)
            loss = model_loss(model, epoch_inputs[:, batch], epoch_targets[:, batch],
                              None if epoch_terminated is None else epoch_terminated[:, batch],
                              termination_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach()
            updates += 1
        epoch_loss = float(total) / max(1, -(-n_train // batch_size)) / E
        if not n_holdout:
            continue
        error = holdout_error(model, holdout_inputs, holdout_targets)
        improved = (best - error) / best.abs().clamp_min(1e-12) > min_improvement
        if improved.any():
            best = torch.where(improved, error, best)
            with torch.no_grad():
                for saved, param in zip(best_params, member_params):
                    saved[improved] = param[improved]
                for saved, param in zip(best_shared, shared_params):
                    saved.copy_(param)
            stale = 0
        else:
            stale += 1
            if stale >= patience:
                break
    if n_holdout:
        with torch.no_grad():
            for saved, param in zip(best_params + best_shared, member_params + shared_params):
                param.copy_(saved)
        score = holdout_error(model, holdout_inputs, holdout_targets)
    else:
        with torch.no_grad():
            score = holdout_error(model, inputs, targets)
    model.elites.copy_(score.argsort()[: model.spec.num_elites].sort().values)
    return FitResult(epochs=epoch, updates=updates, train_loss=epoch_loss,
                     holdout_mse=score.tolist() if n_holdout else [], elites=model.elites.tolist())


class ModelTrainer:
    """A dynamics model with its optimiser and fit settings: refitted on a replay buffer, counted, timed
    and checkpointed whole (the keys `model_spec` and `model` let `DynamicsModel.load` read an agent's
    checkpoint)."""

    def __init__(self, spec: ModelSpec, device: torch.device, *, seed: int, lr: float, weight_decay: float,
                 batch_size: int, max_epochs: int, holdout_ratio: float, patience: int):
        with seeded_weights(seed, "model weights"):
            self.model = DynamicsModel(spec).to(device)
        # The fused Adam kernel runs all parameters in one pass (about a quarter off a small-batch epoch).
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr, weight_decay=weight_decay,
                                          fused=True)
        self.fit_kwargs = {"batch_size": batch_size, "max_epochs": max_epochs, "holdout_ratio": holdout_ratio,
                           "patience": patience}
        self.fits, self.fit_seconds, self.last_fit = 0, 0.0, None

    def fit(self, buffer, generator: torch.Generator) -> FitResult:
        """Refit on everything in `buffer`."""
        started = time.perf_counter()
        data = Transitions.from_buffer(buffer, self.model.device)
        self.last_fit = fit(self.model, data, self.optimizer, generator=generator, **self.fit_kwargs)
        self.fits += 1
        self.fit_seconds += time.perf_counter() - started
        return self.last_fit

    metric_names = ("model_fits", "fit_seconds", "model_loss", "model_epochs", "model_holdout_mse")

    def metrics(self) -> dict[str, float]:
        row = {"model_fits": self.fits, "fit_seconds": round(self.fit_seconds, 3)}
        if self.last_fit is not None:
            holdout = self.last_fit.holdout_mse
            row.update(model_loss=self.last_fit.train_loss, model_epochs=self.last_fit.epochs,
                       model_holdout_mse=float(np.mean(holdout)) if holdout else float("nan"))
        return row

    def parameters_finite(self) -> bool:
        return all(torch.isfinite(p).all() for p in self.model.parameters())

    def state_dict(self) -> dict[str, Any]:
        return {"model_spec": asdict(self.model.spec),
                "model": {k: v.cpu() for k, v in self.model.state_dict().items()},
                "model_optimizer": self.optimizer.state_dict(), "fits": self.fits,
                "fit_seconds": self.fit_seconds,
                "last_fit": None if self.last_fit is None else asdict(self.last_fit)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["model_optimizer"])
        self.fits, self.fit_seconds, last_fit = state["fits"], state["fit_seconds"], state["last_fit"]
        # a format-1 checkpoint held the FitResult itself
        self.last_fit = FitResult(**last_fit) if isinstance(last_fit, dict) else last_fit
