"""Refusing sizes that cannot fit in memory, before allocating them.

NumPy's `zeros` takes pages lazily, so a buffer of 10^12 rows fails at an arbitrary later moment (or the
kernel kills the process) rather than at construction; a size checked against the machine's memory fails
at once, with the size it would need.
"""

from __future__ import annotations

import os

from modelrl.errors import ConfigError


def machine_memory() -> int | None:
    """Physical memory in bytes, None where the platform does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def format_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if count < 1024 or unit == "PiB":
            return f"{count:.3g} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1024
    raise AssertionError("unreachable")


def require_memory(nbytes: int, what: str) -> None:
    """ConfigError when `nbytes` exceed this machine's physical memory; `what` names the setting."""
    total = machine_memory()
    if total is not None and nbytes > total:
        raise ConfigError(f"{what} needs {format_bytes(nbytes)} of memory, more than this machine's "
                          f"{format_bytes(total)}; choose a smaller size")
