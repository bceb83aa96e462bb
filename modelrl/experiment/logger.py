"""Metrics of a run: `metrics.csv` (one row per evaluation) and TensorBoard scalars under `tb/`."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from modelrl.checkpoint import atomic_write


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        # an empty cell (a metric that row lacks) stays absent, so a resumed run rewrites it empty
        return [{k: _number(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def _number(text: str) -> float:
    """Counts stay integers, so a resumed run rewrites its earlier rows as they were written."""
    return int(text) if text.lstrip("-").isdigit() else float(text)


class MetricsLogger:
    """Holds the rows of a run and rewrites `metrics.csv` whole (atomically) on each new row.

    Rewriting keeps the file valid when later rows bring new columns, and a resumed run can drop the rows
    logged after its checkpoint.
    """

    def __init__(self, run_dir: str | Path, rows: list[dict[str, float]] | None = None,
                 tensorboard: bool = True):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "metrics.csv"
        self.rows = list(rows or [])
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.run_dir / "tb"))
        if self.rows:
            self._write_csv()

    def log(self, row: dict[str, float]) -> None:
        self.rows.append(dict(row))
        self._write_csv()
        if self._writer is not None:
            step = int(row["env_steps"])
            for key, value in row.items():
                if key != "env_steps" and isinstance(value, (int, float)) and math.isfinite(value):
                    self._writer.add_scalar(key, value, global_step=step)
            self._writer.flush()

    def _write_csv(self) -> None:
        columns = list(dict.fromkeys(key for row in self.rows for key in row))
        # A temporary file of its own (not a fixed name) so that two writers never share one.
        with atomic_write(self.path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(self.rows)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
