"""Output distributions of DreamerV3 (Hafner et al. 2023): symlog squashing, two-hot regression over fixed
bins, categorical latents with a uniform mix and straight-through samples, and the bounded Gaussian policy.

Symlog compresses large magnitudes and keeps small ones nearly linear, so one network predicts rewards and
returns of any scale; the two-hot head regresses a scalar as a categorical over bins in symlog space, whose
cross-entropy gradient does not grow with the target's size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def symlog(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.expm1(x.abs())


MUZERO_EPSILON = 0.001


def muzero_squash(x: torch.Tensor) -> torch.Tensor:
    """MuZero's invertible value transform h(x) = sign(x) (sqrt(|x| + 1) - 1) + eps x (Pohlen et al. 2018)."""
    return torch.sign(x) * (torch.sqrt(x.abs() + 1) - 1) + MUZERO_EPSILON * x


def muzero_unsquash(y: torch.Tensor) -> torch.Tensor:
    """The inverse of `muzero_squash`, in closed form."""
    eps = MUZERO_EPSILON
    root = (torch.sqrt(1 + 4 * eps * (y.abs() + 1 + eps)) - 1) / (2 * eps)
    return torch.sign(y) * (root.square() - 1)


SQUASHES = {"symlog": (symlog, symexp), "muzero": (muzero_squash, muzero_unsquash)}


class TwoHot(nn.Module):
    """A scalar as weights on the two nearest of `bins` points evenly spaced in a squashed space over
    [low, high]: symlog (DreamerV3: 255 bins over [-20, 20]) or MuZero's h (`squash="muzero"`: its
    categorical support, 2S + 1 integer points over [-S, S])."""

    def __init__(self, bins: int = 255, low: float = -20.0, high: float = 20.0, squash: str = "symlog"):
        super().__init__()
        if bins < 2:
            raise ValueError(f"a two-hot head needs at least 2 bins, got {bins}")
        self.squash, self.unsquash = SQUASHES[squash]
        self.register_buffer("points", torch.linspace(low, high, bins), persistent=False)

    @property
    def bins(self) -> int:
        return len(self.points)

    def neighbours(self, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The bins below and above each value (in symlog space) and the weight of the one above."""
        points = self.points
        x = self.squash(value).clamp(points[0], points[-1])
        above = torch.searchsorted(points, x.contiguous(), right=False).clamp(1, self.bins - 1)
        below = above - 1
        return below, above, ((x - points[below]) / (points[above] - points[below])).clamp(0.0, 1.0)

    def encode(self, value: torch.Tensor) -> torch.Tensor:
        """`(...)` values -> `(..., bins)` targets: two neighbouring bins weighted by closeness."""
        below, above, weight_above = self.neighbours(value)
        target = torch.zeros(*value.shape, self.bins, device=value.device)
        target.scatter_(-1, below[..., None], (1 - weight_above)[..., None])
        return target.scatter_add_(-1, above[..., None], weight_above[..., None])

    def mean(self, logits: torch.Tensor) -> torch.Tensor:
        """The predicted value: the bins' expectation in the squashed space, mapped back."""
        return self.unsquash((logits.softmax(-1) * self.points).sum(-1))

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of `(..., bins)` logits against the two-hot code of `(...)` targets."""
        return -self.log_likelihood(logits.log_softmax(-1), target)

    def log_likelihood(self, log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The two-hot code of `target` against `(..., bins)` log-probabilities, read at its two bins without
        building the code (a head trained towards two targets takes its log-softmax once)."""
        below, above, weight_above = self.neighbours(target.detach())
        return ((1 - weight_above) * log_probs.gather(-1, below[..., None]).squeeze(-1)
                + weight_above * log_probs.gather(-1, above[..., None]).squeeze(-1))


def mixed_probs(logits: torch.Tensor, unimix: float) -> torch.Tensor:
    """Softmax mixed with `unimix` of the uniform distribution: no class's probability reaches zero, so the
    KL and log-probabilities stay bounded."""
    probs = logits.softmax(-1)
    return probs if unimix == 0 else (1 - unimix) * probs + unimix / logits.shape[-1]


def straight_through_sample(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """A one-hot sample of each categorical in `(..., classes)` whose gradient is that of `probs`."""
    noise = torch.rand(probs.shape, device=probs.device, generator=generator).clamp_(1e-20, 1.0)
    index = (probs.log() - (-noise.log()).log()).argmax(-1)  # Gumbel-max: one draw per categorical
    one_hot = F.one_hot(index, probs.shape[-1]).to(probs.dtype)
    return one_hot + probs - probs.detach()


def categorical_kl(probs_p: torch.Tensor, probs_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) of `(..., latents, classes)` categoricals, summed over the latents."""
    return (probs_p * (probs_p.log() - probs_q.log())).sum((-2, -1))


def gaussian_kl(mean_p, std_p, mean_q, std_q) -> torch.Tensor:
    """KL(p || q) of diagonal Gaussians `(..., dims)`, summed over the dims."""
    var_ratio = (std_p / std_q) ** 2
    return 0.5 * (var_ratio + ((mean_q - mean_p) / std_q) ** 2 - 1 - var_ratio.log()).sum(-1)


class BoundedNormal:
    """DreamerV3's continuous policy: a Gaussian with its mean squashed into [-1, 1] by tanh and its std
    squashed into [min_std, max_std]; samples are clipped to [-1, 1] only where they meet the env."""

    def __init__(self, raw: torch.Tensor, min_std: float = 0.1, max_std: float = 1.0):
        raw_mean, raw_std = raw.chunk(2, -1)
        self.mean = torch.tanh(raw_mean)
        self.std = (max_std - min_std) * torch.sigmoid(raw_std + 2.0) + min_std

    def sample(self, generator: torch.Generator | None) -> torch.Tensor:
        noise = torch.randn(self.mean.shape, device=self.mean.device, generator=generator)
        return self.mean + self.std * noise

    def mode(self) -> torch.Tensor:
        return self.mean

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        z = (action - self.mean) / self.std
        return (-0.5 * z**2 - self.std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)

    def entropy(self) -> torch.Tensor:
        return (self.std.log() + 0.5 * math.log(2 * math.pi * math.e)).sum(-1)


class OneHotCategorical:
    """A discrete policy over one-hot actions, mixed with `unimix` of the uniform distribution."""

    def __init__(self, logits: torch.Tensor, unimix: float = 0.01):
        self.probs = mixed_probs(logits, unimix)

    def sample(self, generator: torch.Generator | None) -> torch.Tensor:
        return straight_through_sample(self.probs, generator).detach()

    def mode(self) -> torch.Tensor:
        return F.one_hot(self.probs.argmax(-1), self.probs.shape[-1]).to(self.probs.dtype)

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        return (action * self.probs.log()).sum(-1)

    def entropy(self) -> torch.Tensor:
        return -(self.probs * self.probs.log()).sum(-1)
