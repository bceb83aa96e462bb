"""The `modelrl` command: a thin layer over make_agent / learn / the experiment runner.

    modelrl train dyna-q --env DynaMaze-v0 --steps 3000 --seed 0 --set planning_steps=50
    modelrl train --resume runs/dyna-q-modelrl_DynaMaze-v0-s0-...
    modelrl eval runs/dyna-q-.../checkpoints/last.pt --episodes 5 --render
    modelrl compare --env DynaMaze-v0 --agents q-learning dyna-q:planning_steps=50 --seeds 0 1 2 --steps 3000
    modelrl plot runs/* --out curves.png
    modelrl model-report runs/pets-...
    modelrl play runs/alphazero-...            # a person against a trained board-game agent
    modelrl demo
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import time
import warnings
from pathlib import Path

from modelrl.errors import ConfigError, ModelRLError, require_at_least, require_seed

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
# Gymnasium colours its warnings; a log file should not get codes
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
IMPORT_HELP = ("import MODULE first (repeatable), e.g. the module registering the env of a run or "
               "checkpoint: loading a file never imports code by itself")
THREADS_HELP = "torch CPU threads (default: half the cores, 1 to 4; OMP_NUM_THREADS is respected)"

# With --resume a run continues with what its config.yaml holds, so these would be silently ignored.
TRAIN_SETTINGS = (("agent", "AGENT"), ("env", "--env"), ("set", "--set"), ("config", "--config"),
                  ("seed", "--seed"), ("env_arg", "--env-arg"), ("eval_every", "--eval-every"),
                  ("eval_episodes", "--eval-episodes"), ("run_dir", "--run-dir"),
                  ("runs_root", "--runs-root"), ("num_envs", "--num-envs"))


def _env_kwargs(assignments: list[str] | None) -> dict:
    """Env constructor arguments from KEY=VALUE strings, values read as YAML scalars (numbers, booleans,
    lists); what YAML leaves a string but Python reads as a number (1e-3, nan) is a number, and NaN or
    infinity is refused."""
    import math

    import yaml

    from modelrl.config import parse_assignments

    kwargs = {}
    for key, text in parse_assignments(assignments).items():
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigError(
                f"--env-arg {key}={text}: not a valid YAML value ({error.__class__.__name__})"
            ) from None
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"--env-arg {key}={text}: must be a finite number")
        kwargs[key] = value
    return kwargs


def cmd_train(args) -> None:
    from modelrl.config import load_yaml_overrides, parse_assignments
    from modelrl.experiment.runner import resume, train

    require_at_least("--steps", args.steps, 1)
    require_at_least("--threads", args.threads, 1)
    if args.resume:
        given = [flag for name, flag in TRAIN_SETTINGS if getattr(args, name) is not None]
        if given:
            raise ConfigError(f"--resume continues a run with the settings in its config.yaml; only --steps "
                              "(a new total), --threads, --import and --no-progress go with it, not "
                              f"{', '.join(given)}")
        result = resume(args.resume, total_steps=args.steps, progress=not args.no_progress,
                        threads=args.threads)
    else:
        if not args.agent or not args.env:
            raise ModelRLError("train needs an AGENT and --env (or --resume RUN_DIR)")
        require_seed("--seed", args.seed)
        require_at_least("--eval-every", args.eval_every, 1)
        require_at_least("--eval-episodes", args.eval_episodes, 0)
        require_at_least("--num-envs", args.num_envs, 1)
        overrides = load_yaml_overrides(args.config) if args.config else {}
        overrides.update(parse_assignments(args.set))
        result = train(
            args.agent,
            args.env,
            total_steps=10_000 if args.steps is None else args.steps,
            seed=0 if args.seed is None else args.seed,
            overrides=overrides,
            env_kwargs=_env_kwargs(args.env_arg),
            eval_every=args.eval_every,
            eval_episodes=args.eval_episodes,
            runs_root="runs" if args.runs_root is None else args.runs_root,
            run_dir=args.run_dir,
            progress=not args.no_progress,
            threads=args.threads,
            num_envs=1 if args.num_envs is None else args.num_envs,
        )
    last = result.history[-1] if result.history else {}
    print(f"run: {result.run_dir}")
    if last:
        summary = f"env steps {last['env_steps']:.0f}, episodes {last['episodes']:.0f}"
        if "eval_return" in last:
            summary += f", eval return {last['eval_return']:.4g}"
        print(summary)
    print(f"checkpoint: {result.run_dir / 'checkpoints' / 'last.pt'}")


def cmd_eval(args) -> None:
    import modelrl
    from modelrl.experiment.runner import CHECKPOINT

    require_at_least("--episodes", args.episodes, 1)
    require_at_least("--max-steps", args.max_steps, 1)
    require_at_least("--threads", args.threads, 1)
    path = Path(args.checkpoint)
    if path.is_dir():
        path = path / CHECKPOINT
    agent = modelrl.load(path, threads=args.threads)
    if args.render:
        modes = agent.env.metadata.get("render_modes") or []
        if "ansi" not in modes:  # the others draw images or open a window, which a terminal cannot show
            raise ConfigError(f"--render prints text (the 'ansi' render mode), which {agent.env_id} lacks; "
                              f"its render modes: {', '.join(modes) or 'none'}")
        env = modelrl.make_env(agent.env_id, render_mode="ansi", **agent.env_kwargs)
        obs, info = env.reset(seed=agent.seed)
        state = agent.initial_state()
        print(env.render())
        for _ in range(100 if args.max_steps is None else args.max_steps):
            action, state = agent.policy(obs, state, info, deterministic=True)
            obs, _, terminated, truncated, info = env.step(action)
            print(env.render())
            if terminated or truncated:
                break
    result = agent.evaluate(args.episodes, max_steps=args.max_steps)
    print(
        f"{agent.agent_id} on {agent.env_id} after {agent.env_steps} env steps: "
        f"eval return {result['eval_return']:.4g}, episode length {result['eval_length']:.4g} "
        f"over {args.episodes} episodes"
    )


def cmd_compare(args) -> None:
    from modelrl.experiment.compare import compare, parse_agent_spec

    require_at_least("--steps", args.steps, 1)
    for seed in args.seeds:
        require_seed("--seeds", seed)
    require_at_least("--eval-every", args.eval_every, 1)
    require_at_least("--eval-episodes", args.eval_episodes, 0)
    require_at_least("--jobs", args.jobs, 1)
    require_at_least("--threads", args.threads, 1)
    out = args.out or f"runs/compare-{args.env.replace('/', '_')}-{time.strftime('%Y%m%d-%H%M%S')}"
    result = compare(
        [parse_agent_spec(s) for s in args.agents],
        args.env,
        seeds=args.seeds,
        total_steps=args.steps,
        out_dir=out,
        env_kwargs=_env_kwargs(args.env_arg),
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        metric=args.metric,
        threshold=args.threshold,
        jobs=args.jobs,
        progress=not args.no_progress,
        tensorboard=args.tensorboard,
        threads=args.threads,
    )

    print(result["table"])
    print(f"results: {Path(out) / 'compare.json'}, {Path(out) / 'compare.md'}")
    print(f"plot: {result['plot']}")


def cmd_sweep(args) -> None:
    from modelrl.experiment.sweep import sweep

    if args.spec is None and args.resume is None:
        raise ModelRLError("sweep needs a SPEC.yaml (or --resume DIR)")
    result = sweep(args.spec, args.out, resume=args.resume, address=args.address, backend=args.backend,
                   jobs=args.jobs, progress=not args.no_progress)
    counts = result["trials"]
    print(result["table"])
    print(f"trials: {counts['done']} done, {counts['failed']} failed, {counts['stopped']} stopped early, "
          f"{counts['missing']} not run, of {counts['total']} ({result['ran_now']} run now)")
    print(f"results: {Path(result['out_dir']) / 'sweep.json'}, {Path(result['out_dir']) / 'sweep.md'}")


def cmd_plot(args) -> None:
    from modelrl.experiment.plots import plot_runs

    # Every path must be a run: a mistyped one silently left out would change the curves.
    print(f"plot: {plot_runs(args.run_dirs, args.out, metric=args.metric, title=args.title or '')}")


def cmd_model_report(args) -> None:
    from modelrl.experiment.model_report import format_report, run_model_report
    from modelrl.threads import choose_threads

    require_seed("--seed", args.seed)
    require_at_least("--threads", args.threads, 1)
    choose_threads(args.threads)
    report, paths = run_model_report(args.run_dir, episodes=args.episodes, horizon=args.horizon,
                                     policy=args.policy, seed=args.seed)
    print(format_report(report))
    for path in paths:
        print(f"wrote {path}")


def cmd_predict(args) -> None:
    from modelrl.experiment.prediction import run_prediction
    from modelrl.threads import choose_threads

    require_seed("--seed", args.seed)
    require_at_least("--context", args.context, 1)
    require_at_least("--horizon", args.horizon, 1)
    require_at_least("--threads", args.threads, 1)
    choose_threads(args.threads)
    result, paths = run_prediction(args.run_dir, context=args.context, horizon=args.horizon, seed=args.seed,
                                   out=args.out)
    print(f"{result['open_loop_steps']} steps open loop after {result['context']} observed: mse "
          f"{result['open_loop_mse']:.4g} (copying the last observation: "
          f"{result['copy_last_observation_mse']:.4g}); return {result['real_return']:.4g} real, "
          f"{result['imagined_return']:.4g} imagined")
    for path in paths:
        print(f"wrote {path}")


def cmd_play(args) -> None:
    import modelrl
    from modelrl.experiment.play import play
    from modelrl.experiment.runner import CHECKPOINT

    path = Path(args.run_dir)
    agent = modelrl.load(path / CHECKPOINT if path.is_dir() else path, threads=args.threads)
    if getattr(agent, "game", None) is None:
        raise ConfigError(f"play needs an agent of a board game (alphazero, muzero); {path} holds "
                          f"{agent.agent_id} on {agent.env_id}")
    play(agent, person_first=not args.second)


def cmd_demo(args) -> None:
    """Q-learning against Dyna-Q (n=5, n=50) on GridWorld, 5 seeds in parallel: seconds, not minutes."""
    from modelrl.experiment.compare import AgentSpec, compare

    out = Path(args.out or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}")
    specs = [
        AgentSpec("q-learning", "q-learning"),
        AgentSpec("dyna-q n=5", "dyna-q", {"planning_steps": 5}),
        AgentSpec("dyna-q n=50", "dyna-q", {"planning_steps": 50}),
    ]
    print("modelrl demo: Q-learning vs Dyna-Q on GridWorld-v0 (optimal return 93), 5 seeds, 1500 env steps")
    result = compare(
        specs,
        "GridWorld-v0",
        seeds=list(range(5)),
        total_steps=1500,
        out_dir=out,
        eval_every=25,
        eval_episodes=1,
        threshold=93.0,
        jobs=args.jobs,
        progress=not args.no_progress,
    )
    print(result["table"])
    print(f"results: {out / 'compare.md'}")
    print(f"plot: {result['plot']}")


def cmd_list(args) -> None:
    import gymnasium as gym

    import modelrl

    if args.agent:
        cmd_config(args)
        return
    print("agents: " + ", ".join(modelrl.AGENTS))
    print("modelrl envs: " + ", ".join(k for k in gym.registry if k.startswith("modelrl/")))
    print("DeepMind Control Suite (the dmc extra), each also as -pixels-v0: "
          + ", ".join(k for k in gym.registry if k.startswith("dmc/") and not k.endswith("-pixels-v0")))
    print("pixels/<id>: any env that renders rgb_array frames, seen through them (e.g. pixels/Pendulum-v1)")
    print("plus every Gymnasium env whose spaces suit the agent (e.g. FrozenLake-v1 for the tabular agents)")


def cmd_config(args) -> None:
    from modelrl.agents import agent_class
    from modelrl.config import describe_config

    cls = agent_class(args.agent)
    rows = describe_config(cls.config_class)
    print(f"{cls.agent_id}: config keys (set with --set KEY=VALUE, or a --config YAML file)")
    width = max(len(f"{name} = {default}") for name, _, default, _ in rows)
    for name, kind, default, doc in rows:
        print(f"  {f'{name} = {default}':<{width}}  {kind}{'; ' + doc if doc else ''}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelrl", description="Model-based reinforcement learning.")
    parser.add_argument("--version", action="version", version=f"modelrl {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train an agent, logging to a run directory")
    train.add_argument("agent", nargs="?", help="agent id, e.g. dyna-q (see `modelrl list`)")
    train.add_argument("--env", help="environment id, e.g. DynaMaze-v0 or FrozenLake-v1")
    train.add_argument("--steps", type=int,
                       help="real env steps in all (default 10000; with --resume, a new total)")
    train.add_argument("--seed", type=int, help="random seed, >= 0 (default 0)")
    train.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a config key (repeatable)")
    train.add_argument("--config", help="YAML file of config overrides (--set wins)")
    train.add_argument("--env-arg", action="append", metavar="KEY=VALUE", help="env constructor argument")
    train.add_argument("--eval-every", type=int,
                       help="env steps between evaluations (default steps/20; planners and image envs: "
                            "together at most half the run's steps, planners at most 10 evaluations)")
    train.add_argument("--eval-episodes", type=int,
                       help="episodes per evaluation (default 5, planners 1, image envs fewer on short "
                            "runs; 0: none)")
    train.add_argument("--runs-root", help="where new run directories go (default runs)")
    train.add_argument("--run-dir", help="exact run directory (default runs/<agent>-<env>-s<seed>-<time>)")
    train.add_argument("--resume", metavar="RUN_DIR",
                       help="continue a run from its last checkpoint, as configured (--steps may change)")
    train.add_argument("--threads", type=int, help=THREADS_HELP)
    train.add_argument("--num-envs", type=int, help="copies of the env stepped together (default 1)")
    train.add_argument("--import", dest="imports", action="append", metavar="MODULE", help=IMPORT_HELP)
    train.add_argument("--no-progress", action="store_true")
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("eval", help="evaluate a checkpoint's greedy policy")
    evaluate.add_argument("checkpoint", help="a checkpoint file or a run directory")
    evaluate.add_argument("--episodes", type=int, default=5)
    evaluate.add_argument("--max-steps", type=int)
    evaluate.add_argument("--render", action="store_true", help="print one greedy episode as text")
    evaluate.add_argument("--threads", type=int, help=THREADS_HELP)
    evaluate.add_argument("--import", dest="imports", action="append", metavar="MODULE", help=IMPORT_HELP)
    evaluate.set_defaults(func=cmd_eval)

    comp = sub.add_parser("compare", help="several agents x seeds on one env: table, JSON and plot")
    comp.add_argument("--env", required=True)
    comp.add_argument("--agents", nargs="+", required=True, metavar="[LABEL=]AGENT[:k=v,...]")
    comp.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    comp.add_argument("--steps", type=int, required=True)
    comp.add_argument("--env-arg", action="append", metavar="KEY=VALUE")
    comp.add_argument("--eval-every", type=int, help="as for train, the same for every agent")
    comp.add_argument("--eval-episodes", type=int, help="as for train, the same for every agent")
    comp.add_argument("--metric", default="eval_return")
    comp.add_argument("--threshold", type=float, help="report env steps until the metric reaches this")
    comp.add_argument("--jobs", type=int, help="parallel processes (default: all cores)")
    comp.add_argument("--threads", type=int, default=1, help="torch CPU threads in each process (default 1)")
    comp.add_argument("--out", help="output directory (default runs/compare-<env>-<time>)")
    comp.add_argument("--tensorboard", action="store_true", help="also write TensorBoard events for each run")
    comp.add_argument("--no-progress", action="store_true")
    comp.set_defaults(func=cmd_compare)

    sweeper = sub.add_parser("sweep", help="agents x configs x envs x seeds on Ray Tune: table, JSON, plots",
                             description=_module_doc("modelrl.experiment.sweep"),
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    sweeper.add_argument("spec", nargs="?", metavar="SPEC.yaml", help="the sweep's spec (YAML)")
    sweeper.add_argument("--out", help="sweep directory (default runs/sweep-<spec>-<time>)")
    sweeper.add_argument("--resume", metavar="DIR", help="continue a sweep: run only its unfinished trials")
    sweeper.add_argument("--address", help="an existing Ray cluster's address (default: Ray on this machine)")
    sweeper.add_argument("--backend", choices=["ray", "processes"], help="overrides the spec's backend")
    sweeper.add_argument("--jobs", type=int, help="parallel processes for backend processes (default: cores)")
    sweeper.add_argument("--no-progress", action="store_true")
    sweeper.set_defaults(func=cmd_sweep)

    plot = sub.add_parser("plot", help="redraw learning curves from run directories")
    plot.add_argument("run_dirs", nargs="+")
    plot.add_argument("--out", default="curves.png")
    plot.add_argument("--metric", default="eval_return")
    plot.add_argument("--title")
    plot.set_defaults(func=cmd_plot)

    report = sub.add_parser("model-report", help="how far to trust a run's learned model: errors, plots")
    report.add_argument("run_dir", help="a run directory of a model-learning agent (e.g. pets)")
    report.add_argument("--episodes", type=int, default=5, help="fresh held-out episodes (default 5)")
    report.add_argument("--horizon", type=int, default=25, help="longest open-loop rollout k (default 25)")
    report.add_argument("--policy", choices=["random", "agent"], default="random",
                        help="who acts in the held-out episodes (agent: its planner, slower)")
    report.add_argument("--seed", type=int, default=12345)
    report.add_argument("--threads", type=int, help=THREADS_HELP)
    report.add_argument("--import", dest="imports", action="append", metavar="MODULE", help=IMPORT_HELP)
    report.set_defaults(func=cmd_model_report)
    predict = sub.add_parser("predict", help="a latent world model's open-loop video prediction: PNG, GIF")
    predict.add_argument("run_dir", help="a run directory (or checkpoint) of dreamer or planet")
    predict.add_argument("--context", type=int, default=5, help="observed steps before open loop (default 5)")
    predict.add_argument("--horizon", type=int, default=45, help="open-loop steps (default 45)")
    predict.add_argument("--seed", type=int, default=0, help="the episode's reset seed")
    predict.add_argument("--out", help="directory for the files (default: the run's plots/)")
    predict.add_argument("--threads", type=int, help=THREADS_HELP)
    predict.add_argument("--import", dest="imports", action="append", metavar="MODULE", help=IMPORT_HELP)
    predict.set_defaults(func=cmd_predict)
    play = sub.add_parser("play", help="play a trained board-game agent (alphazero, muzero) in the terminal")
    play.add_argument("run_dir", help="a run directory (or checkpoint) of alphazero")
    play.add_argument("--second", action="store_true", help="let the agent move first")
    play.add_argument("--threads", type=int, help=THREADS_HELP)
    play.set_defaults(func=cmd_play)
    demo = sub.add_parser("demo", help="a small real comparison with a plot (under a minute)")
    demo.add_argument("--out")
    demo.add_argument("--jobs", type=int, help="parallel processes (default: all cores)")
    demo.add_argument("--no-progress", action="store_true")
    demo.set_defaults(func=cmd_demo)

    lister = sub.add_parser("list", help="the agents and modelrl's own envs; with AGENT, its config keys")
    lister.add_argument("agent", nargs="?", help="an agent id: list its config keys, defaults and meaning")
    lister.set_defaults(func=cmd_list)

    config = sub.add_parser("config", help="an agent's config keys, their defaults and meaning")
    config.add_argument("agent", help="agent id, e.g. pets")
    config.set_defaults(func=cmd_config)
    return parser


def _module_doc(name: str) -> str:
    """A module's docstring without importing it (the sweep's pulls in matplotlib and torch)."""
    import ast
    import importlib.util

    return ast.get_docstring(ast.parse(Path(importlib.util.find_spec(name).origin).read_text("utf-8"))) or ""


def _version() -> str:
    from modelrl import __version__

    return __version__


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _os_error(error: OSError) -> str:
    if error.filename is None:
        return str(error)
    paths = error.filename if error.filename2 is None else f"{error.filename} -> {error.filename2}"
    return f"{paths}: {error.strerror or error}"


def _interrupted(interrupt: KeyboardInterrupt) -> str:
    from modelrl.experiment.runner import RunInterrupted

    if hasattr(interrupt, "out_dir"):  # a sweep's
        return (f"modelrl: interrupted; `modelrl sweep --resume {shlex.quote(str(interrupt.out_dir))}` runs "
                "its unfinished trials, each from its last checkpoint")

    if not isinstance(interrupt, RunInterrupted):
        return "modelrl: interrupted"
    if interrupt.run_dir is None:
        return ("modelrl: interrupted before the run's first checkpoint; its directory was removed, so there "
                "is nothing to resume")
    return (f"modelrl: interrupted at env step {interrupt.env_steps}; `modelrl train --resume "
            f"{shlex.quote(str(interrupt.run_dir))}` continues the run from its last checkpoint")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line each, like errors: users read them, they do not debug them. Those of other
    libraries (Gymnasium's env checker, torch) say whose they are."""
    text = _one_line(_ANSI_ESCAPE.sub("", str(message)))
    package = Path(filename).parent
    while (package.parent / "__init__.py").is_file():
        package = package.parent
    source = "" if package.name == "modelrl" else f" from {package.name}"
    print(f"modelrl: warning{source}: {text}", file=sys.stderr if file is None else file)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.showwarning = _show_warning
    try:
        if getattr(args, "imports", None):
            from modelrl.envs import import_modules

            import_modules(args.imports)
        args.func(args)
    except ModelRLError as error:
        print(f"modelrl: error: {_one_line(str(error))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as error:  # a path that cannot be read or written: --runs-root, --out, --run-dir, ...
        print(f"modelrl: error: {_one_line(_os_error(error))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as interrupt:
        print(_interrupted(interrupt), file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
