"""Choosing the torch device at run time."""

from __future__ import annotations

import re

import torch

from modelrl.errors import ConfigError

# The devices modelrl's agents are built and tested on; torch knows more names (mps, meta, xpu) that parse
# but then fail, or silently do nothing, on the first tensor.
_DEVICE = re.compile(r"cpu|cuda(:(\d+))?")


def check_device_name(name: str) -> re.Match | None:
    """Raise on a device name modelrl does not run on, without touching CUDA (a process that has cannot fork
    workers that use it)."""
    match = _DEVICE.fullmatch(name)
    if match is None and name != "auto":
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")
    return match


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' is CUDA when present, else CPU; an explicit device that isn't there is an error."""
    match = check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} asked for, but CUDA is not available")
        count = torch.cuda.device_count()
        if match.group(2) is not None and int(match.group(2)) >= count:
            raise ConfigError(f"device {name!r} asked for, but this machine has {count} CUDA device(s)")
    return torch.device(name)
