"""How far to trust a learned dynamics model: measured on real trajectories it was not trained on.

- `one_step_errors`: per state dimension, the squared error of the mean prediction and the Gaussian NLL
  of the truth under the predictive distribution (members' mixture, moment-matched).
- `k_step_errors`: open-loop rollouts along real trajectories with the real actions; the error after
  k = 1..H steps shows how mistakes compound over a planning horizon.
- `calibration`: members' disagreement against the actual error of their mean, binned by disagreement;
  a trustworthy ensemble's disagreement rises with its error.
Errors are in units of each dimension's standard deviation in the data, so dimensions compare.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from modelrl.envs import make_env
from modelrl.models.dynamics import DynamicsModel


@dataclass
class Trajectory:
    obs: np.ndarray  # (T + 1, obs_dim)
    actions: np.ndarray  # (T, ...)


def collect_trajectories(env_id: str, episodes: int, seed: int, policy: Callable | None = None,
                         env_kwargs: dict | None = None, max_steps: int = 1000) -> list[Trajectory]:
    """Real episodes: `policy(obs) -> action`, or uniform random actions when None."""
    env = make_env(env_id, **(env_kwargs or {}))
    env.action_space.seed(seed)
    trajectories = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        observations, actions, done = [obs], [], False
        while not done and len(actions) < max_steps:
            action = env.action_space.sample() if policy is None else policy(obs)
            obs, _, terminated, truncated, _ = env.step(action)
            observations.append(obs)
            actions.append(action)
            done = terminated or truncated
        trajectories.append(Trajectory(np.asarray(observations, np.float32), np.asarray(actions)))
    return trajectories


def _mixture(model: DynamicsModel, obs: torch.Tensor, action: torch.Tensor):
    """Elites' predictions, their mean, the mixture's variance and the disagreement (variance of means)."""
    with torch.no_grad():
        prediction = model.predict(obs, action, members=model.elites)
    means = prediction.next_obs  # (E, B, d)
    mean = means.mean(0)
    disagreement = means.var(0, unbiased=False)
    if prediction.next_obs_var is not None:
        variance = disagreement + prediction.next_obs_var.mean(0)
    else:  # a single deterministic net states no uncertainty at all
        variance = disagreement if len(means) > 1 else None
    return means, mean, variance, disagreement


def _transitions(trajectories: list[Trajectory], device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    obs = torch.as_tensor(np.concatenate([t.obs[:-1] for t in trajectories]), device=device)
    actions = torch.as_tensor(np.concatenate([t.actions for t in trajectories]), device=device)
    next_obs = torch.as_tensor(np.concatenate([t.obs[1:] for t in trajectories]), device=device)
    if torch.is_floating_point(actions):
        actions = actions.float()
    return obs, actions, next_obs


def one_step_errors(model: DynamicsModel, trajectories: list[Trajectory], scale: torch.Tensor) -> dict:
    """Per-dimension MSE (in data std units) and Gaussian NLL (nats, in data std units) of one-step
    predictions; the NLL is None for a single deterministic net, which states no variance."""
    obs, actions, next_obs = _transitions(trajectories, model.device)
    _, mean, variance, _ = _mixture(model, obs, actions)
    z = (mean - next_obs) / scale
    mse = (z**2).mean(0)
    result = {"mse": mse.tolist(), "mse_mean": float(mse.mean()), "nll": None, "nll_mean": None}
    if variance is not None:
        variance = (variance / scale**2).clamp_min(1e-12)
        nll = 0.5 * (z**2 / variance + variance.log() + math.log(2 * math.pi)).mean(0)
        result.update(nll=nll.tolist(), nll_mean=float(nll.mean()))
    return result


def k_step_errors(model: DynamicsModel, trajectories: list[Trajectory], horizon: int, scale: torch.Tensor
                  ) -> list[float]:
    """Mean squared error (data std units, averaged over dimensions) after k = 1..horizon open-loop steps,
    from every start point that has `horizon` real steps after it. Each elite follows its own mean
    prediction (no sampling); their average is compared with the truth."""
    starts = [(i, t) for i, traj in enumerate(trajectories) for t in range(len(traj.actions) - horizon + 1)]
    if not starts:
        raise ValueError(f"no held-out trajectory is {horizon} steps long; lower the horizon")
    device = model.device
    obs = torch.as_tensor(np.stack([trajectories[i].obs[t : t + horizon + 1] for i, t in starts]), device=device)
    actions = torch.as_tensor(np.stack([trajectories[i].actions[t : t + horizon] for i, t in starts]),
                              device=device)
    if torch.is_floating_point(actions):
        actions = actions.float()
    E = len(model.elites)
    state = obs[:, 0].expand(E, -1, -1)
    errors = []
    with torch.no_grad():
        for k in range(horizon):
            state, _, _ = model.sample(state, actions[:, k].expand(E, *actions[:, k].shape),
                                       members=model.elites, deterministic=True)
            errors.append(float((((state.mean(0) - obs[:, k + 1]) / scale) ** 2).mean()))
    return errors


def calibration(model: DynamicsModel, trajectories: list[Trajectory], scale: torch.Tensor, bins: int = 10
                ) -> dict:
    """Disagreement (std of the elites' means) against the error of their average, per transition, summed
    over dimensions in data std units; binned by disagreement quantile, with their rank correlation."""
    obs, actions, next_obs = _transitions(trajectories, model.device)
    _, mean, _, disagreement = _mixture(model, obs, actions)
    spread = ((disagreement / scale**2).sum(-1)).sqrt().cpu().numpy()
    error = ((((mean - next_obs) / scale) ** 2).sum(-1)).sqrt().cpu().numpy()
    order = np.argsort(spread)
    groups = np.array_split(order, min(bins, len(order)))
    ranks = lambda x: np.argsort(np.argsort(x))
    rho = float(np.corrcoef(ranks(spread), ranks(error))[0, 1]) if len(order) > 2 else float("nan")
    return {
        "disagreement": [float(spread[g].mean()) for g in groups],
        "error": [float(error[g].mean()) for g in groups],
        "spearman": rho,
    }


def data_scale(trajectories: list[Trajectory], device) -> torch.Tensor:
    obs = np.concatenate([t.obs for t in trajectories])
    return torch.as_tensor(obs.std(0), device=device).clamp_min(1e-6)


def model_report(models: dict[str, DynamicsModel], trajectories: list[Trajectory], horizon: int) -> dict:
    """All three diagnostics for each named model on the same held-out trajectories."""
    device = next(iter(models.values())).device
    scale = data_scale(trajectories, device)
    report = {"scale": scale.tolist(), "transitions": int(sum(len(t.actions) for t in trajectories)),
              "horizon": horizon, "models": {}}
    for name, model in models.items():
        entry = {"one_step": one_step_errors(model, trajectories, scale),
                 "k_step": k_step_errors(model, trajectories, horizon, scale)}
        if len(model.elites) > 1:
            entry["calibration"] = calibration(model, trajectories, scale)
        report["models"][name] = entry
    return report


def plot_report(report: dict, out_dir, obs_labels: list[str] | None = None) -> list:
    """one_step.png (per-dimension error), k_step.png (compounding error), calibration.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    models = report["models"]
    paths = []
    dims = len(report["scale"])
    labels = obs_labels or [f"s[{i}]" for i in range(dims)]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / len(models)
    for j, (name, entry) in enumerate(models.items()):
        x = np.arange(dims) + j * width
        axes[0].bar(x, entry["one_step"]["mse"], width, label=name, color=f"C{j}")
        if entry["one_step"]["nll"] is not None:
            axes[1].bar(x, entry["one_step"]["nll"], width, label=name, color=f"C{j}")
    for ax, title in zip(axes, ("1-step MSE (data std units)", "1-step Gaussian NLL (nats)"), strict=True):
        ax.set_xticks(np.arange(dims) + 0.4 - width / 2, labels)
        ax.set_title(title)
    axes[0].set_yscale("log")
    axes[0].legend()
    fig.tight_layout()
    paths.append(out_dir / "one_step.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    ks = np.arange(1, report["horizon"] + 1)
    for j, (name, entry) in enumerate(models.items()):
        ax.plot(ks, entry["k_step"], marker=".", label=name, color=f"C{j}")
    ax.set(xlabel="open-loop steps k", ylabel="MSE (data std units)", yscale="log",
           title=f"k-step compounding error ({report['transitions']} held-out steps)")
    ax.legend()
    fig.tight_layout()
    paths.append(out_dir / "k_step.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    calibrated = {name: entry["calibration"] for name, entry in models.items() if "calibration" in entry}
    if calibrated:
        fig, ax = plt.subplots(figsize=(5, 4.5))
        top = 0.0
        for name, entry in calibrated.items():
            ax.plot(entry["disagreement"], entry["error"], marker="o",
                    label=f"{name} (Spearman {entry['spearman']:.2f})")
            top = max(top, *entry["disagreement"], *entry["error"])
        ax.plot([0, top], [0, top], color="grey", linestyle=":", label="error = disagreement")
        ax.set(xlabel="ensemble disagreement (std, data units)", ylabel="error of the ensemble mean",
               title="Calibration (bins by disagreement)", xscale="log", yscale="log")
        ax.legend(fontsize=8)
        fig.tight_layout()
        paths.append(out_dir / "calibration.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths
