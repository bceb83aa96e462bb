"""What every benchmark writes beside its numbers: the command, the machine, the date."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import importlib.metadata

    import numpy
    import torch

    record = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "torch": torch.__version__,
        "platform": platform.platform(),
    }
    for package in ("gymnasium", "mujoco", "stable-baselines3"):  # what the benchmarks' numbers also depend on
        try:
            record[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return record


def write_results(name: str, data: dict) -> Path:
    """Write benchmarks/results/<name>.json with the command that made it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": name,
        "command": "python " + shlex.join([f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine(),
        **data,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(record, indent=2))
    print(f"results: {path}")
    return path


def load_result(name: str) -> dict:
    """benchmarks/results/<name>.json; a missing or unreadable file ends the script with one line."""
    path = RESULTS / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        sys.exit(f"error: cannot read results {path}: {error}")


def read_results(names: list[str], into: str) -> tuple[list[dict], dict[str, str]]:
    """Earlier results to merge (one seed per process) into the result `into`: the records, and each one's
    command by name. Merging a result into itself would overwrite the command it was made with."""
    if into in names:
        raise SystemExit(f"--merge {' '.join(names)}: cannot merge {into!r} into itself; pick another --name")
    parts = [load_result(name) for name in names]
    return parts, {name: part["command"] for name, part in zip(names, parts, strict=True)}


def merged_runs(parts: list[dict], names: list[str], key: str) -> list[dict]:
    """The per-seed records under `key` of every part, in order. A seed in two parts would count twice in every
    median, so it is refused, naming both results."""
    origin: dict[int, str] = {}
    records = []
    for name, part in zip(names, parts, strict=True):
        for record in part.get(key, []):
            if record["seed"] in origin:
                raise SystemExit(f"--merge: seed {record['seed']} of {key!r} is in both {origin[record['seed']]!r} "
                                 f"and {name!r}; merge results of disjoint seeds")
            origin[record["seed"]] = name
            records.append(record)
    return records


def shared_settings(parts: list[dict], names: list[str], keys: tuple[str, ...]) -> dict:
    """The settings `keys` the parts were run with, refused unless every part has the same ones (a config that
    names device=cpu, the default here, counts as one that names none)."""

    def setting(part, key):
        value = part.get(key)
        return {k: v for k, v in value.items() if (k, v) != ("device", "cpu")} if isinstance(value, dict) else value

    for key in keys:
        for name, part in zip(names[1:], parts[1:], strict=True):
            if setting(part, key) != setting(parts[0], key):
                raise SystemExit(f"--merge: {key!r} differs between {names[0]!r} ({parts[0].get(key)!r}) and "
                                 f"{name!r} ({part.get(key)!r}); only runs of the same settings merge")
    return {key: parts[0].get(key) for key in keys}


def describe_device(device) -> str:
    """The GPU's name, or "cpu", for a results record."""
    import torch

    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def gflops_rate(matmul, flops: int, reps: int = 20) -> float:
    """GFLOP/s of `matmul()` (a call of `flops` floating-point operations), after one warm-up call."""
    matmul()
    started = time.perf_counter()
    for _ in range(reps):
        matmul()
    return flops / ((time.perf_counter() - started) / reps) / 1e9


def matmul_rate(batch: int, rows: int, inner: int, cols: int, reps: int = 20) -> float:
    """GFLOP/s of float32 batched matmuls `(batch, rows, inner) @ (batch, inner, cols)` on this machine, at the
    current thread count: the rate a compute floor is taken at."""
    import torch

    x, w = torch.randn(batch, rows, inner), torch.randn(batch, inner, cols)
    return gflops_rate(lambda: torch.bmm(x, w), 2 * batch * rows * inner * cols, reps)


def first_index(values, condition) -> int | None:
    """1-based position of the first value meeting `condition`, None if none does."""
    return next((i + 1 for i, v in enumerate(values) if condition(v)), None)
