"""Ensembles of MLPs run as one network: every layer holds all members' weights in one `(E, in, out)`
tensor and serves them with one batched matmul over `(E, B, in)` inputs.

Members are deterministic (a mean, fitted by MSE) or probabilistic (a mean and a diagonal log-variance,
fitted by Gaussian NLL). As in PETS (Chua et al. 2018, appendix A.1), the log-variance is squashed
between learned soft bounds so it cannot run off where data is thin.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from modelrl.models.mlp import float32_output, require_network_memory

INFERENCE_BLOCK_ROWS = 512  # rows per member per block in no-grad forward passes

# (under autograd, without it). In place wherever the backward needs only the output (relu, leaky relu,
# tanh), which saves an allocation per layer; SiLU's backward needs its input, so it trains out of place.
ACTIVATIONS = {
    "silu": (F.silu, lambda x: F.silu(x, inplace=True)),
    "relu": (F.relu_, F.relu_),
    "leaky_relu": (F.leaky_relu_, F.leaky_relu_),
    "tanh": (torch.tanh_, torch.tanh_),
}


def member_params(members: torch.Tensor | None, *params: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per-member parameters `(E, ...)`, or only the rows of `members` (one member per batch slot)."""
    return params if members is None else tuple(p[members] for p in params)


class EnsembleLinear(nn.Module):
    def __init__(self, ensemble_size: int, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(ensemble_size, in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(ensemble_size, 1, out_features))
        # Normal with std 1/(2 sqrt(in)) truncated at two std (PETS's initialisation), drawn per member;
        # trunc_normal_'s bounds are absolute, not in std.
        std = 1 / (2 * math.sqrt(in_features))
        nn.init.trunc_normal_(self.weight, std=std, a=-2 * std, b=2 * std)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        weight, bias = member_params(members, self.weight, self.bias)
        if weight.shape[-1] == 1:
            # A batched matmul with one output column (a critic's value) takes a slow CPU path: 3-4x this
            # form's time forward and backward, about 10% of a whole SAC update.
            return (x * weight.transpose(-1, -2)).sum(-1, keepdim=True) + bias
        return torch.baddbmm(bias, x, weight)


class EnsembleLayerNorm(nn.Module):
    """LayerNorm over the features with a gain and shift per member."""

    def __init__(self, ensemble_size: int, features: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ensemble_size, 1, features))
        self.bias = nn.Parameter(torch.zeros(ensemble_size, 1, features))
        self.eps = eps

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        weight, bias = member_params(members, self.weight, self.bias)
        return torch.addcmul(bias, F.layer_norm(x, x.shape[-1:], eps=self.eps), weight)


class EnsembleMLP(nn.Module):
    """`ensemble_size` independent MLPs: `(E, B, in) -> mean (E, B, out), log-variance or None`."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        ensemble_size: int = 5,
        hidden_size: int = 200,
        num_layers: int = 3,
        probabilistic: bool = True,
        activation: str = "silu",
        layer_norm: bool = False,
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
        self.ensemble_size, self.out_dim, self.probabilistic = ensemble_size, out_dim, probabilistic
        self.activation, self.activation_ = ACTIVATIONS[activation]
        sizes = [in_dim] + [hidden_size] * num_layers + [out_dim * (2 if probabilistic else 1)]
        require_network_memory(sizes, ensemble_size, hidden_size)
        self.layers = nn.ModuleList(EnsembleLinear(ensemble_size, a, b) for a, b in itertools.pairwise(sizes))
        # LayerNorm before each hidden activation bounds the features the output layer sees, so values
        # cannot grow without bound off the data (Ball et al. 2023's fix for high update-to-data critics).
        self.norms = nn.ModuleList(EnsembleLayerNorm(ensemble_size, hidden_size) for _ in range(num_layers)
                                   ) if layer_norm else None
        if probabilistic:  # PETS's starting bounds
            self.max_logvar = nn.Parameter(torch.full((1, 1, out_dim), 0.5))
            self.min_logvar = nn.Parameter(torch.full((1, 1, out_dim), -10.0))

    def forward(
        self, x: torch.Tensor, members: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if torch.is_grad_enabled():
            x = self._trunk(x, members, self.activation)
        else:
            # Without autograd, rows go through in blocks small enough that each layer's output stays in
            # cache for its bias and activation (about 10% faster on large planning batches).
            x = torch.cat([self._trunk(block, members, self.activation_)
                           for block in x.split(INFERENCE_BLOCK_ROWS, dim=1)], 1)
        if not self.probabilistic:
            return x, None
        mean, raw_logvar = x[..., : self.out_dim], x[..., self.out_dim :]
        logvar = self.max_logvar - F.softplus(self.max_logvar - raw_logvar)
        logvar = self.min_logvar + F.softplus(logvar - self.min_logvar)
        return mean, logvar

    def _trunk(self, x, members, activation):
        for i, layer in enumerate(self.layers[:-1]):
            x = layer(x, members)
            if self.norms is not None:
                x = self.norms[i](x, members)
            x = activation(x)
        return float32_output(self.layers[-1], x, members)

    def bound_penalty(self, dims: int | None = None) -> torch.Tensor:
        """PETS's term that pulls the soft log-variance bounds together (weight 0.01 in the loss), over the
        first `dims` outputs: those a Gaussian is fitted to (a termination logit has no variance, and the
        penalty alone would walk its unused bounds into each other)."""
        if not self.probabilistic:
            return torch.zeros((), device=self.layers[0].weight.device)
        return self.max_logvar[..., :dims].sum() - self.min_logvar[..., :dims].sum()
