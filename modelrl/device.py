"""Choosing the torch device at run time."""

from __future__ import annotations

import torch

from modelrl.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' is CUDA when present, else CPU; an explicit device that isn't there is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ConfigError(f"unknown device {name!r}: {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but CUDA is not available")
    return device
