"""Atomic files: write a temporary file beside the target, flush it to disk, then rename.

A kill mid-write leaves the previous file whole. Checkpoints, metrics and run configs are all written this
way. Reading a checkpoint checks it is a modelrl checkpoint and turns any failure into a one-line
`CheckpointError`.

A checkpoint holds only tensors, NumPy arrays and plain Python data, and is read with torch's restricted
unpickler (`weights_only=True`): a file naming any other Python global (a class, `os.system`) is refused
before anything it names is called, so opening someone else's checkpoint cannot run code.
"""

from __future__ import annotations

import errno
import os
import pickle
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from modelrl.errors import CheckpointError

FORMAT = "modelrl-checkpoint"
# 2: no Python objects but tensors and arrays; the env in progress as plain data
# (`modelrl.envs.save_env_state`)
FORMAT_VERSION = 2

# The NumPy dtypes a checkpoint may hold: bools, integers, floats, bytes and str. Object, structured and
# datetime dtypes are left out: modelrl saves none.
NUMPY_DTYPE_CLASSES = frozenset(type(np.dtype(code)) for code in "?bhilqBHILQefdSU")


def _allowed_globals() -> list:
    """The Python globals besides torch's own that a checkpoint may name. Each only builds data from the
    data beside it; none calls, imports or builds anything else the file names."""
    # NumPy arrays and scalars: `_reconstruct` makes an empty ndarray and `scalar` a scalar from raw bytes;
    # ndarray, dtype and the dtype classes are then filled in from their saved shape, dtype and bytes.
    reconstruct, scalar = np.zeros(0).__reduce__()[0], np.float64(0).__reduce__()[0]
    numpy_names = [(function, f"numpy.{core}.multiarray.{function.__name__}")  # as NumPy 1 or 2 wrote it
                   for function in (reconstruct, scalar) for core in ("core", "_core")]
    # `bytes`: pickle's protocol 2 (torch.save's) writes an empty bytes object, an empty array's data, as a
    # call of `bytes()`; non-empty ones go through the `_codecs.encode` torch allows itself.
    return [bytes, *numpy_names, np.ndarray, np.dtype, *NUMPY_DTYPE_CLASSES, *_format_1_classes()]


def _format_1_classes() -> list:
    """The plain-data classes that format-1 checkpoints held (a Dyna table model and its outcomes, a
    planner's search distribution, a model fit's summary), so that old checkpoints still load. They are
    rebuilt from their saved fields alone: no constructor or other method of theirs runs. Format 2 saves
    their contents as plain data instead."""
    from modelrl.models.tabular import Outcome, TabularModel
    from modelrl.models.training import FitResult
    from modelrl.planning.sequences import CategoricalSequence, GaussianSequence

    return [TabularModel, Outcome, GaussianSequence, CategoricalSequence, FitResult]


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
    # Leaving a safe_globals context takes its entries off torch's process-wide list, so only those not
    # on it already (a caller's own add_safe_globals) go in.
    allowed = [entry for entry in _allowed_globals() if entry not in torch.serialization.get_safe_globals()]
    corrupt = f"checkpoint {path} is corrupt or not a modelrl checkpoint"
    try:
        # A context, not add_safe_globals: the allowance ends with this read, whatever the process loads next.
        with torch.serialization.safe_globals(allowed):
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        refused = _refused_globals(path, allowed, error)
        if refused:
            raise CheckpointError(f"checkpoint {path} refused: it holds {', '.join(refused)}, which modelrl "
                                  "does not load because loading it could run code") from None
        raise CheckpointError(f"{corrupt} (UnpicklingError)") from None
    except OSError as error:
        if error.errno == errno.EINVAL:  # a cut-off zip points torch at offsets before the file's start
            raise CheckpointError(f"{corrupt} (it looks cut off)") from None
        raise CheckpointError(f"checkpoint {path} cannot be read: {error.strerror or error}") from None
    except Exception as error:  # noqa: BLE001  (unpickling garbage can raise anything)
        raise CheckpointError(f"{corrupt} ({error.__class__.__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a modelrl checkpoint")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} was written by a newer modelrl; upgrade to read it")
    return payload


def _refused_globals(path: Path, allowed: list, error: Exception) -> list[str]:
    """The names of what the restricted unpickler refused: the file's globals outside `allowed`, read
    without unpickling; else, as torch's refusal words it, the global or the class it would not build (a
    dtype class outside the allowed ones)."""
    try:
        with torch.serialization.safe_globals(allowed):
            names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001  (torch's older, non-zip format: its refusal's words are all there is)
        names = []
    said = re.search(r"GLOBAL (\S+)|but got <class '([^']+)'>", str(error))
    return sorted(names) or ([said.group(1) or said.group(2)] if said else [])
