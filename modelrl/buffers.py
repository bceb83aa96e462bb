"""Replay buffers: NumPy ring buffers of transitions sampled in batches, and of steps sampled as sequences.

A buffer saves itself whole into a checkpoint, or, inside `files_beside(directory)` (what a run's periodic
checkpoints use), as chunk files of up to `CHUNK_ROWS` rows (and about `CHUNK_BYTES`) in that directory: a
chunk is written once per change, so a million-row buffer checkpointed at every evaluation writes each row
about once, not at every save.
Chunk files never change once written (a changed chunk gets a new name); the checkpoint lists the ones it
needs, and `BufferFiles.keep_only` removes the others after the checkpoint is safely in place, so a kill
mid-save leaves the previous checkpoint whole.
"""

from __future__ import annotations

import contextvars
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelrl.errors import CheckpointError
from modelrl.memory import require_memory

CHUNK_ROWS = 65_536  # about 6 MB a chunk for MuJoCo-sized transitions
CHUNK_BYTES = 8 << 20  # ... and fewer rows for larger ones: 680 steps of 64 x 64 frames

FIELDS = ("obs", "action", "reward", "next_obs", "terminated", "truncated")
LEARNING_FIELDS = FIELDS[:5]


class RingBuffer:
    """The last `capacity` rows of named fields (each a NumPy array of `(capacity, *shape)`), appended in
    batches, with what a checkpoint needs to save them whole or as chunk files."""

    def __init__(self, capacity: int, fields: dict[str, tuple[tuple[int, ...], Any]],
                 name: str = "capacity", row_name: str = "row"):
        """`fields`: each field's per-row shape and dtype; `name` is the setting `capacity` came from, and
        `row_name` what a row holds, for the error when it cannot fit in memory."""
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        row = sum(np.dtype(dtype).itemsize * int(np.prod(shape)) for shape, dtype in fields.values())
        require_memory(int(capacity) * row,
                       f"{name}={capacity:,} (a replay buffer of {row} bytes a {row_name})")
        self.capacity = int(capacity)
        self.data = {key: np.zeros((capacity, *shape), dtype) for key, (shape, dtype) in fields.items()}
        self.position, self.size = 0, 0
        # What changed since which save: each chunk's version is the write that last touched it.
        self.uid = uuid.uuid4().hex
        self.writes = 0
        self.chunk_rows = max(1, min(CHUNK_ROWS, CHUNK_BYTES // max(1, row)))
        self.chunk_versions = np.zeros(-(-self.capacity // self.chunk_rows), np.int64)

    def __len__(self) -> int:
        return self.size

    def add_batch(self, **rows) -> None:
        """Append `n` rows of every field at once (the oldest are overwritten when full)."""
        if rows.keys() != self.data.keys():
            raise ValueError(f"a buffer of {sorted(self.data)} was given {sorted(rows)}")
        n = len(next(iter(rows.values())))
        if n > self.capacity:  # only the newest fit
            rows = {key: value[-self.capacity :] for key, value in rows.items()}
            n = self.capacity
        index = (self.position + np.arange(n)) % self.capacity
        for key, value in rows.items():
            self.data[key][index] = value
        self.writes += 1
        self.chunk_versions[np.unique(index // self.chunk_rows)] = self.writes
        self.position = (self.position + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def clear(self) -> None:
        """Every row zero again, without touching memory: fresh arrays are zero pages until written."""
        self.data = {key: np.zeros(value.shape, value.dtype) for key, value in self.data.items()}

    def _order(self) -> np.ndarray:
        """Indices oldest first."""
        if self.size < self.capacity:
            return np.arange(self.size)
        return (self.position + np.arange(self.capacity)) % self.capacity

    def all(self) -> dict[str, np.ndarray]:
        order = self._order()
        return {key: value[order] for key, value in self.data.items()}

    def tensors(self, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        """Everything, oldest first, as torch tensors on `device`."""
        return {key: torch.as_tensor(value, device=device) for key, value in self.all().items()}

    def state_dict(self) -> dict[str, Any]:
        files = _BUFFER_FILES.get()
        if files is not None:
            return {"capacity": self.capacity, "files": files.write(self)}
        # Sampling draws memory indices, so the save also says where the oldest row sits: restored there, a
        # resumed run draws the very rows the uninterrupted one would. `all` gathers, so these are copies.
        oldest = self.position if self.size == self.capacity else 0
        return {"capacity": self.capacity, "data": self.all(), "oldest": oldest}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(f"buffer capacity {self.capacity} differs from the saved {state['capacity']}")
        if "files" in state:
            files = _BUFFER_FILES.get()
            if files is None:
                raise CheckpointError("this checkpoint keeps its replay buffers in files beside it; load it "
                                      "from its path (modelrl.load), not from its bytes")
            files.read(self, state["files"])
            return
        data = state["data"]
        size = len(next(iter(data.values())))
        oldest = state.get("oldest", 0)  # saves before "oldest" restore from row 0
        if size > self.capacity or not 0 <= oldest < self.capacity:
            raise ValueError(f"saved buffer of {size} rows from row {oldest} does not fit capacity "
                             f"{self.capacity}")
        self.clear()
        # appended from the oldest row's place, each row lands where it sat
        self.position, self.size = oldest, 0
        if size:
            self.add_batch(**data)


class ReplayBuffer(RingBuffer):
    """The last `capacity` transitions. `truncated` marks where episodes were cut (time limits), so
    trajectories can be recovered; learning bootstraps through truncation, never through termination."""

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], action_shape: tuple[int, ...] = (),
                 obs_dtype=np.float32, action_dtype=np.float32, name: str = "capacity"):
        super().__init__(capacity, {"obs": (obs_shape, obs_dtype), "action": (action_shape, action_dtype),
                                    "reward": ((), np.float32), "next_obs": (obs_shape, obs_dtype),
                                    "terminated": ((), bool), "truncated": ((), bool)}, name, "transition")

    def add(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        self.add_batch(**{k: np.asarray(v)[None] for k, v in zip(FIELDS, (obs, action, reward, next_obs,
                                                                          terminated, truncated))})

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


    def sample_windows(self, batch_size: int, length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """`batch_size` runs of `length` consecutive transitions of one episode, `(batch_size, length, ...)`
        per field: only a run's last transition may end its episode. Rows must come from one env's stream
        (the ring's order is the order of the steps), as an agent with `supports_num_envs = False` gives."""
        oldest = self.position if self.size == self.capacity else 0
        order = (oldest + np.arange(self.size)) % self.capacity
        done = self.data["terminated"][order] | self.data["truncated"][order]
        ends_before = np.concatenate([[0], np.cumsum(done)])  # episode ends among the first i rows
        starts = np.arange(max(self.size - length + 1, 0))
        valid = starts[ends_before[starts + length - 1] == ends_before[starts]]
        if not len(valid):
            raise ValueError(f"no episode in the buffer has {length} consecutive transitions yet")
        start = valid[rng.integers(len(valid), size=batch_size)]
        index = order[start[:, None] + np.arange(length)]
        return {key: value[index] for key, value in self.data.items()}


class SequenceBuffer(RingBuffer):
    """The last `capacity` steps of a stream of episodes, one row per step, for models trained on sequences
    (Dreamer's world model): the observation, the action that led to it and the reward it brought (zeros at
    an episode's first step), `is_first` and `is_terminal`. Windows of `length` consecutive steps are sampled
    wherever they lie; one crossing an episode boundary is fine, since `is_first` tells the model to reset."""

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], action_shape: tuple[int, ...],
                 obs_dtype=np.float32, name: str = "capacity"):
        super().__init__(capacity, {"obs": (obs_shape, obs_dtype), "action": (action_shape, np.float32),
                                    "reward": ((), np.float32), "is_first": ((), bool),
                                    "is_terminal": ((), bool)}, name, "step")

    def add(self, obs, action, reward: float, is_first: bool, is_terminal: bool) -> None:
        self.add_batch(obs=np.asarray(obs)[None], action=np.asarray(action, np.float32)[None],
                       reward=np.asarray([reward], np.float32), is_first=np.asarray([is_first]),
                       is_terminal=np.asarray([is_terminal]))

    def sample_sequences(self, batch_size: int, length: int,
                         rng: np.random.Generator) -> dict[str, np.ndarray]:
        """`batch_size` windows of `length` consecutive steps, `(batch_size, length, ...)` per field; each
        window's first step is marked `is_first`, since the model starts it from a fresh state."""
        if self.size < length:
            raise ValueError(f"cannot sample windows of {length} steps from a buffer of {self.size}")
        start = rng.integers(self.size - length + 1, size=batch_size)
        oldest = self.position if self.size == self.capacity else 0
        index = (oldest + start[:, None] + np.arange(length)) % self.capacity
        batch = {key: value[index] for key, value in self.data.items()}
        batch["is_first"][:, 0] = True
        return batch

    def sample_stacked(self, batch_size: int, frames: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """`batch_size` transitions with `obs` and `next_obs` the last `frames` observations up to each of
        their two steps, `(batch_size, frames, ...)`, oldest first; where an episode has fewer, its first is
        repeated (as an agent stacking frames starts an episode). A stack never reaches into another
        episode, nor before the oldest row kept."""
        order = self._order()
        first = self.data["is_first"][order]
        ends = np.flatnonzero(~first[1:]) + 1  # rows reached from the step before, in their episode
        # near the oldest row, only where their episode's start is kept
        ends = ends[(ends >= frames) | np.maximum.accumulate(first)[ends - 1]]
        if not len(ends):
            raise ValueError("no transition in the buffer yet")
        end = ends[rng.integers(len(ends), size=batch_size)]
        window = end[:, None] + np.arange(-frames, 1)  # the previous step's stack and this one's
        # rows before the latest episode start among the first `frames` (the transition's own) repeat it
        latest_start = np.where(first[window[:, :frames].clip(0)], np.arange(frames), 0).max(1)
        rows = order[np.maximum(window, (end - frames + latest_start)[:, None])]
        observations = self.data["obs"][rows]
        last = order[end]
        return {"obs": observations[:, :frames], "next_obs": observations[:, 1:],
                "action": self.data["action"][last], "reward": self.data["reward"][last],
                "terminated": self.data["is_terminal"][last]}


class EpisodeStreams:
    """Each env's steps as a stream of its own (`SequenceBuffer`), and whether its next step starts an
    episode: how agents that learn from consecutive steps (Dreamer's windows, DrQ's frame stacks) record
    real transitions, so nothing they sample joins two envs' steps."""

    def __init__(self, envs: int, capacity: int, obs_shape: tuple[int, ...], action_dim: int, obs_dtype,
                 name: str = "buffer_size"):
        self.buffers = [SequenceBuffer(capacity, obs_shape, (action_dim,), obs_dtype, name)
                        for _ in range(envs)]
        self.action_dim = action_dim
        self.episode_started = [True] * envs

    def add(self, index: int, obs, action: np.ndarray, reward: float, next_obs, terminated: bool,
            truncated: bool) -> None:
        """Env `index`'s transition: its first observation too when it starts an episode."""
        buffer = self.buffers[index]
        if self.episode_started[index]:
            buffer.add(obs, np.zeros(self.action_dim, np.float32), 0.0, True, False)
            self.episode_started[index] = False
        buffer.add(next_obs, action, reward, False, terminated)
        if terminated or truncated:
            self.episode_started[index] = True

    def sample(self, batch_size: int, min_rows: int, rng: np.random.Generator,
               draw: Callable[[SequenceBuffer, int], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """`batch_size` samples, `draw(buffer, count)` from the streams holding at least `min_rows` rows, each
        in proportion to the rows it holds; concatenated along the first axis."""
        buffers = [buffer for buffer in self.buffers if len(buffer) >= min_rows]
        if len(buffers) == 1:
            return draw(buffers[0], batch_size)
        sizes = np.array([len(buffer) for buffer in buffers], np.float64)
        counts = np.bincount(rng.choice(len(buffers), batch_size, p=sizes / sizes.sum()),
                             minlength=len(buffers))
        parts = [draw(buffer, int(count)) for buffer, count in zip(buffers, counts, strict=True) if count]
        return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}

    def ready(self, min_rows: int) -> bool:
        return any(len(buffer) >= min_rows for buffer in self.buffers)

    def restart(self) -> None:
        """Every env's next step starts an episode (after the training envs were reset)."""
        self.episode_started = [True] * len(self.buffers)

    def state_dict(self) -> dict[str, Any]:
        return {"buffers": [buffer.state_dict() for buffer in self.buffers],
                "episode_started": list(self.episode_started)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["buffers"]) != len(self.buffers):
            raise CheckpointError(f"this checkpoint holds {len(state['buffers'])} envs' replay, this agent "
                                  f"steps {len(self.buffers)} envs")
        for buffer, saved in zip(self.buffers, state["buffers"], strict=True):
            buffer.load_state_dict(saved)
        self.episode_started = list(state["episode_started"])


_BUFFER_FILES: contextvars.ContextVar[BufferFiles | None] = contextvars.ContextVar(
    "buffer_files", default=None)


def buffers_beside(checkpoint: str | Path) -> Path:
    """Where a checkpoint saved with its buffers beside it keeps their chunk files."""
    return Path(f"{checkpoint}.buffers")


@contextmanager
def files_beside(directory: str | Path) -> Iterator[BufferFiles]:
    """Replay buffers saved or loaded inside keep their rows in chunk files under `directory`."""
    files = BufferFiles(Path(directory))
    token = _BUFFER_FILES.set(files)
    try:
        yield files
    finally:
        _BUFFER_FILES.reset(token)


class BufferFiles:
    """A directory of buffers' chunk files: `<uid>/<chunk>-<version>.npz`, each holding a chunk's rows."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.written: set[Path] = set()  # by this save: every file its checkpoint refers to

    def write(self, buffer: RingBuffer) -> dict[str, Any]:
        """Write the chunks of `buffer` not already here in their current version; return its manifest."""
        rows_per_chunk = buffer.chunk_rows
        # a buffer not yet full has rows only below its size: the rest of the last chunk is not written
        filled = buffer.capacity if buffer.size == buffer.capacity else buffer.size
        used = -(-filled // rows_per_chunk)
        chunks = {}
        for chunk in range(used):
            name = f"{buffer.uid}/{chunk:06d}-{int(buffer.chunk_versions[chunk])}.npz"
            path = self.directory / name
            if not path.is_file():
                rows = slice(chunk * rows_per_chunk, min((chunk + 1) * rows_per_chunk, filled))
                _write_npz(path, {key: value[rows] for key, value in buffer.data.items()})
            self.written.add(path)
            chunks[chunk] = name
        return {"uid": buffer.uid, "position": buffer.position, "size": buffer.size,
                "chunk_rows": rows_per_chunk, "writes": buffer.writes, "chunks": chunks}

    def read(self, buffer: RingBuffer, manifest: dict[str, Any]) -> None:
        """Fill `buffer` from the chunk files `manifest` lists, each row where it sat."""
        rows_per_chunk = manifest["chunk_rows"]
        buffer.clear()
        for chunk, name in manifest["chunks"].items():
            path = self.directory / name
            try:
                with np.load(path, allow_pickle=False) as saved:
                    start = int(chunk) * rows_per_chunk
                    for key, value in buffer.data.items():
                        part = saved[key]
                        if part.shape[1:] != value.shape[1:] or start + len(part) > buffer.capacity:
                            raise ValueError(f"{key} of shape {part.shape} does not fit the buffer")
                        value[start : start + len(part)] = part
            except (OSError, KeyError, ValueError) as error:
                raise CheckpointError(f"replay buffer file {path} is missing or damaged "
                                      f"({type(error).__name__}: {error})") from None
        buffer.position, buffer.size = manifest["position"], manifest["size"]
        # The files hold these rows as they are now: the next save to the same place writes none of them.
        buffer.uid, buffer.writes = manifest["uid"], manifest["writes"]
        buffer.chunk_rows = rows_per_chunk  # as the files were cut (an older version may have cut otherwise)
        buffer.chunk_versions = np.zeros(-(-buffer.capacity // rows_per_chunk), np.int64)
        for chunk, name in manifest["chunks"].items():
            buffer.chunk_versions[int(chunk)] = int(name.rsplit("-", 1)[1].removesuffix(".npz"))

    def keep_only(self, paths: set[Path]) -> None:
        """Remove chunk files (and emptied buffer folders) that `paths`, the latest checkpoint's, leave
        out."""
        if not self.directory.is_dir():
            return
        for folder in self.directory.iterdir():
            if not folder.is_dir():
                continue
            for file in folder.glob("*.npz"):
                if file not in paths:
                    file.unlink(missing_ok=True)
            if not any(folder.iterdir()):
                folder.rmdir()


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An .npz written whole or not at all (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
