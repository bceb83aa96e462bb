"""A plain multilayer perceptron (ReLU hidden layers, linear output)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from modelrl.memory import require_memory

# A trained parameter holds four float32 numbers: itself, its gradient and Adam's two moments.
BYTES_PER_TRAINED_PARAMETER = 16


def require_network_memory(sizes: list[int], copies: int, hidden_size: int) -> None:
    """Refuse layer sizes whose weights (times `copies`: ensemble members) cannot fit in memory."""
    parameters = copies * sum((a + 1) * b for a, b in itertools.pairwise(sizes))
    require_memory(parameters * BYTES_PER_TRAINED_PARAMETER,
                   f"a network of {parameters:,} parameters (hidden size {hidden_size:,})")


@contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Keep the modules' weights out of the autograd graph meanwhile (a loss passes through them to reach
    another network's weights); their earlier `requires_grad` flags come back after."""
    parameters = [p for module in modules for p in module.parameters()]
    flags = [p.requires_grad for p in parameters]
    for parameter in parameters:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in zip(parameters, flags, strict=True):
            parameter.requires_grad_(flag)


def float32_output(layer: Callable[..., torch.Tensor], x: torch.Tensor, *args) -> torch.Tensor:
    """`layer(x, *args)` in float32 even under autocast. Outputs are values and log-stds that targets and
    losses compare to a few units in hundreds; bfloat16 keeps three significant digits, too few for that."""
    if not torch.is_autocast_enabled(x.device.type):
        return layer(x, *args)
    with torch.autocast(x.device.type, enabled=False):
        return layer(x.float(), *args)


class MLP(nn.Sequential):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        *hidden, output = self._modules.values()
        for layer in hidden:
            x = layer(x)
        return float32_output(output, x)


def mlp(in_dim: int, out_dim: int, hidden_size: int, num_layers: int) -> MLP:
    sizes = [in_dim] + [hidden_size] * num_layers
    require_network_memory([*sizes, out_dim], 1, hidden_size)
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
    return MLP(*layers, nn.Linear(sizes[-1], out_dim))


def dense(in_dim: int, out_dim: int) -> nn.Sequential:
    """A hidden layer as DreamerV3 builds them: linear, LayerNorm, SiLU."""
    return nn.Sequential(nn.Linear(in_dim, out_dim, bias=False), nn.LayerNorm(out_dim, eps=1e-3), nn.SiLU())


def norm_mlp(in_dim: int, out_dim: int, units: int, layers: int, output_scale: float = 1.0) -> nn.Sequential:
    """`layers` dense layers of `units` and a linear output, its initial weights scaled by `output_scale`
    (0: every output starts at zero, as DreamerV3's reward and value heads do)."""
    require_network_memory([in_dim] + [units] * layers + [out_dim], 1, units)
    sizes = [in_dim] + [units] * layers
    output = nn.Linear(sizes[-1], out_dim)
    with torch.no_grad():
        output.weight.mul_(output_scale)
        output.bias.zero_()
    return nn.Sequential(*(dense(a, b) for a, b in itertools.pairwise(sizes)), output)
