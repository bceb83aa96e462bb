"""Distributions over action sequences of length H, the search space of every planner.

`GaussianSequence` serves Box actions: independent normals per step and dimension, optionally with
temporally correlated ("coloured") noise as in iCEM. Its `sample` takes how samples are kept inside the
action bounds, each optimiser as its paper does:
- "truncate" (PETS's CEM, Chua et al. 2018; also random shooting): the std is capped at half the distance
  to the nearer bound and the normal truncated at two of those deviations, so no sample reaches past a
  bound. White noise only. Near a bound the spread shrinks with the distance to it.
- "clip" (iCEM, Pinneri et al. 2020, Alg. 1; MPPI, Williams et al. 2017): mean + the full std x noise
  (white or coloured), then clipped to the bounds; samples past a bound land on it.
`refit` smooths mean and variance (not std) with `alpha`, as PETS and mbrl-lib do.
`CategoricalSequence` serves Discrete actions: one categorical distribution per step, sampled as
categories and refitted from category frequencies; no Gaussian is rounded or clipped into an action.

Both share `sample(n, generator, ...)`, `refit(samples, weights, alpha)`, `shift()` (the warm start for the
next real step) and `mode()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

Bounds = Literal["truncate", "clip"]
_TRUNCATION = 2.0  # standard deviations
_SHIFT_MIX = 0.5  # share of a categorical plan kept by the warm start


def colored_noise(beta: float, shape: tuple[int, ...], generator: torch.Generator | None = None,
                  device=None) -> torch.Tensor:
    """Gaussian noise of unit variance whose power spectrum falls as 1/f^beta along the LAST axis
    (beta = 0: white; 1: pink; 2: brown): white noise scaled in the frequency domain (Timmer and Koenig
    1995), the noise iCEM samples. The constant component takes the lowest frequency's power, so a whole
    sequence can drift off the plan as brown noise does; each step has unit variance in expectation, not
    per sample."""
    steps = shape[-1]
    freqs = torch.fft.rfftfreq(steps, device=device)
    freqs[0] = freqs[1] if steps > 1 else 1.0
    scale = freqs ** (-beta / 2)
    # The constant term (and, for even lengths, the Nyquist term) of a real signal is real: its one real
    # part carries the power the other frequencies split between real and imaginary parts.
    real_only = torch.zeros_like(scale, dtype=torch.bool)
    real_only[0] = True
    real_only[-1] |= steps % 2 == 0
    real = torch.randn(*shape[:-1], len(freqs), generator=generator, device=device)
    imag = torch.randn(*shape[:-1], len(freqs), generator=generator, device=device)
    real = torch.where(real_only, real * 2**0.5, real)
    imag = torch.where(real_only, 0.0, imag)
    noise = torch.fft.irfft(torch.complex(real * scale, imag * scale), n=steps)
    # Each step's variance in expectation: 2 s_f^2 per frequency, counted twice but for the real-only terms.
    weight = torch.where(real_only, 2.0, 4.0)
    return noise * steps / (weight * scale**2).sum().sqrt()


@dataclass
class GaussianSequence:
    mean: torch.Tensor  # (H, A)
    std: torch.Tensor  # (H, A)
    low: torch.Tensor  # (A,)
    high: torch.Tensor  # (A,)

    @classmethod
    def initial(cls, horizon: int, low: torch.Tensor, high: torch.Tensor, std_scale: float = 0.25):
        """Centred in the bounds with std a quarter of their width (so 2 std spans half of it)."""
        mean = ((low + high) / 2).expand(horizon, -1).clone()
        return cls(mean, (std_scale * (high - low)).expand(horizon, -1).clone(), low, high)

    def sample(self, n: int, generator: torch.Generator | None = None, *, bounds: Bounds,
               noise_beta: float = 0.0) -> torch.Tensor:
        """`(n, H, A)` sequences inside the bounds, by `bounds` (see the module docstring); `noise_beta > 0`:
        coloured noise along time (clip only: a truncated coloured normal has no inverse CDF to draw by)."""
        horizon, dims = self.mean.shape
        device = self.mean.device
        if bounds == "truncate":
            if noise_beta > 0:
                raise ValueError("PETS's truncated sampling is of white noise; coloured noise is clipped")
            room = torch.minimum(self.mean - self.low, self.high - self.mean) / _TRUNCATION
            std = torch.minimum(self.std, room.clamp_min(0))
            # exact truncated normal by the inverse CDF
            edge = torch.special.ndtr(torch.tensor(-_TRUNCATION, device=device))
            u = torch.rand(n, horizon, dims, generator=generator, device=device)
            samples = self.mean + std * torch.special.ndtri(edge + (1 - 2 * edge) * u)
            return torch.clamp(samples, self.low, self.high)  # only against rounding at a bound
        if bounds != "clip":
            raise ValueError(f"bounds must be 'truncate' or 'clip', got {bounds!r}")
        if noise_beta > 0:  # correlated along time: generate (n, A, H), then put time first
            noise = colored_noise(noise_beta, (n, dims, horizon), generator, device).transpose(1, 2)
        else:
            noise = torch.randn(n, horizon, dims, generator=generator, device=device)
        return torch.clamp(self.mean + self.std * noise, self.low, self.high)

    def refit(self, samples: torch.Tensor, weights: torch.Tensor, alpha: float = 0.0,
              update_std: bool = True) -> GaussianSequence:
        """Weighted mean (and variance) of `samples` `(K, H, A)`; `alpha` keeps that share of the old mean
        and variance (PETS's and mbrl-lib's smoothing; smoothing the std instead shrinks it faster)."""
        w = weights.view(-1, 1, 1)
        mean = (w * samples).sum(0)
        std = self.std
        if update_std:
            var = (w * (samples - mean) ** 2).sum(0)
            std = (alpha * self.std**2 + (1 - alpha) * var).sqrt()
        return GaussianSequence(alpha * self.mean + (1 - alpha) * mean, std, self.low, self.high)

    def shift(self, initial: GaussianSequence) -> GaussianSequence:
        """The warm start: drop the step just taken, append an initial step, reset the spread."""
        return GaussianSequence(torch.cat([self.mean[1:], initial.mean[-1:]]),
                                initial.std.clone(), self.low, self.high)

    def mode(self) -> torch.Tensor:
        return self.mean

    def inside(self, sequences: torch.Tensor) -> torch.Tensor:
        """`(n, H, A)` sequences from elsewhere (a policy's), clipped into the bounds."""
        return torch.clamp(sequences.to(self.mean.dtype), self.low, self.high)


@dataclass
class CategoricalSequence:
    probs: torch.Tensor  # (H, n_actions)

    @classmethod
    def initial(cls, horizon: int, n_actions: int, device=None):
        return cls(torch.full((horizon, n_actions), 1.0 / n_actions, device=device))

    def sample(self, n: int, generator: torch.Generator | None = None, *, bounds: Bounds = "clip",
               noise_beta: float = 0.0) -> torch.Tensor:
        """`(n, H)` action indices, one categorical draw per step; `bounds` and `noise_beta` are the
        Gaussian's, accepted for the common call (categories are always inside)."""
        return torch.multinomial(self.probs, n, replacement=True, generator=generator).T

    def refit(self, samples: torch.Tensor, weights: torch.Tensor, alpha: float = 0.0,
              update_std: bool = True) -> CategoricalSequence:
        counts = torch.zeros_like(self.probs).scatter_add_(
            1, samples.T, weights.view(1, -1).expand(self.probs.shape[0], -1).contiguous()
        )
        probs = alpha * self.probs + (1 - alpha) * counts / counts.sum(1, keepdim=True)
        # Keep every action possible, so one unlucky iteration cannot rule it out for good.
        floor = 1e-3 / self.probs.shape[1]
        probs = probs.clamp_min(floor)
        return CategoricalSequence(probs / probs.sum(1, keepdim=True))

    def shift(self, initial: CategoricalSequence) -> CategoricalSequence:
        """The warm start: drop the step just taken, append an initial step, and mix the rest halfway back to
        the initial distribution. CEM leaves the plan's categoricals near one-hot; kept as they are, every
        sample of the next step would be the same sequence (the counterpart of resetting a Gaussian's std)."""
        probs = torch.cat([self.probs[1:], initial.probs[-1:]])
        return CategoricalSequence(_SHIFT_MIX * probs + (1 - _SHIFT_MIX) * initial.probs)

    def mode(self) -> torch.Tensor:
        return self.probs.argmax(1)

    def inside(self, sequences: torch.Tensor) -> torch.Tensor:
        """`(n, H)` action indices from elsewhere (a policy's), as valid indices."""
        return sequences.long().clamp(0, self.probs.shape[1] - 1)


ActionSequence = GaussianSequence | CategoricalSequence
