"""`modelrl sweep SPEC.yaml`: agents x configs x envs x seeds, each an ordinary run, on Ray Tune.

A spec (YAML; every key but `agents`, `envs` and `steps` optional):

    envs: [CartPole-v1, Acrobot-v1]      # or env: CartPole-v1
    agents:                              # AGENT, or a mapping
      - dqn
      - agent: deep-dyna-q
        label: dyna                      # default: the agent's id
        config: {planning_steps: 10}     # fixed overrides
        grid: {gamma: [0.99, 0.995]}     # every combination is a variant
        random: {batch_size: {choice: [32, 64]}, lr: {loguniform: [0.0001, 0.01]}}
        samples: 4                       # random draws (per grid point); also uniform, randint [low, high]
    seeds: [0, 1, 2]
    steps: 20000
    eval_every: 1000                     # default: what compare would choose for the costliest agent
    eval_episodes: 10
    env_kwargs: {}
    metric: eval_return                  # what the table, ratios, plots and the scheduler rank by
    threshold: {CartPole-v1: 475}        # or one number for every env: env steps until the metric reaches it
    resources: {cpu: 1, gpu: 0}          # per trial; cpu is also its torch threads
    max_failures: 3                      # retries of a trial whose process dies, each from its checkpoint
    scheduler: {name: asha, grace_period: 2000, reduction_factor: 3}   # early stopping on METRIC_auc
    backend: ray                         # or processes: a local pool, no Ray needed
    search_seed: 0                       # of the random draws

The sweep directory holds `sweep.yaml` (the spec, as given), `runs/<trial>/` (ordinary run directories),
`trials/<trial>.json` (each finished trial's outcome: done, failed with its one-line error, or stopped early
by the scheduler), Tune's own state under `tune/`, and at the end `sweep.json`, `sweep.md` (compare's table
per env) and `plots/<env>.png`. Every trial is planned from the spec alone, so `--resume DIR` plans the same
trials and runs only those without an outcome, continuing each from its last checkpoint.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from modelrl.actors import import_ray, init_ray
from modelrl.checkpoint import atomic_write
from modelrl.envs import resolve_env_id
from modelrl.errors import ConfigError, RunDirError, require_seed
from modelrl.experiment.compare import AgentSpec, check_agents, check_metric, markdown_table, slug, summarize
from modelrl.experiment.logger import read_metrics
from modelrl.experiment.runner import check_run_settings
from modelrl.experiment.trials import Trial, one_line, read_record, run_in_processes, run_trial, write_record

SPEC_KEYS = ("env", "envs", "agents", "seeds", "steps", "eval_every", "eval_episodes", "env_kwargs", "metric",
             "threshold", "resources", "max_failures", "scheduler", "backend", "search_seed", "tensorboard")
AGENT_KEYS = ("agent", "label", "config", "grid", "random", "samples")
DISTRIBUTIONS = ("uniform", "loguniform", "randint", "choice")
SCHEDULER_KEYS = ("name", "grace_period", "reduction_factor", "mode")
BACKENDS = ("ray", "processes")
RAY_MISSING = ("a sweep", "or backend: processes in the spec, or --backend processes, for local processes")


SWEEP_FILES = ("sweep.yaml", "sweep.json", "sweep.md", "plots", "runs", "trials", "tune")


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep: says which directory `modelrl sweep --resume` continues."""

    def __init__(self, out_dir: Path):
        super().__init__()
        self.out_dir = out_dir


@dataclass
class SweepPlan:
    spec: dict[str, Any]
    envs: list[str]
    variants: list[AgentSpec]
    trials: list[Trial]
    metric: str
    thresholds: dict[str, float | None]
    cpu: int
    gpu: float
    max_failures: int
    scheduler: dict[str, Any] | None
    backend: str


def _fail(message: str) -> None:
    raise ConfigError(f"sweep spec: {message}")


def _unknown(kind: str, given, known) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown:
        _fail(f"unknown {kind} {', '.join(map(repr, unknown))}; known: {', '.join(known)}")


def _whole(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return value


def load_spec(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep spec {path} does not exist")
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigError(f"sweep spec {path} is not valid YAML: {one_line(error)}") from None
    if not isinstance(spec, dict):
        raise ConfigError(f"sweep spec {path} must be a mapping of keys (envs, agents, steps, ...)")
    return spec


def _draw(name: str, distribution, rng: np.random.Generator):
    if not isinstance(distribution, dict) or len(distribution) != 1:
        _fail(f"random {name}: give one distribution, e.g. {{loguniform: [0.0001, 0.01]}}, "
              f"got {distribution!r}")
    (kind, args), = distribution.items()
    if kind not in DISTRIBUTIONS:
        _fail(f"random {name}: unknown distribution {kind!r}; known: {', '.join(DISTRIBUTIONS)}")
    if not isinstance(args, list) or not args:
        _fail(f"random {name}: {kind} needs a list, got {args!r}")
    if kind == "choice":
        return args[int(rng.integers(len(args)))]
    if len(args) != 2 or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args) \
            or not args[0] < args[1] or (kind == "loguniform" and args[0] <= 0):
        positive = " and low > 0" if kind == "loguniform" else ""
        _fail(f"random {name}: {kind} needs [low, high] with low < high{positive}, got {args!r}")
    low, high = args
    if kind == "randint":
        return int(rng.integers(int(low), int(high) + 1))
    if kind == "uniform":
        return float(rng.uniform(low, high))
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _shown(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _variants(entry, index: int, rng: np.random.Generator) -> list[AgentSpec]:
    """One agents entry -> its variants: the grid's combinations, each with `samples` random draws."""
    if isinstance(entry, str):
        entry = {"agent": entry}
    if not isinstance(entry, dict) or not isinstance(entry.get("agent"), str):
        _fail(f"agents[{index}] must be an agent id or a mapping with 'agent', got {entry!r}")
    _unknown(f"key in agents[{index}]", entry, AGENT_KEYS)
    base = entry.get("label", entry["agent"])
    fixed, grid, random = (entry.get(key) or {} for key in ("config", "grid", "random"))
    for key, value in (("config", fixed), ("grid", grid), ("random", random)):
        if not isinstance(value, dict):
            _fail(f"agents[{index}] ({base}): {key} must be a mapping of config keys, got {value!r}")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            _fail(f"agents[{index}] ({base}): grid {key} must be a non-empty list of values, got {values!r}")
    samples = _whole(f"agents[{index}] ({base}) samples", entry.get("samples", 1), 1)
    if samples > 1 and not random:
        _fail(f"agents[{index}] ({base}): samples {samples} without a random section draws nothing")
    variants = []
    for point in itertools.product(*grid.values()) if grid else [()]:
        for _ in range(samples):
            varied = dict(zip(grid, point)) | {key: _draw(key, dist, rng) for key, dist in random.items()}
            label = " ".join([str(base), *(f"{key}={_shown(value)}" for key, value in varied.items())])
            variants.append(AgentSpec(label, entry["agent"], {**fixed, **varied}))
    return variants


def plan_sweep(spec: dict[str, Any], out_dir: str | Path) -> SweepPlan:
    """Every trial the spec asks for, with every input checked (agents, config keys and values, envs, the
    agents' fit to the envs) before any trial starts."""
    _unknown("key", spec, SPEC_KEYS)
    if ("env" in spec) == ("envs" in spec):
        _fail("give the environments as envs: [ID, ...] (or env: ID), once")
    envs = spec["envs"] if "envs" in spec else [spec["env"]]
    if not isinstance(envs, list) or not envs or not all(isinstance(e, str) for e in envs):
        _fail(f"envs must be a non-empty list of env ids, got {envs!r}")
    agents = spec.get("agents")
    if not isinstance(agents, list) or not agents:
        _fail("agents must be a non-empty list (AGENT, or {agent: AGENT, config: ..., grid: ...})")
    seeds = spec.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds:
        _fail(f"seeds must be a non-empty list, got {seeds!r}")
    for seed in seeds:
        require_seed("sweep spec seeds", seed)
    if len(set(seeds)) != len(seeds):
        _fail(f"seeds must differ, got {seeds}")
    if "steps" not in spec:
        _fail("steps (real env steps per trial) is missing")
    steps = _whole("steps", spec["steps"], 1)
    eval_every, eval_episodes = spec.get("eval_every"), spec.get("eval_episodes")
    check_run_settings(total_steps=steps, eval_every=eval_every, eval_episodes=eval_episodes)
    env_kwargs = spec.get("env_kwargs") or {}
    if not isinstance(env_kwargs, dict):
        _fail(f"env_kwargs must be a mapping, got {env_kwargs!r}")
    metric = spec.get("metric", "eval_return")
    resources = spec.get("resources") or {}
    if not isinstance(resources, dict):
        _fail(f"resources must be a mapping like {{cpu: 1, gpu: 0}}, got {resources!r}")
    _unknown("resource", resources, ("cpu", "gpu"))
    cpu = _whole("resources cpu", resources.get("cpu", 1), 1)
    gpu = resources.get("gpu", 0)
    if isinstance(gpu, bool) or not isinstance(gpu, (int, float)) or not 0 <= gpu:
        _fail(f"resources gpu must be a share >= 0 (e.g. 0.25), got {gpu!r}")
    max_failures = _whole("max_failures", spec.get("max_failures", 3), 0)
    backend = spec.get("backend", "ray")
    if backend not in BACKENDS:
        _fail(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    scheduler = spec.get("scheduler")
    if scheduler is not None:
        if not isinstance(scheduler, dict) or scheduler.get("name") != "asha":
            _fail("scheduler must be {name: asha, grace_period: STEPS, reduction_factor: N}, "
                  f"got {scheduler!r}")
        _unknown("scheduler key", scheduler, SCHEDULER_KEYS)
        _whole("scheduler grace_period", scheduler.get("grace_period", 1), 1)
        _whole("scheduler reduction_factor", scheduler.get("reduction_factor", 3), 2)
        if scheduler.get("mode", "max") not in ("max", "min"):
            _fail(f"scheduler mode must be max or min, got {scheduler['mode']!r}")
        if backend != "ray":
            _fail("the asha scheduler needs backend: ray")
    rng = np.random.default_rng(_whole("search_seed", spec.get("search_seed", 0), 0))
    variants = [variant for i, entry in enumerate(agents) for variant in _variants(entry, i, rng)]
    labels = [variant.label for variant in variants]
    if len(set(labels)) != len(labels):
        _fail(f"agent labels must differ (give each entry a label), got {labels}")
    slugs: dict[str, str] = {}
    for variant in variants:
        other = slugs.setdefault(slug(variant.label), variant.label)
        if other != variant.label:
            _fail(f"agents '{other}' and '{variant.label}' would share run directories; give them labels "
                  "that differ in letters or digits")
    threshold = spec.get("threshold")
    out_dir = Path(out_dir)
    trials, thresholds, env_ids = [], {}, []
    for env in envs:
        env_id = resolve_env_id(env)
        if env_id in env_ids:
            _fail(f"env {env} is given twice")
        env_ids.append(env_id)
        every, episodes = check_agents(variants, env_id, seeds[0], steps, env_kwargs)
        every = every if eval_every is None else eval_every
        episodes = episodes if eval_episodes is None else eval_episodes
        check_metric(metric, episodes, variants)
        value = threshold.get(env, threshold.get(env_id)) if isinstance(threshold, dict) else threshold
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            _fail(f"threshold must be a number or a mapping of env to number, got {threshold!r}")
        thresholds[env_id] = value
        trials += [
            Trial(label=variant.label, agent_id=variant.agent_id, env_id=env_id, seed=seed, total_steps=steps,
                  eval_every=every, eval_episodes=episodes,
                  run_dir=str(out_dir / "runs" / f"{slug(variant.label)}-{slug(env_id)}-s{seed}"),
                  overrides=variant.overrides, env_kwargs=env_kwargs, threads=cpu,
                  tensorboard=bool(spec.get("tensorboard")), record_dir=str(out_dir / "trials"))
            for variant in variants for seed in seeds
        ]
    if isinstance(threshold, dict):
        _unknown("env in threshold", set(threshold) - set(envs), env_ids)
    return SweepPlan(spec, env_ids, variants, trials, metric, thresholds, cpu, gpu, max_failures, scheduler,
                     backend)


def _check_fits_here(plan: SweepPlan) -> None:
    """A trial asking for more than this machine has would wait for ever on a local Ray."""
    import torch

    from modelrl.threads import usable_cores

    if plan.cpu > usable_cores():
        _fail(f"resources cpu {plan.cpu} is more than the {usable_cores()} cores here; ask for fewer, or "
              "give --address of a cluster with larger nodes")
    if plan.gpu > 0 and not torch.cuda.is_available():
        _fail(f"resources gpu {plan.gpu}: this machine has no GPU that torch can use; set gpu: 0, or give "
              "--address of a cluster with GPUs")


def _numbers(row: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _tune_trial(config: dict[str, Any]) -> None:
    """One trial inside Tune: its rows are reported as they are logged, with the running mean of the metric
    (the area under its curve so far, a sample-efficiency measure) for the scheduler."""
    import ray
    from ray import tune

    metric = config["metric"]

    def report(row: dict[str, float], rows: list[dict[str, float]]) -> None:
        values = [r[metric] for r in rows
                  if isinstance(r.get(metric), (int, float)) and math.isfinite(r[metric])]
        tune.report({**_numbers(row), f"{metric}_auc": float(np.mean(values)) if values else math.nan})

    # A failed trial returns normally with its record written: retried, it would fail alike.
    run_trial(Trial(**config["trial"]), report, context={"node": ray.get_runtime_context().get_node_id()})


def _run_on_ray(plan: SweepPlan, trials: list[Trial], out_dir: Path, address: str | None,
                progress: bool) -> dict[str, dict[str, Any]]:
    """Tune runs `trials`; returns the one-line error of each that failed past its retries, by name."""
    ray = import_ray(*RAY_MISSING)
    from ray import tune

    from modelrl.threads import usable_cores

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's tables would drown the progress bar
    # each trial's run directory holds its metrics: Tune's own CSV, JSON and TensorBoard copies cost ~0.1 s a
    # trial and say nothing more
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    started_here = init_ray(ray, address, None if address else usable_cores())
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(trials), desc=f"sweep on Ray ({len(trials)} trials)", unit="trial")

    class Progress(tune.Callback):
        def on_trial_complete(self, iteration, trials, trial, **info):
            if bar is not None:
                bar.update()

        def on_trial_error(self, iteration, trials, trial, **info):
            if bar is not None:
                bar.update()

    scheduler = None
    if plan.scheduler:
        from ray.tune.schedulers import ASHAScheduler

        scheduler = ASHAScheduler(time_attr="env_steps", metric=f"{plan.metric}_auc",
                                  mode=plan.scheduler.get("mode", "max"), max_t=trials[0].total_steps,
                                  grace_period=plan.scheduler.get("grace_period", 1),
                                  reduction_factor=plan.scheduler.get("reduction_factor", 3))
    name_of = {trial.run_dir: trial.name for trial in trials}

    def trial_name(tune_trial) -> str:
        return name_of[tune_trial.config["trial"]["run_dir"]]

    resources = {"cpu": plan.cpu, "gpu": plan.gpu}
    tuner = tune.Tuner(
        tune.with_resources(_tune_trial, resources),
        param_space={"metric": plan.metric, "trial": tune.grid_search([trial.to_dict() for trial in trials])},
        # Reused actors keep their imports (torch, modelrl): a fresh one costs each trial ~2 s on 2 cores.
        tune_config=tune.TuneConfig(scheduler=scheduler, trial_name_creator=trial_name, reuse_actors=True,
                                    trial_dirname_creator=trial_name),
        run_config=tune.RunConfig(name=time.strftime("tune-%Y%m%d-%H%M%S"), verbose=0,
                                  storage_path=str((out_dir / "tune").resolve()), callbacks=[Progress()],
                                  failure_config=tune.FailureConfig(max_failures=plan.max_failures)),
    )
    try:
        results = tuner.fit()
    finally:
        if bar is not None:
            bar.close()
    errors = {}
    for result in results:
        if result.error is not None:
            lines = [line for line in str(result.error).splitlines() if line.strip()] or [str(result.error)]
            errors[name_of[result.config["trial"]["run_dir"]]] = one_line(lines[-1])
    if started_here:
        ray.shutdown()
    return errors


def _outcome_without_record(trial: Trial, error: str | None) -> dict[str, Any]:
    """What a trial that wrote no record came to: its run may have logged its last row before the scheduler
    stopped it there, been stopped early, or died past its retries."""
    rows = read_metrics(Path(trial.run_dir) / "metrics.csv")
    if rows and rows[-1]["env_steps"] >= trial.total_steps:
        return {"status": "done", "last_row": rows[-1]}
    if error is not None:
        return {"status": "failed", "error": error}
    return {"status": "stopped", "env_steps": rows[-1]["env_steps"] if rows else 0}


def _segment(backend: str, address: str | None, resumed: bool) -> dict[str, Any]:
    return {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "backend": backend, "address": address,
            "resumed": resumed, "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
            f"{platform.python_implementation()} {platform.python_version()}"}


def sweep(spec_path: str | Path | None = None, out_dir: str | Path | None = None, *, resume: str | Path | None
          = None, address: str | None = None, backend: str | None = None, jobs: int | None = None,
          progress: bool = True) -> dict[str, Any]:
    """Run a sweep (see the module's doc) into `out_dir`, or continue the one in `resume`; returns the summary
    also written to sweep.json."""
    if resume is not None:
        out_dir = Path(resume)
        if spec_path is not None:
            raise ConfigError("--resume continues a sweep with the spec saved in its directory; give no SPEC")
        if not (out_dir / "sweep.yaml").is_file():
            raise RunDirError(f"{out_dir} holds no sweep to resume (no sweep.yaml)")
        spec = load_spec(out_dir / "sweep.yaml")
    else:
        if spec_path is None:
            raise ConfigError("sweep needs a SPEC.yaml (or --resume DIR)")
        spec = load_spec(spec_path)
        out_dir = Path(out_dir) if out_dir else Path("runs") / f"sweep-{Path(spec_path).stem}-" \
            f"{time.strftime('%Y%m%d-%H%M%S')}"
        if (out_dir / "sweep.yaml").exists():
            raise RunDirError(f"{out_dir} already holds a sweep; `modelrl sweep --resume {out_dir}` "
                              "continues it, or give another --out")
        taken = [name for name in SWEEP_FILES if (out_dir / name).exists()]
        if taken:
            raise RunDirError(f"{out_dir} already holds {', '.join(taken)}, which a sweep would write; give "
                              "another --out")
    out_dir = out_dir.resolve()  # Tune runs each trial in a working directory of its own
    if jobs is not None and jobs < 1:
        raise ConfigError(f"jobs must be >= 1, got {jobs}")
    if backend is not None and backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    plan = plan_sweep(spec if backend is None else {**spec, "backend": backend}, out_dir)
    if plan.backend == "ray":
        import_ray(*RAY_MISSING)  # checked before anything is written
        if address is None:
            _check_fits_here(plan)
    for trial in plan.trials:  # a run directory that is not this sweep's trial is never written into
        run_dir = Path(trial.run_dir)
        if resume is None and run_dir.exists() and any(run_dir.iterdir()):
            raise RunDirError(f"{run_dir} already holds files; give the sweep another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    if resume is None:
        with atomic_write(out_dir / "sweep.yaml", "w", encoding="utf-8") as f:
            yaml.safe_dump(spec, f, sort_keys=False)
    (out_dir / "runs").mkdir(exist_ok=True)
    records = {trial.name: read_record(trial.record_path) for trial in plan.trials}
    pending = [trial for trial in plan.trials if records[trial.name] is None]
    started = time.perf_counter()
    try:
        if pending and plan.backend == "processes":
            for record in run_in_processes(pending, jobs=jobs, progress=progress,
                                           description=f"sweep ({len(pending)} trials)"):
                records[record["trial"]] = record
        elif pending:
            errors = _run_on_ray(plan, pending, out_dir, address, progress)
            for trial in pending:
                records[trial.name] = read_record(trial.record_path) or write_record(
                    trial, _outcome_without_record(trial, errors.get(trial.name)))
    except KeyboardInterrupt:
        raise SweepInterrupted(out_dir) from None
    elapsed = time.perf_counter() - started
    return _summarize(plan, records, out_dir, elapsed, len(pending), _segment(plan.backend, address,
                                                                                resume is not None))


def _summarize(plan: SweepPlan, records: dict[str, dict | None], out_dir: Path, elapsed: float, ran: int,
               segment: dict[str, Any]) -> dict[str, Any]:
    from modelrl.experiment.plots import group_runs, plot_curves

    previous = {}
    if (out_dir / "sweep.json").is_file():
        try:
            previous = json.loads((out_dir / "sweep.json").read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            previous = {}
    by_status: dict[str, list[dict]] = {"done": [], "failed": [], "stopped": [], "missing": []}
    for trial in plan.trials:
        record = records.get(trial.name)
        by_status[record["status"] if record else "missing"].append(record or {"trial": trial.name})
    per_env, sections = {}, []
    for env_id in plan.envs:
        done = {record["trial"] for record in by_status["done"] if record["env"] == env_id}
        run_dirs = [trial.run_dir for trial in plan.trials if trial.env_id == env_id and trial.name in done]
        section = [f"## {env_id}\n"]
        if run_dirs:
            groups = group_runs(run_dirs)
            summary = summarize(groups, plan.metric, plan.thresholds[env_id])
            plot = plot_curves(groups, out_dir / "plots" / f"{slug(env_id)}.png", metric=plan.metric,
                               title=f"{env_id}: {len(plan.spec.get('seeds', [0]))} seeds")
            per_env[env_id] = {"summary": summary, "plot": str(plot), "threshold": plan.thresholds[env_id]}
            section.append(markdown_table(summary, plan.metric))
        else:
            section.append("No trial finished.\n")
        sections.append("\n".join(section))
    for status, title in (("failed", "Failed trials"), ("stopped", "Stopped early by the scheduler"),
                          ("missing", "Not run")):
        if by_status[status]:
            lines = [f"- {r['trial']}: {r.get('error') or r.get('env_steps', '')}" for r in by_status[status]]
            sections.append(f"## {title}\n\n" + "\n".join(lines) + "\n")
    result = {
        "spec": plan.spec,
        "metric": plan.metric,
        "trials": {status: len(found) for status, found in by_status.items()} | {"total": len(plan.trials)},
        "ran_now": ran,
        "elapsed_s": elapsed,
        "per_env": per_env,
        "failed": by_status["failed"],
        "stopped": by_status["stopped"],
        "segments": previous.get("segments", []) + [{**segment, "elapsed_s": elapsed, "trials_run": ran}],
    }
    with atomic_write(out_dir / "sweep.json", "w", encoding="utf-8") as f:
        f.write(json.dumps(result, indent=2, default=str))
    heading = f"# Sweep: {len(plan.trials)} trials, {plan.spec.get('steps')} env steps each\n\n"
    with atomic_write(out_dir / "sweep.md", "w", encoding="utf-8") as f:
        f.write(heading + "\n".join(sections))
    result["table"] = "\n".join(sections)
    result["out_dir"] = str(out_dir)
    return result
