"""How many CPU threads torch uses in this process: chosen by modelrl, not inherited.

torch starts one thread per core. modelrl's networks are small (a few hundred units, batches of a few
hundred), so a second thread gains little, and on a machine shared with other jobs the threads wait on
each other: on a loaded 2-core machine the test suite took 19.6 minutes with torch's two threads and 2.1
with one. modelrl therefore sets a default the first time it builds or loads an agent: half the cores this
process may use, at least 1 and at most 4. A user's own choice wins: `threads=` (API), `--threads` (CLI),
`modelrl.set_threads(n)`, `OMP_NUM_THREADS` in the environment, or `torch.set_num_threads` called before.
modelrl also flushes denormal floats to zero on the CPU (`flush_denormals`).
"""

from __future__ import annotations

import os

import torch

from modelrl.errors import ConfigError

MAX_DEFAULT_THREADS = 4
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")

_torch_default = torch.get_num_threads()  # what torch chose at import; a different value later is the user's
_chosen = False


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and `taskset` narrow)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def default_threads() -> int:
    return max(1, min(MAX_DEFAULT_THREADS, usable_cores() // 2))


def check_threads(threads: int | None) -> None:
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads must be a whole number >= 1, got {threads!r}")


def flush_denormals() -> None:
    """Denormal floats flushed to zero on the CPU. Weight decay drives unused weights towards zero, and the
    CPU's arithmetic on denormals is many times slower: MuZero's TicTacToe updates slowed 6x over 8,000 moves,
    11,601 of its weights denormal by then."""
    torch.set_flush_denormal(True)


def set_threads(threads: int) -> int:
    """Use `threads` CPU threads for torch's operations in this process from now on; returns it."""
    global _chosen
    check_threads(threads)
    torch.set_num_threads(threads)
    flush_denormals()
    _chosen = True
    return threads


def choose_threads(threads: int | None = None) -> int:
    """`set_threads(threads)` when given; otherwise modelrl's default, unless this process chose already."""
    global _chosen
    if threads is not None:
        return set_threads(threads)
    if not _chosen:
        _chosen = True
        flush_denormals()
        inherited = any(os.environ.get(name) for name in _THREAD_VARIABLES)
        if not inherited and torch.get_num_threads() == _torch_default:
            torch.set_num_threads(default_threads())
    return torch.get_num_threads()
