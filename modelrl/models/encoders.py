"""What turns observations into a world model's embeddings and back: MLPs for vectors, convolutions for
64 x 64 RGB images (Dreamer's encoder and decoder: four stride-2 stages, 64 -> 4 pixels a side).

Vectors are read and reconstructed in symlog space (DreamerV3), so observations of any scale train alike;
images as pixels in [-0.5, 0.5]. `observation_kind` tells which a Gymnasium space is.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from modelrl.errors import IncompatibleEnvError
from modelrl.models.distributions import symlog
from modelrl.models.mlp import norm_mlp

IMAGE_SIZE = 64
STAGES = 4  # stride-2 stages: 64 -> 32 -> 16 -> 8 -> 4
CHANNEL_MULTIPLIERS = (2, 3, 4, 4)  # channels of each stage, times `depth` (DreamerV3)


def observation_kind(space: gym.Space) -> str:
    """"vector" for a flat Box, "image" for a 64 x 64 x 3 uint8 Box (height, width, RGB); anything else is
    refused with the reason."""
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return "vector"
    if isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3:
        if space.shape != (IMAGE_SIZE, IMAGE_SIZE, 3):
            raise IncompatibleEnvError(f"image observations must be {IMAGE_SIZE} x {IMAGE_SIZE} x 3 (height, "
                                       f"width, RGB), got {space.shape}; `pixels/<env id>` renders envs so")
        return "image"
    raise IncompatibleEnvError(f"observations must be a flat vector or a {IMAGE_SIZE} x {IMAGE_SIZE} RGB "
                               f"image (uint8), got {space}")


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channels of each pixel of `(B, C, H, W)`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def image_input(obs: torch.Tensor) -> torch.Tensor:
    """`(..., H, W, 3)` uint8 -> `(..., 3, H, W)` floats in [-0.5, 0.5]."""
    return obs.movedim(-1, -3).float() / 255.0 - 0.5


def image_frames(pixels: torch.Tensor) -> torch.Tensor:
    """The inverse of `image_input`, for pictures: `(..., 3, H, W)` -> `(..., H, W, 3)` uint8."""
    return ((pixels + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).movedim(-3, -1)


class ImageEncoder(nn.Module):
    """Dreamer's conv encoder. `self.net` reads `(B, in_channels, 64, 64)` pixels in image_input's units:
    `in_channels` is 3 for one RGB frame, 3 k for a stack of k (`drq`)."""

    def __init__(self, depth: int, in_channels: int = 3):
        super().__init__()
        layers, channels = [], in_channels
        for multiplier in CHANNEL_MULTIPLIERS:
            out = depth * multiplier
            layers += [nn.Conv2d(channels, out, 4, stride=2, padding=1, bias=False),
                       ChannelNorm(out, eps=1e-3), nn.SiLU()]
            channels = out
        self.net = nn.Sequential(*layers)
        self.output_size = channels * (IMAGE_SIZE >> STAGES) ** 2

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """`(..., 64, 64, 3)` uint8 -> `(..., output_size)`."""
        lead = obs.shape[:-3]
        x = image_input(obs.reshape(-1, *obs.shape[-3:]))
        return self.net(x).reshape(*lead, -1)


class ImageDecoder(nn.Module):
    """Features -> the mean of each pixel, trained by squared error (a unit-variance Gaussian)."""

    def __init__(self, feature_size: int, depth: int):
        super().__init__()
        self.channels = depth * CHANNEL_MULTIPLIERS[-1]
        side = IMAGE_SIZE >> STAGES
        self.project = nn.Linear(feature_size, self.channels * side * side)
        layers, channels = [], self.channels
        for multiplier in reversed(CHANNEL_MULTIPLIERS[:-1]):
            out = depth * multiplier
            layers += [nn.ConvTranspose2d(channels, out, 4, stride=2, padding=1, bias=False),
                       ChannelNorm(out, eps=1e-3), nn.SiLU()]
            channels = out
        layers.append(nn.ConvTranspose2d(channels, 3, 4, stride=2, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """`(..., feature_size)` -> `(..., 3, 64, 64)` in the units of `image_input`."""
        lead = features.shape[:-1]
        side = IMAGE_SIZE >> STAGES
        x = self.project(features.reshape(-1, features.shape[-1])).view(-1, self.channels, side, side)
        return self.net(x).reshape(*lead, 3, IMAGE_SIZE, IMAGE_SIZE)

    def loss(self, features: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """Squared error summed over pixels, per step."""
        return (self(features) - image_input(obs)).pow(2).sum((-3, -2, -1))


class VectorEncoder(nn.Module):
    def __init__(self, obs_dim: int, units: int, layers: int):
        super().__init__()
        self.net = norm_mlp(obs_dim, units, units, layers - 1)
        self.output_size = units

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(symlog(obs.float()))


class VectorDecoder(nn.Module):
    def __init__(self, feature_size: int, obs_dim: int, units: int, layers: int):
        super().__init__()
        self.net = norm_mlp(feature_size, obs_dim, units, layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Predicted observations, in symlog space."""
        return self.net(features)

    def loss(self, features: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """Squared error in symlog space summed over the dims, per step."""
        return (self(features) - symlog(obs.float())).pow(2).sum(-1)


def make_encoder(kind: str, obs_shape: tuple[int, ...], units: int, layers: int, depth: int) -> nn.Module:
    return ImageEncoder(depth) if kind == "image" else VectorEncoder(obs_shape[0], units, layers)


def make_decoder(kind: str, obs_shape: tuple[int, ...], feature_size: int, units: int, layers: int,
                 depth: int) -> nn.Module:
    return (ImageDecoder(feature_size, depth) if kind == "image"
            else VectorDecoder(feature_size, obs_shape[0], units, layers))
