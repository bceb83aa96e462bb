"""`modelrl model-report RUN_DIR`: diagnostics of a run's learned model beside simpler models.

The run's own ensemble is compared with a single deterministic net, a single probabilistic net and a
linear model, each fitted on the same real transitions (the run's replay buffer), all measured on fresh
held-out episodes. The simpler models train with the run's own model settings (learning rate, weight decay,
batch size). For a planner with a learned value (`terminal_value=True`, or td-mpc2, whose model is latent
and has only this part), also how far its horizon-H estimate (planned rewards plus the discounted value at
the horizon) is from the discounted return that followed. Writes `model_report/report.json` and plots into
the run directory.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from modelrl.agents import load
from modelrl.diagnostics import TABLE_LEVELS, collect_trajectories, model_report, plot_report, value_check
from modelrl.errors import ConfigError, RunDirError
from modelrl.experiment.runner import CHECKPOINT
from modelrl.models.dynamics import DynamicsModel
from modelrl.models.linear import fit_linear
from modelrl.models.training import Transitions, fit


def _fit_variant(model: DynamicsModel, data: Transitions, generator, batch_size: int, lr: float,
                 weight_decay: float) -> DynamicsModel:
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    fit(model, data, optimizer, generator=generator, batch_size=batch_size, max_epochs=200, patience=10,
        holdout_ratio=0.1, bootstrap=False)
    return model


def _report_models(agent, trainer, model: DynamicsModel, seed: int) -> dict[str, DynamicsModel]:
    """The run's model and the simpler ones fitted on its data with its settings."""
    data = Transitions.from_buffer(agent.buffer, model.device)
    generator = torch.Generator(model.device).manual_seed(seed)
    base = model.spec
    single = dataclasses.replace(base, ensemble_size=1, num_elites=1, learn_reward=False,
                                 learn_termination=False)
    # The model's own settings: each agent names them differently (pets: lr; mbpo: model_lr; ...).
    settings = trainer.optimizer.param_groups[0]
    lr, weight_decay, batch_size = settings["lr"], settings["weight_decay"], trainer.fit_kwargs["batch_size"]
    models = {f"ensemble of {len(model.elites)} (run's)": model}
    for name, spec in (("deterministic net", dataclasses.replace(single, probabilistic=False)),
                       ("probabilistic net", dataclasses.replace(single, probabilistic=True))):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            variant = DynamicsModel(spec).to(model.device)
        models[name] = _fit_variant(variant, data, generator, batch_size, lr, weight_decay)
    linear = DynamicsModel(dataclasses.replace(single, num_layers=0, probabilistic=False)).to(model.device)
    fit_linear(linear, data, generator=generator, bootstrap=False)
    models["linear"] = linear
    return models


def run_model_report(run_dir: str | Path, *, episodes: int = 5, horizon: int = 25, policy: str = "random",
                     seed: int = 12345) -> tuple[dict, list[Path]]:
    run_dir = Path(run_dir)
    checkpoint = run_dir / CHECKPOINT if run_dir.is_dir() else run_dir
    if not checkpoint.exists():
        raise RunDirError(f"{run_dir} is not a run directory (no {CHECKPOINT})")
    if policy not in ("random", "agent"):
        raise ConfigError(f"policy must be 'random' or 'agent', got {policy!r}")
    for name, value in (("episodes", episodes), ("horizon", horizon)):
        if value < 1:
            raise ConfigError(f"{name} must be >= 1, got {value}")
    agent = load(checkpoint)
    trainer = getattr(agent, "trainer", None)
    model = getattr(trainer, "model", None)
    has_model = isinstance(model, DynamicsModel) and len(getattr(agent, "buffer", ())) > 0
    # A planner with a learned value: mpc/pets with a terminal value (their `value`), or td-mpc2 (no `value`:
    # its Qs are the value).
    has_value = hasattr(agent, "planned_returns") and getattr(agent, "value", True) is not None
    if not (has_model or has_value):
        raise RunDirError(f"the {agent.agent_id} agent of {run_dir} has no learned dynamics model with data "
                          "and no learned value")
    if has_model and trainer.fits == 0 or not has_model and getattr(agent, "updates", 1) == 0:
        config = agent.config
        start = next(name for name in ("random_steps", "learning_starts", "seed_steps")
                     if hasattr(config, name))
        advice = ("with planning_steps=0 it never fits one" if getattr(config, "planning_steps", None) == 0
                  else f"train past {start}={getattr(agent, start, getattr(config, start))} first")
        raise RunDirError(f"the {agent.agent_id} model of {run_dir} was never fitted ({agent.env_steps} env "
                          f"steps); {advice}")
    act = None if policy == "random" else (lambda obs: agent.act(obs, deterministic=True))
    trajectories = collect_trajectories(agent.env_id, episodes, seed, act, agent.env_kwargs)
    if has_model:
        report = model_report(_report_models(agent, trainer, model, seed), trajectories,
                              min(horizon, max(len(t.actions) for t in trajectories)))
        report["training_transitions"] = len(agent.buffer)
    else:
        report = {"models": {}, "transitions": int(sum(len(t.actions) for t in trajectories)),
                  "training_transitions": len(agent.buffer)}
    if has_value:
        gamma = getattr(agent, "gamma", None) or agent.config.gamma
        report["value"] = value_check(agent.planned_returns, trajectories, agent.config.horizon, gamma,
                                      agent.device)
    report.update(run_dir=str(run_dir), agent=agent.agent_id, env_id=agent.env_id, env_steps=agent.env_steps,
                  heldout_episodes=episodes, heldout_policy=policy)
    out_dir = run_dir / "model_report" if run_dir.is_dir() else run_dir.parent / "model_report"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    plots = plot_report(report, out_dir)
    return report, [out_dir / "report.json", *plots]


def format_report(report: dict) -> str:
    title = (f"{report['agent']} on {report['env_id']}: {report['training_transitions']} training "
             f"transitions, {report['transitions']} held-out ({report['heldout_policy']} policy)")
    lines = [title, *_model_lines(report)] if report["models"] else [title]
    if "value" in report:
        check = report["value"]
        rho = "-" if check["spearman"] is None else f"{check['spearman']:.2f}"
        lines.append(f"value check: planned {check['horizon']}-step return + value "
                     f"(gamma {check['gamma']:.3g}) over {check['states']} states: estimate "
                     f"{check['estimate_mean']:.4g} against the return that followed "
                     f"{check['return_mean']:.4g}; bias {check['bias']:.3g} "
                     f"({100 * check['normalized_bias']:.0f}%), RMSE {check['rmse']:.3g}, Spearman {rho}")
    return "\n".join(lines)


def _model_lines(report: dict) -> list[str]:
    horizon = report["horizon"]
    short = min(5, horizon)  # a short horizon beside the longest; one column when they coincide
    ks = [short, horizon] if short < horizon else [horizon]
    cover = "/".join(f"{round(100 * q)}" for q in TABLE_LEVELS)
    header = (f"{'model':<26}{'1-step MSE':>11}{'1-step NLL':>11}"
              + "".join(f"{f'k={k} MSE':>10}" for k in ks)
              + f"{'mean z^2':>10}{f'cover {cover}%':>18}{'disagr. rho':>12}")
    lines = [header]
    for name, entry in report["models"].items():
        nll = entry["one_step"]["nll_mean"]
        gaussian, spread = entry["calibration"]["gaussian"], entry["calibration"]["disagreement"]
        rho = "-" if spread is None else f"{spread['spearman']:.2f}"
        if gaussian is None:
            z2 = coverage = "-"
        else:
            observed = dict(zip(gaussian["coverage"]["nominal"], gaussian["coverage"]["observed"],
                                strict=True))
            z2 = f"{gaussian['mean_z2']:.3g}"
            coverage = "/".join(f"{100 * observed[q]:.0f}" for q in TABLE_LEVELS)
        lines.append(f"{name:<26}{entry['one_step']['mse_mean']:>11.3g}"
                     f"{'-' if nll is None else f'{nll:.3g}':>11}"
                     + "".join(f"{entry['k_step'][k - 1]:>10.3g}" for k in ks)
                     + f"{z2:>10}{coverage:>18}{rho:>12}")
    lines.append("mean z^2: 1 if calibrated; cover: % of the truth in the predictive Gaussian's central "
                 f"{cover}% intervals")
    lines.append("disagr. rho: rank correlation of the members' disagreement with their error; '-': none "
                 "(a single deterministic net states no uncertainty)")
    return lines
