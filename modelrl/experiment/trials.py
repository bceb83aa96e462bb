"""Trials, the ordinary training runs a comparison or a sweep is made of, and a local pool to run them.

A trial is one agent config x env x seed, trained into a run directory of its own. `run_trial` starts it,
or continues it from its last checkpoint when its directory holds one: a trial retried after its process
died (Ray Tune's failure handling) or left unfinished by a killed sweep picks up where its last evaluation
left it, not from step 0. `run_in_processes` runs trials in a local process pool (compare's way, no Ray
needed); a sweep on Ray (modelrl.experiment.sweep) runs the same `run_trial` inside Tune.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import multiprocessing
import os
import shutil
import socket
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from modelrl.checkpoint import atomic_write
from modelrl.errors import ModelRLError
from modelrl.experiment.logger import read_metrics
from modelrl.experiment.runner import CHECKPOINT, RUN_FILES, RowCallback, resume, train
from modelrl.threads import set_threads

try:
    import fcntl
except ImportError:  # Windows: no lock (sweeps there run on one machine, one driver at a time)
    fcntl = None


@dataclasses.dataclass
class Trial:
    label: str  # the experiment this trial is one seed of
    agent_id: str
    env_id: str
    seed: int
    total_steps: int
    eval_every: int
    eval_episodes: int
    run_dir: str
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    tensorboard: bool = False
    threads: int = 1
    record_dir: str | None = None  # where its outcome record is written (a sweep's trials/)

    @property
    def name(self) -> str:
        return Path(self.run_dir).name

    @property
    def record_path(self) -> Path | None:
        return None if self.record_dir is None else Path(self.record_dir) / f"{self.name}.json"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def read_record(path: Path | None) -> dict[str, Any] | None:
    """A trial's outcome record, or None when there is none (or only a torn one)."""
    if path is None or not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) and "status" in record else None


def write_record(trial: Trial, record: dict[str, Any]) -> dict[str, Any]:
    record = {"trial": trial.name, "label": trial.label, "agent": trial.agent_id, "env": trial.env_id,
              "seed": trial.seed, "run_dir": trial.run_dir, **record}
    if trial.record_path is not None:
        trial.record_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(trial.record_path, "w", encoding="utf-8") as f:
            f.write(json.dumps(record, indent=2, default=str))
    return record


def _clear_unstarted(run_dir: Path) -> None:
    """A trial killed before its first checkpoint left a run that cannot be resumed: only the files a run
    writes go, so it starts again in place."""
    if (run_dir / "config.yaml").exists() and not (run_dir / CHECKPOINT).is_file():
        for name in RUN_FILES:
            path = run_dir / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()


def run_trial(trial: Trial, on_row: RowCallback | None = None, context: dict[str, Any] | None = None
              ) -> dict[str, Any]:
    """Train `trial`, or continue it from its checkpoint; write and return its outcome record (with
    `context`, e.g. the Ray node it ran on).

    The record's status is 'done' with the last metrics row, or 'failed' with the one-line message of the
    user error that stopped it (retrying would fail alike). Anything else propagates: a dying process or a
    bug, which the caller may retry.
    """
    set_threads(trial.threads)
    with _exclusive(trial):
        return _run_trial(trial, on_row, context)


@contextlib.contextmanager
def _exclusive(trial: Trial):
    """Hold the trial's lock (in its record directory) while it runs: a worker orphaned by a killed sweep
    lives on for a few seconds, and a resumed sweep's retry must not write the same run meanwhile. The
    lock goes with its holder's process, however that ends."""
    if trial.record_path is None or fcntl is None:
        yield
        return
    trial.record_path.parent.mkdir(parents=True, exist_ok=True)
    with open(trial.record_path.with_suffix(".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # waits for an earlier holder to finish or die
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")  # which process runs the trial, for a person (or a fault test)
        lock.flush()
        yield


def _run_trial(trial: Trial, on_row: RowCallback | None, context: dict[str, Any] | None) -> dict[str, Any]:
    run_dir = Path(trial.run_dir)
    started = time.perf_counter()
    resumed_from = None
    try:
        if (run_dir / CHECKPOINT).is_file():
            rows = read_metrics(run_dir / "metrics.csv")
            resumed_from = rows[-1]["env_steps"] if rows else 0
            resume(run_dir, progress=False, tensorboard=trial.tensorboard, on_row=on_row)
        else:
            _clear_unstarted(run_dir)
            train(trial.agent_id, trial.env_id, total_steps=trial.total_steps, seed=trial.seed,
                  overrides=trial.overrides, env_kwargs=trial.env_kwargs, eval_every=trial.eval_every,
                  eval_episodes=trial.eval_episodes, run_dir=run_dir, label=trial.label, progress=False,
                  tensorboard=trial.tensorboard, on_row=on_row)
        rows = read_metrics(run_dir / "metrics.csv")
        record = {"status": "done", "last_row": rows[-1] if rows else None}
    except ModelRLError as error:
        record = {"status": "failed", "error": one_line(error)}
    record.update(seconds=time.perf_counter() - started, resumed_from=resumed_from, host=socket.gethostname(),
                  pid=os.getpid(), **(context or {}))
    return write_record(trial, record)


def pool_size(jobs: int | None, trials: int) -> int:
    """Processes for `trials` trials: `jobs` (default: one per core), never more than there are trials."""
    return max(1, min(jobs or os.cpu_count() or 1, trials))


def _run_in_process(trial: dict[str, Any]) -> dict[str, Any]:
    return run_trial(Trial(**trial))


def run_in_processes(trials: list[Trial], *, jobs: int | None = None, progress: bool = True,
                     description: str = "trials", stop_on_failure: bool = False) -> list[dict[str, Any]]:
    """Run `trials` in `jobs` local processes (default: one per core); their records, in finishing order.

    With `stop_on_failure`, the first failed trial raises its message: trials not yet started never start,
    the running ones finish (a process cannot be stopped cleanly).
    """
    if not trials:
        return []
    workers = pool_size(jobs, len(trials))
    records = []
    # Workers start as fresh interpreters: a forked one inherits this process's OpenMP pool and CUDA state
    # and can hang on its first parallel op (seen with two threads and an agent built here first).
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_run_in_process, trial.to_dict()): trial for trial in trials}
        iterator = as_completed(futures)
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(iterator, total=len(futures), desc=description, unit="run")
        try:
            for future in iterator:
                record = future.result()
                if stop_on_failure and record["status"] == "failed":
                    trial = futures[future]
                    raise ModelRLError(f"run '{trial.label}' seed {trial.seed} failed, so the comparison "
                                       f"stops: {record['error']}")
                records.append(record)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return records
