"""One seed, named random streams.

A run's `seed` drives several random streams: the agent's acting, the env's resets, initial weights, model
fitting, planning, evaluation. Each is derived from the seed and its name (and any indices) by NumPy's
SeedSequence, so streams never overlap, and adding a stream, or drawing more from one, never shifts another.

    rng = numpy_stream(seed, "acting")
    generator = torch_stream(seed, "planning", device)
    with seeded_weights(seed, "critic"):
        critic = TwinCritic(...)
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


def stream_seed(seed: int, name: str, *indices: int) -> int:
    """A 63-bit seed of the stream `name` (e.g. evaluation episode `indices`) of the run seeded `seed`."""
    key = [int(seed), zlib.crc32(name.encode()), *map(int, indices)]
    return int(np.random.SeedSequence(key).generate_state(1, np.uint64)[0] >> np.uint64(1))


def numpy_stream(seed: int, name: str, *indices: int) -> np.random.Generator:
    return np.random.default_rng(stream_seed(seed, name, *indices))


def torch_stream(seed: int, name: str, device: str | torch.device = "cpu") -> torch.Generator:
    return torch.Generator(device).manual_seed(stream_seed(seed, name))


@contextmanager
def seeded_weights(seed: int, name: str = "weights") -> Iterator[None]:
    """Modules built inside draw their initial weights from the named stream; torch's global random state is
    the same afterwards (modules initialise from it, and taking it over would change a user's own draws)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(seed, name))
        yield
