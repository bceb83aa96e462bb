"""`modelrl model-report RUN_DIR`: diagnostics of a run's learned model beside simpler models.

The run's own ensemble is compared with a single deterministic net, a single probabilistic net and a
linear model, each fitted on the same real transitions (the run's replay buffer), all measured on fresh
held-out episodes. The simpler models train with the run's own model settings (learning rate, weight decay,
batch size). Writes `model_report/report.json` and three plots into the run directory.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from modelrl.agents import load
from modelrl.diagnostics import TABLE_LEVELS, collect_trajectories, model_report, plot_report
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
    if not isinstance(model, DynamicsModel) or len(getattr(agent, "buffer", ())) == 0:
        raise RunDirError(f"the {agent.agent_id} agent of {run_dir} has no learned dynamics model with data")
    if trainer.fits == 0:
        config = agent.config
        start = "random_steps" if hasattr(config, "random_steps") else "learning_starts"
        advice = ("with planning_steps=0 it never fits one" if getattr(config, "planning_steps", None) == 0
                  else f"train past {start}={getattr(config, start)} first")
        raise RunDirError(f"the {agent.agent_id} model of {run_dir} was never fitted ({agent.env_steps} env "
                          f"steps); {advice}")
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

    act = None if policy == "random" else (lambda obs: agent.act(obs, deterministic=True))
    trajectories = collect_trajectories(agent.env_id, episodes, seed, act, agent.env_kwargs)
    longest = max(len(t.actions) for t in trajectories)
    report = model_report(models, trajectories, min(horizon, longest))
    report.update(run_dir=str(run_dir), agent=agent.agent_id, env_id=agent.env_id, env_steps=agent.env_steps,
                  training_transitions=len(data), heldout_episodes=episodes, heldout_policy=policy)
    out_dir = run_dir / "model_report" if run_dir.is_dir() else run_dir.parent / "model_report"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    plots = plot_report(report, out_dir)
    return report, [out_dir / "report.json", *plots]


def format_report(report: dict) -> str:
    horizon = report["horizon"]
    short = min(5, horizon)  # a short horizon beside the longest; one column when they coincide
    ks = [short, horizon] if short < horizon else [horizon]
    cover = "/".join(f"{round(100 * q)}" for q in TABLE_LEVELS)
    title = (f"{report['agent']} on {report['env_id']}: {report['training_transitions']} training "
             f"transitions, {report['transitions']} held-out ({report['heldout_policy']} policy)")
    header = (f"{'model':<26}{'1-step MSE':>11}{'1-step NLL':>11}"
              + "".join(f"{f'k={k} MSE':>10}" for k in ks)
              + f"{'mean z^2':>10}{f'cover {cover}%':>18}{'disagr. rho':>12}")
    lines = [title, header]
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
    return "\n".join(lines)
