"""What every benchmark writes beside its numbers (the command, commit, machine, date), and the one protocol
every sample-efficiency study ("real env steps until the return reaches a threshold") is measured by: see
`Protocol`, `Ours`, `SB3`, `evaluate_on_seeds`, `steps_to_threshold`, `summarize` and `study_main` below.
`python benchmarks/common.py` checks the protocol on a small DQN run.

Long studies outlive their process: our agents' curves in progress are saved after every evaluation under
`--checkpoints` (default `runs/studies/NAME/`), and the same command run again continues each from its last
evaluation (`resumed_at` in the curve says where; add `--resume` to keep the curves results/NAME.json
already holds: without it, a results file of the same protocol that was cut short is refused rather than
started over). Curves of other settings are never continued."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NoReturn

import matplotlib
import numpy as np

matplotlib.use("Agg")

RESULTS = Path(__file__).resolve().parent / "results"
STUDY_CHECKPOINTS = RESULTS.parent.parent / "runs" / "studies"  # git-ignored


def fail(message: str) -> NoReturn:
    """Bad input to a benchmark (a results file to merge or resume that does not fit, an unknown learner):
    one line on stderr and exit 2, as the `modelrl` CLI does, never a traceback."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def results_name(name: str) -> str:
    """The type of every `--name` and `--merge` option: a results name stays inside benchmarks/results
    (`parts/x` is fine; `/tmp/x` or `../x` would write, or read, a file elsewhere)."""
    # lexical, not resolved: a worktree's results/parts may be a link to another checkout's
    if not os.path.normpath(RESULTS / name).startswith(str(RESULTS) + os.sep):
        raise argparse.ArgumentTypeError(f"{name!r} is not a name inside benchmarks/results (e.g. parts/x)")
    return name


MATMUL_FLAGS = ("avx2", "avx512f", "avx512_bf16")  # and every amx_* flag


def cpu_model_and_flags() -> tuple[str, list[str]]:
    """The CPU's model name and which of the flags that decide matmul speed (AVX2, AVX-512, bfloat16, AMX) it
    has: two machines with the same model name can differ in them (VMs hide some)."""
    cpu, flags = "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return cpu, sorted(flag for flag in flags if flag in MATMUL_FLAGS or flag.startswith("amx"))


def machine() -> dict:
    import importlib.metadata

    import numpy
    import torch

    cpu, flags = cpu_model_and_flags()
    record = {
        "cpu": cpu,
        "cpu_flags": flags,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "torch": torch.__version__,
        "platform": platform.platform(),
    }
    # what the benchmarks' numbers also depend on
    for package in ("gymnasium", "mujoco", "stable-baselines3", "ray"):
        try:
            record[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return record


def git_state() -> dict:
    """The commit the benchmarks run from and whether the tree differs from it. Results written by earlier
    runs (untracked files under benchmarks/results/) do not count as a change to the code."""
    root = Path(__file__).resolve().parent.parent

    def git(*args):
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
        # porcelain lines start with a space
        return done.stdout.rstrip("\n") if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None, "note": f"{root} is not a git checkout"}
    changes = [line for line in (git("status", "--porcelain") or "").splitlines()
               if not line[3:].startswith("benchmarks/results/")]
    return {"commit": commit, "dirty": bool(changes), "changes": changes[:20]}


_SEGMENT: dict | None = None


def this_segment() -> dict:
    """This process's record: command, date, commit, machine. Taken once, at the first call, so the state of
    the tree is the one the run started from (before it wrote any results)."""
    global _SEGMENT
    if _SEGMENT is None:
        _SEGMENT = {"id": f"{platform.node()}-{os.getpid()}-{time.time():.0f}",
                    "command": "python " + shlex.join([f"benchmarks/{Path(sys.argv[0]).name}",
                                                       *sys.argv[1:]]),
                    "date": time.strftime("%Y-%m-%d %H:%M:%S"), "git": git_state(), "machine": machine()}
    return _SEGMENT


def earlier_segments(record: dict) -> list[dict]:
    """The segments a record already lists; a record from before segments existed counts as one."""
    if "segments" in record:
        return list(record["segments"])
    if "command" in record:
        return [{key: record.get(key) for key in ("command", "date", "machine")}]
    return []


def write_results(name: str, data: dict) -> Path:
    """Write benchmarks/results/<name>.json with the command, commit and machine that made it.

    `data` may be a record read back from an earlier run that this one resumes: its segments are kept and
    this process's is appended, and the top-level command, date and machine stay the first segment's."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    segments = [s for s in earlier_segments(data) if s.get("id") != this_segment()["id"]] + [this_segment()]
    first = segments[0]
    record = {**data, "benchmark": name, "command": first["command"], "date": first["date"],
              "machine": first["machine"], "git": first.get("git"), "segments": segments}
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
        fail(f"cannot read results {path}: {error}")


def read_results(names: list[str], into: str) -> tuple[list[dict], dict[str, str]]:
    """Earlier results to merge (one seed per process) into the result `into`: the records, and each one's
    provenance (command, and each segment's commit and machine) by name. Merging a result into itself would
    overwrite the command it was made with."""
    if into in names:
        fail(f"--merge {' '.join(names)}: cannot merge {into!r} into itself; pick another --name")
    parts = [load_result(name) for name in names]
    return parts, {name: provenance(part) for name, part in zip(names, parts, strict=True)}


def provenance(record: dict) -> dict:
    """What a merged result keeps of each part: its command and every segment's date, commit and machine."""
    return {"command": record.get("command"), "segments": earlier_segments(record)}


def merged_runs(parts: list[dict], names: list[str], key: str) -> list[dict]:
    """The per-seed records under `key` of every part, in order. A seed in two parts would count twice in
    every median, so it is refused, naming both results."""
    origin: dict[int, str] = {}
    records = []
    for name, part in zip(names, parts, strict=True):
        for record in part.get(key, []):
            if record["seed"] in origin:
                fail(f"--merge: seed {record['seed']} of {key!r} is in both "
                     f"{origin[record['seed']]!r} "
                     f"and {name!r}; merge results of disjoint seeds")
            origin[record["seed"]] = name
            records.append(record)
    return records


def shared_settings(parts: list[dict], names: list[str], keys: tuple[str, ...]) -> dict:
    """The settings `keys` the parts were run with, refused unless every part has the same ones (a config that
    names device=cpu, the default here, counts as one that names none)."""

    def setting(part, key):
        value = part.get(key)
        return {k: v for k, v in value.items()
                if (k, v) != ("device", "cpu")} if isinstance(value, dict) else value

    for key in keys:
        for name, part in zip(names[1:], parts[1:], strict=True):
            if setting(part, key) != setting(parts[0], key):
                fail(f"--merge: {key!r} differs between {names[0]!r} ({parts[0].get(key)!r}) and "
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
    """GFLOP/s of float32 batched matmuls `(batch, rows, inner) @ (batch, inner, cols)` on this machine, at
    the current thread count: the rate a compute floor is taken at."""
    import torch

    x, w = torch.randn(batch, rows, inner), torch.randn(batch, inner, cols)
    return gflops_rate(lambda: torch.bmm(x, w), 2 * batch * rows * inner * cols, reps)


def timed_calls(call, repeats: int) -> tuple[float, list[float]]:
    """Seconds of a first call (the warm-up: caches, compilation), then of each of `repeats` more."""
    started = time.perf_counter()
    call()
    warm_up = time.perf_counter() - started
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return warm_up, times


def spread(values: list[float]) -> dict:
    """The median and range of a measurement repeated over rounds."""
    return {"median": float(np.median(values)), "min": min(values), "max": max(values)}


def value_check(row: dict) -> dict:
    """The value's error on new games and on its replay (alphazero, muzero), where a metrics row has them."""
    return {key: row[key] for key in ("value_mse_new", "value_mse_replay") if key in row}


def first_index(values, condition) -> int | None:
    """1-based position of the first value meeting `condition`, None if none does."""
    return next((i + 1 for i, v in enumerate(values) if condition(v)), None)


# ---------------------------------------------------------------------------------------------------------
# The sample-efficiency protocol, shared by every "steps until return >= threshold" study: every learner,
# ours or stable-baselines3's, is evaluated on separate episodes (never its training ones), the same number,
# at the same interval, from the same reset seeds; the threshold counts as reached at the first evaluation
# from which the mean return holds for HOLD consecutive evaluations; a seed that never gets there counts as
# later than every seed that did; each ratio of medians gets a bootstrap interval over seeds.

EVAL_EPISODES = 10
HOLD = 2  # consecutive evaluations at or above the threshold: one lucky evaluation is not "reached"
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_LEVEL = 0.90


@dataclass(frozen=True)
class Protocol:
    env_id: str
    threshold: float
    eval_every: int  # env steps between evaluations, the same for every learner
    episodes: int = EVAL_EPISODES
    hold: int = HOLD

    def describe(self) -> dict:
        return {**asdict(self),
                "rule": f"reached at the first of {self.hold} consecutive evaluations whose mean "
                f"return over {self.episodes} deterministic episodes is >= {self.threshold:g}; episode e of "
                "evaluation k resets with modelrl.agents.base.evaluation_seed(seed, k, e) for every learner; "
                "a seed not there by its budget counts as later than every seed that was (censored median)"}


def evaluate_on_seeds(act, env, seed: int, evaluation: int, episodes: int) -> list[float]:
    """Returns of `episodes` episodes of the policy `act(obs) -> action` on `env`, episode e reset with
    `evaluation_seed(seed, evaluation, e)`: the initial states modelrl's `agent.evaluate` uses for its
    `evaluation`-th call, so a baseline evaluated here sees the same ones as our agent of the same seed."""
    from modelrl.agents.base import DEFAULT_EVAL_MAX_STEPS, evaluation_seed

    max_steps = (env.spec.max_episode_steps if env.spec else None) or DEFAULT_EVAL_MAX_STEPS
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=evaluation_seed(seed, evaluation, episode))
        total, length, done = 0.0, 0, False
        while not done and length < max_steps:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total += float(reward)
            length += 1
            done = terminated or truncated
        returns.append(total)
    return returns


def steps_to_threshold(curve: dict, threshold: float, hold: int = HOLD) -> int | None:
    """Env steps at the first evaluation from which `hold` consecutive evaluations are >= threshold."""
    returns = curve["eval_return"]
    for i in range(len(returns) - hold + 1):
        if all(value >= threshold for value in returns[i:i + hold]):
            return curve["env_steps"][i]
    return None


class CurveRecorder:
    """One learner's learning curve under a protocol: adds evaluations, says when the run may stop."""

    def __init__(self, protocol: Protocol, label: str, seed: int):
        self.protocol, self.label, self.seed = protocol, label, seed
        self.curve = {"seed": seed, "env_steps": [], "eval_return": [], "eval_seconds": 0.0}
        self.started = time.perf_counter()

    def add(self, env_steps: int, mean_return: float, eval_seconds: float) -> None:
        self.curve["env_steps"].append(int(env_steps))
        self.curve["eval_return"].append(round(float(mean_return), 2))
        self.curve["eval_seconds"] += eval_seconds
        print(f"{self.label} seed {self.seed}: {env_steps} steps, eval return {mean_return:.1f} "
              f"({time.perf_counter() - self.started:.0f} s)", flush=True)

    def resume(self, curve: dict, seconds: float) -> None:
        """Continue a curve an earlier process saved after `seconds` of its run."""
        self.curve = {**curve, "resumed_at": [*curve.get("resumed_at", []), curve["env_steps"][-1]]}
        self.started = time.perf_counter() - seconds
        print(f"{self.label} seed {self.seed}: continued from {curve['env_steps'][-1]} steps", flush=True)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def established(self) -> bool:
        return steps_to_threshold(self.curve, self.protocol.threshold, self.protocol.hold) is not None

    def finish(self, budget: int, env_steps: int, extra: dict | None = None) -> dict:
        seconds = time.perf_counter() - self.started
        self.curve["eval_seconds"] = round(self.curve["eval_seconds"], 1)
        return {**self.curve, "budget": budget, "stopped_at": int(env_steps), "seconds": round(seconds, 1),
                "train_seconds": round(seconds - self.curve["eval_seconds"], 1), **(extra or {})}


@dataclass(frozen=True)
class Ours:
    """A modelrl agent (`make_agent(agent_id, **overrides)`), evaluated by its own `agent.evaluate`."""

    agent_id: str
    budget: int
    overrides: dict = field(default_factory=dict)

    def describe(self) -> dict:
        return {"library": "modelrl", "agent": self.agent_id, "budget": self.budget,
                "overrides": self.overrides}

    def curve(self, protocol: Protocol, seed: int, label: str, checkpoint: Path | None = None,
              full_budget: bool = False) -> dict:
        """With `checkpoint`, the agent and its curve so far are saved there after every evaluation, and a
        curve found there is continued: a study outlives the process that runs it (removed when done).
        `full_budget` runs the whole budget rather than stopping once the threshold has held."""
        import modelrl
        from modelrl.checkpoint import atomic_write

        recorder = CurveRecorder(protocol, label, seed)
        progress = None if checkpoint is None else checkpoint.with_suffix(".json")
        identity = {"protocol": asdict(protocol), "arm": self.describe(), "seed": seed}
        if progress is not None and progress.exists():
            saved = json.loads(progress.read_text())
            if saved["identity"] != identity:
                fail(f"{progress} holds a curve of other settings ({saved['identity']}); "
                     "remove it to start this one afresh")
            agent = modelrl.load(checkpoint)
            recorder.resume(saved["curve"], saved["seconds"])
        else:
            agent = modelrl.make_agent(self.agent_id, env=protocol.env_id, seed=seed, **self.overrides)
        agent.warn_if_nothing_is_learned(self.budget)  # the whole budget, not the first evaluation's chunk
        while agent.env_steps < self.budget and (full_budget or not recorder.established()):
            agent.learn(total_steps=min(protocol.eval_every, self.budget - agent.env_steps))
            started = time.perf_counter()
            value = agent.evaluate(protocol.episodes)["eval_return"]
            recorder.add(agent.env_steps, value, time.perf_counter() - started)
            if checkpoint is not None:
                agent.save(checkpoint)
                saved = {"identity": identity, "curve": recorder.curve, "seconds": recorder.elapsed()}
                with atomic_write(progress, "w") as f:
                    json.dump(saved, f)
        metrics = {k: v for k, v in agent.metrics().items() if isinstance(v, (int, float))}
        curve = recorder.finish(self.budget, agent.env_steps, {"final_metrics": metrics})
        if checkpoint is not None:
            checkpoint.unlink(missing_ok=True)
            progress.unlink(missing_ok=True)
        return curve


@dataclass(frozen=True)
class SB3:
    """A stable-baselines3 algorithm learning in one `learn(budget)` call (so its schedules keep their
    meaning), evaluated in a callback by `evaluate_on_seeds` with deterministic `predict`."""

    algorithm: str
    budget: int
    hyperparameters: dict = field(default_factory=dict)

    def describe(self) -> dict:
        return {"library": "stable-baselines3", "algorithm": self.algorithm, "budget": self.budget,
                "hyperparameters": self.hyperparameters}

    def curve(self, protocol: Protocol, seed: int, label: str, full_budget: bool = False) -> dict:
        import stable_baselines3
        from stable_baselines3.common.callbacks import BaseCallback

        import modelrl

        eval_env = modelrl.make_env(protocol.env_id)
        recorder = CurveRecorder(protocol, label, seed)
        budget = self.budget

        class Evaluate(BaseCallback):
            def _on_step(self) -> bool:
                if self.num_timesteps % protocol.eval_every and self.num_timesteps != budget:
                    return True
                started = time.perf_counter()
                returns = evaluate_on_seeds(lambda obs: self.model.predict(obs, deterministic=True)[0],
                                            eval_env, seed, len(recorder.curve["env_steps"]),
                                            protocol.episodes)
                recorder.add(self.num_timesteps, float(np.mean(returns)), time.perf_counter() - started)
                return full_budget or not recorder.established()

        model = getattr(stable_baselines3, self.algorithm)("MlpPolicy", modelrl.make_env(protocol.env_id),
                                                           seed=seed, verbose=0, device="cpu",
                                                           **self.hyperparameters)
        model.learn(budget, callback=Evaluate())
        return recorder.finish(budget, model.num_timesteps)


# --- summaries: censored medians and bootstrap intervals over seeds

def censored_array(values: list[int | None]) -> np.ndarray:
    """Steps to the threshold with a seed that never got there as inf: later than every one that did."""
    return np.array([np.inf if v is None else v for v in values], float)


def json_ratio(value: float):
    """A ratio as JSON can hold it: None when undefined, "inf" when the baseline never got there."""
    return None if np.isnan(value) else ("inf" if np.isinf(value) else round(float(value), 2))


def censored_median(values: list[int | None]) -> float:
    """Median steps, a seed that never reached the threshold (None) counting as later than every one that
    did: inf when the median itself was not reached."""
    return float(np.median(censored_array(values))) if values else np.inf


def bootstrap_ratio(baseline: list[int | None], ours: list[int | None], resamples: int = BOOTSTRAP_RESAMPLES,
                    level: float = BOOTSTRAP_LEVEL, seed: int = 0) -> dict:
    """Percentile interval of median(baseline) / median(ours), each arm's seeds resampled with replacement
    apart. Censored seeds stay censored (inf), so a resample whose ours-median is censored gives 0 and one
    whose baseline-median is censored gives inf; a resample with both censored has no ratio and is counted."""
    rng = np.random.default_rng(seed)
    base, mine = censored_array(baseline), censored_array(ours)
    base_medians = np.median(rng.choice(base, (resamples, len(base))), axis=1)
    our_medians = np.median(rng.choice(mine, (resamples, len(mine))), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = base_medians / our_medians
    defined = ratios[~np.isnan(ratios)]
    tail = (1 - level) / 2
    low, high = (np.quantile(defined, [tail, 1 - tail], method="inverted_cdf") if len(defined)
                 else (np.nan, np.nan))
    return {"level": level, "resamples": resamples, "low": json_ratio(low), "high": json_ratio(high),
            "resamples_without_ratio": int(len(ratios) - len(defined)), "method": "percentile, arms apart"}


def summarize(record: dict) -> dict:
    """Per-seed steps to the threshold, censored medians and, for each (baseline, ours) pair, the ratio of
    medians over the seeds both ran with its bootstrap interval."""
    protocol = record["protocol"]
    arms = {}
    for label, curves in record["curves"].items():
        reached = {c["seed"]: steps_to_threshold(c, protocol["threshold"], protocol["hold"]) for c in curves}
        median = censored_median(list(reached.values()))
        arms[label] = {"steps_to_threshold": reached, "median": None if np.isinf(median) else median,
                       "not_reached": [s for s, v in reached.items() if v is None],
                       "seconds": {c["seed"]: c["seconds"] for c in curves}}
        if record.get("full_budget"):  # the return at the budget, each seed's and the median
            final = {c["seed"]: c["eval_return"][-1] for c in curves if c["eval_return"]}
            arms[label]["return_at_budget"] = final
            arms[label]["median_return_at_budget"] = float(np.median(list(final.values()))) if final else None
    ratios = []
    for baseline, ours in record["comparisons"]:
        if not (arms.get(baseline) and arms.get(ours)):
            continue
        seeds = sorted(set(arms[baseline]["steps_to_threshold"]) & set(arms[ours]["steps_to_threshold"]))
        if not seeds:
            continue
        base = [arms[baseline]["steps_to_threshold"][s] for s in seeds]
        mine = [arms[ours]["steps_to_threshold"][s] for s in seeds]
        b, o = censored_median(base), censored_median(mine)
        ratio = None if np.isinf(o) else ("inf" if np.isinf(b) else round(b / o, 2))
        ratios.append({"baseline": baseline, "ours": ours, "seeds": seeds,
                       "baseline_median": None if np.isinf(b) else b,
                       "ours_median": None if np.isinf(o) else o, "ratio": ratio,
                       "note": "baseline median not reached: the ratio is at least budget / ours"
                       if ratio == "inf" else None, "interval": bootstrap_ratio(base, mine)})
    return {"arms": arms, "ratios": ratios}


# --- plot

def carried_mean(curves: list[dict]) -> tuple[list[int], list[float]]:
    """Mean over seeds at every evaluation step, a seed that stopped early (having held the threshold, or
    at its budget) counting with its last evaluation."""
    grid = sorted({s for c in curves for s in c["env_steps"]})
    means = []
    for step in grid:
        values = []
        for c in curves:
            seen = [r for s, r in zip(c["env_steps"], c["eval_return"], strict=True) if s <= step]
            if seen:
                values.append(seen[-1])
        means.append(float(np.mean(values)))
    return grid, means


def plot_returns_at_budget(record: dict, ax, title: str) -> None:
    """A full-budget study evaluated once: each arm's return at the budget, a dot per seed and a bar at the
    median."""
    summary = record["summary"]["arms"]
    labels = [label for label in record["curves"] if summary.get(label, {}).get("return_at_budget")]
    for x, label in enumerate(labels):
        finals = list(summary[label]["return_at_budget"].values())
        median = summary[label]["median_return_at_budget"]
        ax.bar(x, median, color="tab:blue", alpha=0.35, width=0.6)
        ax.scatter([x] * len(finals), finals, color="tab:blue", s=14, zorder=3)
        ax.annotate(f"{median:.0f}", (x, median), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    budget = max(c["env_steps"][-1] for curves in record["curves"].values() for c in curves if c["env_steps"])
    protocol = record["protocol"]
    seeds = sorted({c["seed"] for curves in record["curves"].values() for c in curves})
    ax.axhline(protocol["threshold"], color="black", linestyle=":", linewidth=1,
               label=f"threshold {protocol['threshold']:g}")
    ax.set(ylabel=f"eval return at {budget} steps ({protocol['episodes']} episodes)",
           xlabel=f"dots: seeds {', '.join(map(str, seeds))}; bars: median",
           title=f"{title}\nthe return after the whole budget")
    ax.legend(fontsize=7)


def plot_curves(record: dict, ax, title: str, log_x: bool) -> None:
    """Each arm's evaluations over real env steps: every seed's, and their mean."""
    import matplotlib.pyplot as plt

    summary = record["summary"]["arms"]
    for (label, curves), color in zip(record["curves"].items(), plt.cm.tab10.colors, strict=False):
        if not curves:
            continue
        for curve in curves:
            ax.plot(curve["env_steps"], curve["eval_return"], color=color, alpha=0.3, linewidth=0.8)
        median = summary[label]["median"]
        shown = f"{median:g}" if median is not None else "not reached"
        ax.plot(*carried_mean(curves), color=color, linewidth=2,
                label=f"{label} (median steps {shown}, {len(curves)} seeds)")
    protocol = record["protocol"]
    ax.axhline(protocol["threshold"], color="black", linestyle=":", linewidth=1,
               label=f"threshold {protocol['threshold']:g} (held for {protocol['hold']} evaluations)")
    for point in record.get("published", []):  # a paper's figure, drawn beside the curves it is judged with
        ax.errorbar(point["env_steps"], point["return"], yerr=point.get("spread"), color="black", marker="*",
                    markersize=9, capsize=3, linestyle="none", label=point["label"])
    ax.set(xlabel="real env steps", ylabel=f"mean eval return ({protocol['episodes']} episodes)",
           title=f"{title}\nthin: seeds; thick: mean (a stopped seed keeps its last evaluation)")
    if log_x:
        ax.set_xscale("log")
    ax.legend(fontsize=7)


def plot_study(record: dict, name: str, title: str, log_x: bool = False) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    evaluated_once = all(len(c["env_steps"]) <= 1 for curves in record["curves"].values() for c in curves)
    if record.get("full_budget") and evaluated_once:
        plot_returns_at_budget(record, ax, title)
    else:
        plot_curves(record, ax, title, log_x)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=110)
    plt.close(fig)


# --- running, resuming and merging a study

def study_arguments(parser, default_name: str) -> None:
    """The options every protocol study takes."""
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", metavar="LABEL", help="run only these learners")
    parser.add_argument("--name", type=results_name, default=default_name)
    parser.add_argument("--quick", action="store_true",
                        help="a small budget and one seed, written as NAME_quick")
    parser.add_argument("--resume", action="store_true",
                        help="continue results/NAME.json (if there is one): run only the (learner, seed) "
                             "pairs it lacks")
    parser.add_argument("--merge", nargs="+", type=results_name, metavar="NAME",
                        help="combine earlier results of disjoint seeds")
    parser.add_argument("--full-budget", action="store_true",
                        help="every learner runs its whole budget instead of stopping once the threshold "
                             "has held (a study of the return at a fixed budget)")
    parser.add_argument("--checkpoints", default=str(STUDY_CHECKPOINTS), metavar="DIR",
                        help="where curves in progress are saved after each evaluation, and continued from "
                             "by the same command: DIR/NAME/ (default: the repository's runs/studies)")


def new_study(protocol: Protocol, arms: dict, comparisons: list[tuple[str, str]], seeds: list[int],
              settings: dict | None = None) -> dict:
    return {"protocol": protocol.describe(), "arms": {label: arm.describe() for label, arm in arms.items()},
            "comparisons": [list(pair) for pair in comparisons], "seeds": seeds, **(settings or {}),
            "curves": {label: [] for label in arms}}


def refuse_to_restart_a_study_cut_short(name: str, fresh: dict) -> None:
    """A run without --resume starts results/NAME.json over. Where that file is a study of the same
    protocol cut short (some learner-seed pairs done, others not), starting over would throw away its
    finished curves, hours of them, so the run ends with one line instead: continue it with --resume, or
    remove the file."""
    if not (RESULTS / f"{name}.json").exists():
        return
    record = load_result(name)
    if record.get("protocol") != fresh["protocol"]:
        return
    done = {(label, curve["seed"]) for label, curves in record.get("curves", {}).items() for curve in curves}
    missing = [(label, seed) for label in record.get("arms", {}) for seed in record.get("seeds", [])
               if (label, seed) not in done]
    if done and missing:
        label, seed = missing[0]
        fail(f"results/{name}.json is a study cut short ({len(done)} curves done, {len(missing)} to run, "
             f"the first {label!r} seed {seed}): add --resume to continue it, or remove the file to start it "
             "afresh")


def resumed_study(name: str, fresh: dict) -> dict:
    """results/NAME.json to continue, refused unless it was made under the same protocol, and every learner
    it shares with this run has the same settings; learners new to it are added. With no such file yet (a
    run stopped before its first curve was done) every pair is still to run: the study starts afresh, and
    curves in progress continue from their checkpoints all the same."""
    if not (RESULTS / f"{name}.json").exists():
        print(f"--resume: no results/{name}.json yet: starting it", flush=True)
        return fresh
    record = load_result(name)
    if record.get("protocol") != fresh["protocol"]:
        fail(f"--resume: {name!r} was run under {record.get('protocol')}, "
             f"not {fresh['protocol']}")
    for label, arm in fresh["arms"].items():
        if label in record["arms"] and record["arms"][label] != arm:
            fail(f"--resume: {label!r} in {name!r} ran with {record['arms'][label]}, not {arm}")
        record["arms"].setdefault(label, arm)
        record["curves"].setdefault(label, [])
    record["seeds"] = sorted(set(record["seeds"]) | set(fresh["seeds"]))
    if "published" in fresh:  # papers' figures to draw beside the curves: today's list, not the run's
        record["published"] = fresh["published"]
    record["comparisons"] = [*record["comparisons"],
                             *[pair for pair in fresh["comparisons"] if pair not in record["comparisons"]]]
    return record


def without_defaults(arm: dict) -> dict:
    """An arm of ours with the overrides that name its agent's default value (today's) left out: a part run
    with `--set priority_exponent=0` before 0 was the default merges with one run after, naming none. Each
    part's command and commit stay in the merged study's `merged_from`."""
    if arm.get("library") != "modelrl" or not arm.get("overrides"):
        return arm
    from modelrl.agents import agent_class
    from modelrl.config import build_config

    config_class = agent_class(arm["agent"]).config_class
    # built together: one override alone may not validate (terminal_value needs the gamma beside it)
    default = build_config(config_class, {}, owner=arm["agent"])
    built = build_config(config_class, arm["overrides"], owner=arm["agent"])
    named = {key: value for key, value in arm["overrides"].items()
             if getattr(built, key, None) != getattr(default, key, None)}
    return {**arm, "overrides": named}


def merged_study(names: list[str], into: str) -> dict:
    """One study from results of disjoint seeds run apart (each part's commit and machine kept)."""
    parts, merged_from = read_results(names, into=into)
    shared = shared_settings(parts, names, ("protocol", "full_budget", "published"))
    record = {key: value for key, value in shared.items() if value is not None}
    arms = {}
    for name, part in zip(names, parts, strict=True):
        for label, arm in part["arms"].items():
            if without_defaults(arms.setdefault(label, arm)) != without_defaults(arm):
                fail(f"--merge: {label!r} differs in {name!r} ({arm} against {arms[label]}); "
                     "only runs of the same settings merge")
    comparisons = []
    for part in parts:
        comparisons += [pair for pair in part["comparisons"] if pair not in comparisons]
    curves = {label: merged_runs([p["curves"] for p in parts], names, label) for label in arms}
    return {**record, "arms": arms, "comparisons": comparisons,
            "seeds": sorted({c["seed"] for cs in curves.values() for c in cs}), "merged_from": merged_from,
            "curves": curves}


def save_study(record: dict, name: str, title: str, log_x: bool = False) -> None:
    record["summary"] = summarize(record)
    write_results(name, record)
    plot_study(record, name, title, log_x)


def run_study(record: dict, arms: dict, name: str, title: str, log_x: bool = False,
              checkpoints: Path | None = None) -> dict:
    """Every learner on every seed, seed by seed (so a study cut short has all learners on its first seeds),
    written after each curve; pairs the record already has are skipped. With `checkpoints`, our agents'
    curves in progress are kept under `checkpoints/NAME/` and continued from there."""
    segment = len(earlier_segments(record))  # the index this process's segment will have
    for seed in record["seeds"]:
        for label, arm in arms.items():
            if any(c["seed"] == seed for c in record["curves"][label]):
                continue
            protocol = Protocol(**{k: record["protocol"][k] for k in
                                   ("env_id", "threshold", "eval_every", "episodes", "hold")})
            full_budget = record.get("full_budget", False)
            if isinstance(arm, Ours) and checkpoints is not None:
                slug = "".join(c if c.isalnum() else "-" for c in label)
                curve = arm.curve(protocol, seed, label, checkpoints / name / f"{slug}-seed{seed}.pt",
                                  full_budget=full_budget)
            else:
                curve = arm.curve(protocol, seed, label, full_budget=full_budget)
            record["curves"][label].append({**curve, "segment": segment})
            save_study(record, name, title, log_x)
    return record


def check_configs(arms: dict) -> None:
    """Every one of our learners' settings checked before the first runs, not when its turn comes hours
    later: a bad key or value ends the study with one line and exit status 2."""
    from modelrl import ModelRLError
    from modelrl.agents import agent_class
    from modelrl.config import build_config

    for label, arm in arms.items():
        if isinstance(arm, Ours):
            try:
                build_config(agent_class(arm.agent_id).config_class, arm.overrides, owner=arm.agent_id)
            except ModelRLError as error:
                fail(f"{label}: {error}")


def only_arms(arms: dict, only: list[str] | None) -> dict:
    """The arms `--only` names, in the study's order (all of them without it); a name the study lacks is
    refused."""
    if not only:
        return arms
    unknown = set(only) - set(arms)
    if unknown:
        fail(f"--only: no learner {sorted(unknown)}; this study has {sorted(arms)}")
    return {label: arm for label, arm in arms.items() if label in only}


def result_name(args, suffix: str = "") -> str:
    """The results name a study's arguments ask for: `--name` (and `suffix`), `_quick` after it for a
    `--quick` run, which git ignores, so a smoke run never replaces a current result."""
    return f"{args.name}{suffix}_quick" if args.quick else f"{args.name}{suffix}"


def study_main(args, protocol: Protocol, arms: dict, comparisons: list, title: str,
               settings: dict | None = None, log_x: bool = False) -> None:
    """Run, resume or merge a study as its command line asks, on one torch thread."""
    import torch

    torch.set_num_threads(1)
    this_segment()  # the date and the tree's state as the run starts, not at its first write
    name = result_name(args)
    if args.merge:
        record = merged_study(args.merge, into=name)
        # the parts' comparisons, and those this command names between arms the parts ran apart
        record["comparisons"] += [list(pair) for pair in comparisons if set(pair) <= set(record["arms"])
                                  and list(pair) not in record["comparisons"]]
        save_study(record, name, title, log_x)
        return
    arms = only_arms(arms, args.only)
    seeds = [args.seeds[0]] if args.quick else args.seeds
    check_configs(arms)
    record = new_study(protocol, arms, comparisons, seeds, settings)
    if args.resume:
        record = resumed_study(name, record)
    elif not args.quick:  # a smoke run's results are cheap to make again
        refuse_to_restart_a_study_cut_short(name, record)
    if args.full_budget:  # the curves run past the threshold; where they would have stopped is unchanged
        record["full_budget"] = True
    run_study(record, arms, name, title, log_x, checkpoints=Path(args.checkpoints).resolve())
    print(json.dumps(record["summary"], indent=1))


# --- tables for a study's .md: `python benchmarks/common.py table NAME`

def steps_text(steps: float | None) -> str:
    return "not reached" if steps is None else f"{steps:g}"


def study_table(record: dict) -> str:
    """Markdown: steps to the threshold per seed and the median for each learner, then each ratio."""
    arms = record["summary"]["arms"]
    seeds = record["seeds"]
    lines = [f"| learner | {' | '.join(f'seed {s}' for s in seeds)} | median | seconds per seed |",
             f"|---|{'---|' * len(seeds)}---|---|"]
    for label, arm in arms.items():
        per_seed = {int(k): v for k, v in arm["steps_to_threshold"].items()}
        seconds = {int(k): v for k, v in arm["seconds"].items()}
        cells = [steps_text(per_seed[s]) if s in per_seed else "not run" for s in seeds]
        lines.append(f"| {label} | {' | '.join(cells)} | {steps_text(arm['median'])} | "
                     f"{' / '.join(f'{seconds[s]:.0f}' for s in seeds if s in seconds)} |")
    lines += ["", "| baseline / ours | ratio of medians | interval |", "|---|---|---|"]
    for ratio in record["summary"]["ratios"]:
        interval = ratio["interval"]
        lines.append(f"| {ratio['baseline']} / {ratio['ours']} | {ratio['ratio']} | {interval['low']} to "
                     f"{interval['high']} ({interval['level']:.0%}, {interval['resamples']} resamples) |")
    return "\n".join(lines)


# --- a self-check of the protocol: `python benchmarks/common.py`

def self_check() -> None:
    """The shared evaluation function gives a modelrl agent exactly the returns its own `evaluate` does (so
    both start from the same states); the threshold rule, censored median and bootstrap behave."""
    import modelrl

    agent = modelrl.make_agent("dqn", env="CartPole-v1", seed=3, learning_starts=200, train_freq=50,
                               gradient_steps=20)
    agent.learn(total_steps=600)
    for k in range(2):
        shared = evaluate_on_seeds(lambda obs: agent.act(obs, deterministic=True),
                                   modelrl.make_env("CartPole-v1"), 3, k, 4)
        own = agent.evaluate(4)["eval_return"]
        assert abs(float(np.mean(shared)) - own) < 1e-9, (shared, own)
    curve = {"env_steps": [1, 2, 3, 4, 5], "eval_return": [0, 10, 0, 10, 10]}
    assert steps_to_threshold(curve, 10) == 4 and steps_to_threshold(curve, 11) is None
    assert censored_median([1, None, 3]) == 3 and np.isinf(censored_median([1, None, None]))
    interval = bootstrap_ratio([10, 10, 10], [5, 5, 5])
    assert interval["low"] == interval["high"] == 2.0
    assert bootstrap_ratio([10, None, None], [None, None, 5])["resamples_without_ratio"] > 0
    print("protocol self-check passed")


if __name__ == "__main__":
    if sys.argv[1:2] == ["table"]:
        print(study_table(load_result(sys.argv[2])))
    else:
        self_check()
