"""A plain multilayer perceptron (ReLU hidden layers, linear output)."""

from __future__ import annotations

import itertools

from torch import nn


def mlp(in_dim: int, out_dim: int, hidden_size: int, num_layers: int) -> nn.Sequential:
    sizes = [in_dim] + [hidden_size] * num_layers
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, nn.Linear(sizes[-1], out_dim))
