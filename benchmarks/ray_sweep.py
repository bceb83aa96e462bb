"""(33a-c) Sweeps on Ray: throughput against compare's process pool, a two-node cluster, and faults.

a. `throughput`: the same 2 agents x 2 envs x 3 seeds (dqn and deep-dyna-q on CartPole-v1 and Acrobot-v1)
   run by `modelrl sweep` on a local Ray and by compare's process pool (the sweep's `backend: processes`,
   the same `run_in_processes`), in alternating rounds: total wall time, the time a local Ray takes to
   start and stop with nothing run, and Ray's overhead per trial. Target: Ray within 10% of the pool.
b. `cluster`: a head and a worker node (Ray's test cluster utilities: two raylets on this machine, one CPU
   each); a sweep given the head's address places trials on both nodes, and its curves equal a local run's.
c. `faults`: for a tabular sweep (q-learning and dyna-q on DynaMaze-v0) and a torch one (dqn on
   CartPole-v1): an undisturbed sweep; one where the worker of a trial that has a checkpoint but no outcome
   yet (its lock file names the process) is killed with SIGKILL (Tune retries it from its checkpoint); and
   one whose driver (`modelrl sweep`) is killed with SIGKILL, then continued with `modelrl sweep --resume`.
   Every trial's metrics rows (all but wall time) and, for the tabular agents, final Q-tables must equal
   the undisturbed sweep's.

    OMP_NUM_THREADS=1 python benchmarks/ray_sweep.py [--parts throughput cluster faults] [--rounds 2]
    OMP_NUM_THREADS=1 python benchmarks/ray_sweep.py --quick     # a tenth of the steps, one round
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import yaml
from common import RESULTS, results_name, spread, write_results

from modelrl.checkpoint import load_checkpoint
from modelrl.experiment.sweep import sweep

MODELRL = [sys.executable, "-m", "modelrl.cli"]
THROUGHPUT_SPEC = {"envs": ["CartPole-v1", "Acrobot-v1"], "agents": ["dqn", "deep-dyna-q"],
                   "seeds": [0, 1, 2], "steps": 3000, "eval_every": 1000, "eval_episodes": 5}
CLUSTER_SPEC = {"envs": ["DynaMaze-v0", "GridWorld-v0"], "agents": ["q-learning", "dyna-q"], "seeds": [0, 1],
                "steps": 3000, "eval_every": 500, "eval_episodes": 2}
FAULT_SPECS = {
    "tabular": {"env": "DynaMaze-v0", "agents": ["q-learning", "dyna-q"], "seeds": [0, 1, 2], "steps": 30000,
                "eval_every": 1000, "eval_episodes": 2},
    "torch": {"env": "CartPole-v1", "agents": ["dqn"], "seeds": [0, 1, 2], "steps": 8000, "eval_every": 1000,
              "eval_episodes": 3},
}


def write_spec(folder: Path, name: str, spec: dict) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def curves(out: Path) -> dict[str, list[list[str]]]:
    """Each trial's metrics rows as written, less the wall-time column."""
    result = {}
    for csv in sorted(out.glob("runs/*/metrics.csv")):
        rows = [line.split(",") for line in csv.read_text().splitlines()]
        keep = [i for i, name in enumerate(rows[0]) if name != "wall_time"]
        result[csv.parent.name] = [[row[i] for i in keep] for row in rows]
    return result


def q_tables(out: Path) -> dict[str, np.ndarray]:
    tables = {}
    for checkpoint in sorted(out.glob("runs/*/checkpoints/last.pt")):
        state = load_checkpoint(checkpoint).get("agent", {})
        if "q" in state:
            tables[checkpoint.parent.parent.name] = np.asarray(state["q"])
    return tables


def same_results(a: Path, b: Path) -> dict:
    ca, cb = curves(a), curves(b)
    qa, qb = q_tables(a), q_tables(b)
    return {"trials_compared": len(ca), "curves_equal": ca == cb and len(ca) > 0,
            "q_tables_compared": len(qa),
            "q_tables_bit_identical": sorted(qa) == sorted(qb)
            and all(np.array_equal(qa[k], qb[k]) for k in qa)}


def throughput(work: Path, rounds: int) -> dict:
    spec = write_spec(work, "throughput", THROUGHPUT_SPEC)
    times: dict[str, list[float]] = {"ray": [], "processes": []}
    per_trial: dict[str, list[float]] = {"ray": [], "processes": []}
    ray_start_stop: list[float] = []
    for r in range(rounds):
        ray_start_stop.append(start_and_stop_ray())
        for backend in ("ray", "processes") if r % 2 == 0 else ("processes", "ray"):
            out = work / f"throughput-{backend}-{r}"
            started = time.perf_counter()
            result = sweep(spec, out, backend=backend, progress=False)
            times[backend].append(time.perf_counter() - started)
            assert result["trials"]["done"] == result["trials"]["total"], result["trials"]
            per_trial[backend].append(float(np.mean([rec["seconds"] for rec in result_records(out)])))
            print(f"round {r} {backend}: {times[backend][-1]:.1f} s for {result['trials']['total']} trials",
                  flush=True)
    trials = len(THROUGHPUT_SPEC["envs"]) * len(THROUGHPUT_SPEC["agents"]) * len(THROUGHPUT_SPEC["seeds"])
    ratios = [ray / pool for ray, pool in zip(times["ray"], times["processes"], strict=True)]
    return {"spec": THROUGHPUT_SPEC, "trials": trials, "wall_s": {k: spread(v) for k, v in times.items()},
            "wall_s_rounds": times, "trial_s_mean": {k: spread(v) for k, v in per_trial.items()},
            "ray_over_pool": spread(ratios), "ray_init_and_shutdown_s": spread(ray_start_stop),
            "ray_overhead_per_trial_s": spread([(ray - pool) / trials for ray, pool in
                                                zip(times["ray"], times["processes"], strict=True)]),
            "target": "ray within 10% of the pool (ratio <= 1.10)",
            "met": float(np.median(ratios)) <= 1.10}


def start_and_stop_ray() -> float:
    """Seconds to start a local Ray and shut it down again, with nothing run: a sweep's fixed cost."""
    import logging

    import ray

    started = time.perf_counter()
    ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    ray.shutdown()
    return time.perf_counter() - started


def result_records(out: Path) -> list[dict]:
    import json

    return [json.loads(p.read_text()) for p in sorted(out.glob("trials/*.json"))]


def cluster(work: Path) -> dict:
    import ray
    from ray.cluster_utils import Cluster

    spec = write_spec(work, "cluster", CLUSTER_SPEC)
    local = sweep(spec, work / "cluster-local", backend="processes", progress=False)
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    nodes.add_node(num_cpus=1)
    nodes.wait_for_nodes()
    try:
        ray.init(address=nodes.address, log_to_driver=False)  # joined here, so the nodes can be listed after
        started = time.perf_counter()
        remote = sweep(spec, work / "cluster-two-nodes", address=nodes.address, progress=False)
        elapsed = time.perf_counter() - started
        alive = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
    finally:
        ray.shutdown()
        nodes.shutdown()
    placed = {}
    for record in result_records(work / "cluster-two-nodes"):
        placed[record["node"]] = placed.get(record["node"], 0) + 1
    return {"spec": CLUSTER_SPEC, "nodes": len(alive), "trials_per_node": sorted(placed.values()),
            "trials": remote["trials"], "local_trials": local["trials"], "wall_s": elapsed,
            **same_results(work / "cluster-two-nodes", work / "cluster-local"),
            "met": len(placed) == 2 and curves(work / "cluster-two-nodes") == curves(work / "cluster-local")}


def ray_workers() -> list[int]:
    """Processes of Tune's function trainables (the trial workers)."""
    listing = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    return [int(line.split()[0]) for line in listing.splitlines()[1:] if "ImplicitFunc" in line]


def mid_run(out: Path) -> int | None:
    """The process of a trial that has a checkpoint but no outcome yet (its lock file names it), if any."""
    for run in out.glob("runs/*"):
        lock = out / "trials" / f"{run.name}.lock"
        if (run / "checkpoints" / "last.pt").is_file() and not lock.with_suffix(".json").exists():
            text = lock.read_text().strip() if lock.is_file() else ""
            if text.isdigit():
                return int(text)
    return None


def one_done_one_running(out: Path) -> bool:
    return mid_run(out) is not None and any((out / "trials").glob("*.json"))


def wait_for(condition, process: subprocess.Popen, timeout: float = 600) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if condition():
            return True
        time.sleep(0.2)
    return False


def faults(work: Path, only: list[str] | None = None) -> dict:
    report = {}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name, spec_dict in FAULT_SPECS.items():
        if only and name not in only:
            continue
        spec = write_spec(work, f"faults-{name}", spec_dict)
        calm = work / f"{name}-calm"
        sweep(spec, calm, progress=False)
        # a trial's worker killed mid-run
        hit = work / f"{name}-worker-killed"
        driver = subprocess.Popen([*MODELRL, "sweep", str(spec), "--out", str(hit), "--no-progress"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        killed = None
        if wait_for(lambda out=hit: mid_run(out) in ray_workers(), driver):
            killed = mid_run(hit)
            os.kill(killed, signal.SIGKILL)
        driver.wait()
        records = result_records(hit)
        worker = {"killed_pid": killed, "driver_exit": driver.returncode,
                  "resumed_from": sorted(r["resumed_from"] for r in records if r.get("resumed_from")),
                  "statuses": sorted({r["status"] for r in records}), **same_results(hit, calm)}
        # the driver killed mid-sweep, then resumed
        cut = work / f"{name}-driver-killed"
        driver = subprocess.Popen([*MODELRL, "sweep", str(spec), "--out", str(cut), "--no-progress"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        stopped_at = None
        if wait_for(lambda out=cut: one_done_one_running(out), driver):
            stopped_at = len(list((cut / "trials").glob("*.json")))
            driver.send_signal(signal.SIGKILL)
        driver.wait()
        time.sleep(2)  # the killed driver's Ray processes go down with it
        leftover = ray_workers()
        resumed = subprocess.run([*MODELRL, "sweep", "--resume", str(cut), "--no-progress"], env=env,
                                 capture_output=True, text=True, check=False)
        records = result_records(cut)
        report[name] = {
            "spec": spec_dict,
            "worker_killed": worker,
            "driver_killed": {
                "trials_done_when_killed": stopped_at, "ray_workers_left_after_kill": len(leftover),
                "resume_exit": resumed.returncode, "resume_stderr": resumed.stderr.strip()[-300:],
                "resumed_from": sorted(r["resumed_from"] for r in records if r.get("resumed_from")),
                **same_results(cut, calm)},
        }
        print(name, report[name], flush=True)
    report["met"] = all(report[n][k]["curves_equal"] for n in report for k in ("worker_killed",
                                                                                "driver_killed"))
    return report


def plot(record: dict, path: Path) -> None:
    data = record.get("throughput")
    if not data:
        return
    fig, ax = plt.subplots(figsize=(5, 3.5))
    names = ["processes", "ray"]
    medians = [data["wall_s"][n]["median"] for n in names]
    errors = [[m - data["wall_s"][n]["min"] for m, n in zip(medians, names)],
              [data["wall_s"][n]["max"] - m for m, n in zip(medians, names)]]
    ax.bar(["compare's process pool", "modelrl sweep on Ray"], medians, yerr=errors, capsize=4)
    ax.set_ylabel("wall time (s), median and range of rounds")
    ax.set_title(f"{data['trials']} trials: Ray / pool = {data['ray_over_pool']['median']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["throughput", "cluster", "faults"],
                        choices=["throughput", "cluster", "faults"])
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of the throughput part")
    parser.add_argument("--steps", type=int, help="env steps per throughput trial (default "
                        f"{THROUGHPUT_SPEC['steps']}; evaluations every third of them)")
    parser.add_argument("--name", type=results_name, default="ray_sweep")
    parser.add_argument("--faults", nargs="+", choices=list(FAULT_SPECS), help="only these fault sweeps")
    parser.add_argument("--keep", action="store_true", help="keep the sweeps' directories (printed)")
    parser.add_argument("--quick", action="store_true", help="one round of a tenth of the steps")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.name = 1, f"{args.name}_quick"
        for spec in (THROUGHPUT_SPEC, CLUSTER_SPEC, *FAULT_SPECS.values()):
            spec["steps"] //= 10
            spec["eval_every"] = max(1, spec["eval_every"] // 10)
    if args.steps:
        THROUGHPUT_SPEC.update(steps=args.steps, eval_every=max(1, args.steps // 3))
    work = Path(tempfile.mkdtemp(prefix="modelrl-ray-sweep-"))
    record: dict = {}
    try:
        if "throughput" in args.parts:
            record["throughput"] = throughput(work, args.rounds)
        if "cluster" in args.parts:
            record["cluster"] = cluster(work)
        if "faults" in args.parts:
            record["faults"] = faults(work, args.faults)
    finally:
        if args.keep:
            print(f"sweeps kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    write_results(args.name, record)
    plot(record, RESULTS / f"{args.name}.png")


if __name__ == "__main__":
    main()
