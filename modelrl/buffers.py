"""Replay buffers: NumPy ring buffers of transitions, sampled in batches, saved and restored whole."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from modelrl.memory import require_memory

FIELDS = ("obs", "action", "reward", "next_obs", "terminated", "truncated")
LEARNING_FIELDS = FIELDS[:5]


class ReplayBuffer:
    """The last `capacity` transitions. `truncated` marks where episodes were cut (time limits), so
    trajectories can be recovered; learning bootstraps through truncation, never through termination."""

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], action_shape: tuple[int, ...] = (),
                 obs_dtype=np.float32, action_dtype=np.float32, name: str = "capacity"):
        """`name` is the setting `capacity` came from, for the error when it cannot fit in memory."""
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        row = (2 * np.dtype(obs_dtype).itemsize * int(np.prod(obs_shape))
               + np.dtype(action_dtype).itemsize * int(np.prod(action_shape)) + 4 + 2)
        require_memory(int(capacity) * row, f"{name}={capacity:,} (a replay buffer of {row} bytes a transition)")
        self.capacity = int(capacity)
        self.data = {
            "obs": np.zeros((capacity, *obs_shape), obs_dtype),
            "action": np.zeros((capacity, *action_shape), action_dtype),
            "reward": np.zeros(capacity, np.float32),
            "next_obs": np.zeros((capacity, *obs_shape), obs_dtype),
            "terminated": np.zeros(capacity, bool),
            "truncated": np.zeros(capacity, bool),
        }
        self.position, self.size = 0, 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        self.add_batch(**{k: np.asarray(v)[None] for k, v in zip(FIELDS, (obs, action, reward, next_obs,
                                                                          terminated, truncated))})

    def add_batch(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        """Append `n` transitions at once (the oldest are overwritten when full)."""
        n = len(obs)
        if n > self.capacity:  # only the newest fit
            obs, action, reward, next_obs, terminated, truncated = (
                x[-self.capacity :] for x in (obs, action, reward, next_obs, terminated, truncated))
            n = self.capacity
        index = (self.position + np.arange(n)) % self.capacity
        for key, value in zip(FIELDS, (obs, action, reward, next_obs, terminated, truncated)):
            self.data[key][index] = value
        self.position = (self.position + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def _order(self) -> np.ndarray:
        """Indices oldest first."""
        if self.size < self.capacity:
            return np.arange(self.size)
        return (self.position + np.arange(self.capacity)) % self.capacity

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        if self.size == 0:
            raise ValueError("cannot sample from an empty buffer")
        index = rng.integers(self.size, size=batch_size)
        return {key: value[index] for key, value in self.data.items()}

    def sample_tensors(self, batch_size: int, rng: np.random.Generator,
                       device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        """A training batch as tensors on `device` (`truncated` left out: learning ignores it)."""
        data = self.sample(batch_size, rng)
        return {key: torch.as_tensor(data[key], device=device) for key in LEARNING_FIELDS}

    def all(self) -> dict[str, np.ndarray]:
        order = self._order()
        return {key: value[order] for key, value in self.data.items()}

    def tensors(self, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        """Everything, oldest first, as torch tensors on `device`."""
        return {key: torch.as_tensor(value, device=device) for key, value in self.all().items()}

    def state_dict(self) -> dict[str, Any]:
        # Sampling draws memory indices, so the save also says where the oldest row sits: restored there, a
        # resumed run draws the very rows the uninterrupted one would. `all` gathers, so these are copies.
        oldest = self.position if self.size == self.capacity else 0
        return {"capacity": self.capacity, "data": self.all(), "oldest": oldest}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(f"buffer capacity {self.capacity} differs from the saved {state['capacity']}")
        data = state["data"]
        size, oldest = len(data["obs"]), state.get("oldest", 0)  # saves before "oldest" restore from row 0
        if size > self.capacity or not 0 <= oldest < self.capacity:
            raise ValueError(f"saved buffer of {size} rows from row {oldest} does not fit capacity {self.capacity}")
        for value in self.data.values():
            value[:] = 0
        self.position, self.size = oldest, 0  # appended from the oldest row's place, each row lands where it sat
        if size:
            self.add_batch(**data)
