"""Atomic files: write a temporary file beside the target, flush it to disk, then rename.

A kill mid-write leaves the previous file whole. Checkpoints, metrics and run configs are all written this
way. Reading a checkpoint checks it is a modelrl checkpoint and turns any failure into a one-line
`CheckpointError`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import torch

from modelrl.errors import CheckpointError

FORMAT = "modelrl-checkpoint"
FORMAT_VERSION = 1


def _umask() -> int:
    # The only way to read the umask is to set it; the old value goes straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb", **open_kwargs: Any) -> Iterator[IO]:
    """Yield a file to write `path`'s new contents into; `path` changes only if the block finishes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:  # name the file asked for, not the temporary one
        raise type(error)(error.errno, error.strerror, str(path)) from None
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file 0600; give it the mode an ordinary new file would get.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    path = Path(path)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    with atomic_write(path, "wb") as f:
        torch.save(payload, f)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        # Our own files hold NumPy arrays and Python objects beside tensors, so full unpickling is needed.
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except OSError as error:
        raise CheckpointError(f"checkpoint {path} cannot be read: {error.strerror or error}") from None
    except Exception as error:  # noqa: BLE001  (unpickling garbage can raise anything)
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a modelrl checkpoint ({error.__class__.__name__})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a modelrl checkpoint")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} was written by a newer modelrl; upgrade to read it")
    return payload
