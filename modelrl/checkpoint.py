"""Atomic checkpoint files: write a temporary file beside the target, flush it to disk, then rename.

A kill mid-write leaves the previous checkpoint whole. Reading checks the file is a modelrl checkpoint
and turns any failure into a one-line `CheckpointError`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from modelrl.errors import CheckpointError

FORMAT = "modelrl-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        # Our own files hold NumPy arrays and Python objects beside tensors, so full unpickling is needed.
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:  # noqa: BLE001  (unpickling garbage can raise anything)
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a modelrl checkpoint ({error.__class__.__name__})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a modelrl checkpoint")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} was written by a newer modelrl; upgrade to read it")
    return payload
