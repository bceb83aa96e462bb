"""How far to trust a learned dynamics model: measured on real trajectories it was not trained on.

- `one_step_errors`: per state dimension, the squared error of the mean prediction and the Gaussian NLL
  of the truth under the predictive distribution (members' mixture, moment-matched).
- `k_step_errors`: open-loop rollouts along real trajectories with the real actions; the error after
  k = 1..H steps shows how mistakes compound over a planning horizon.
- `calibration`: whether the stated uncertainty matches the errors. Where the model states a variance
  (probabilistic members, or several deterministic ones), the truth's z-scores under the moment-matched
  predictive Gaussian: mean z^2 (1 when calibrated) and the coverage of central intervals against their
  nominal levels. Where there are several members, also their disagreement against the error of their
  mean: a useful ensemble's disagreement rises with its error (it leaves out noise each member predicts,
  so it is not a calibration by itself). A single deterministic net states no uncertainty: nothing to check.
Errors are in units of each dimension's standard deviation in the data, so dimensions compare.
- `value_check`: for a planner with a learned value, how far its horizon-H return (the planned rewards of the
  actions really taken, plus the discounted value at the horizon) is from the discounted return that really
  followed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np
import torch

from modelrl.envs import make_env
from modelrl.models.dynamics import DynamicsModel

# Central Gaussian intervals whose coverage is checked; the report's table shows 50, 90 and 95%.
COVERAGE_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
TABLE_LEVELS = (0.5, 0.9, 0.95)


@dataclass
class Trajectory:
    obs: np.ndarray  # (T + 1, obs_dim)
    actions: np.ndarray  # (T, ...)
    rewards: np.ndarray | None = None  # (T,)
    terminated: bool = False  # the episode reached a terminal state (not a time limit)


def collect_trajectories(env_id: str, episodes: int, seed: int, policy: Callable | None = None,
                         env_kwargs: dict | None = None, max_steps: int = 1000) -> list[Trajectory]:
    """Real episodes: `policy(obs) -> action`, or uniform random actions when None."""
    env = make_env(env_id, **(env_kwargs or {}))
    env.action_space.seed(seed)
    trajectories = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        observations, actions, rewards, terminated, truncated = [obs], [], [], False, False
        while not (terminated or truncated) and len(actions) < max_steps:
            action = env.action_space.sample() if policy is None else policy(obs)
            obs, reward, terminated, truncated, _ = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(reward)
        trajectories.append(Trajectory(np.asarray(observations, np.float32), np.asarray(actions),
                                       np.asarray(rewards, np.float64), bool(terminated)))
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
    obs = torch.as_tensor(np.stack([trajectories[i].obs[t : t + horizon + 1] for i, t in starts]),
                          device=device)
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


def rank_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho: Pearson's correlation of ranks, ties sharing their average rank; NaN where either
    side is constant (no order to correlate)."""
    def ranks(v):
        _, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
        first = np.cumsum(counts) - counts
        return (first + (counts - 1) / 2)[inverse]

    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(ranks(x), ranks(y))[0, 1])


def gaussian_calibration(mean: torch.Tensor, variance: torch.Tensor, truth: torch.Tensor,
                         levels=COVERAGE_LEVELS) -> dict:
    """z-scores of the truth under N(mean, variance) per dimension: mean z^2 (overall and per dimension)
    and the fraction of z-scores inside each central interval, pooled over transitions and dimensions."""
    z2 = (truth - mean) ** 2 / variance.clamp_min(1e-12)
    # |z| <= q-quantile of |Z| is z^2 <= its square; one comparison against all levels at once.
    bounds = torch.tensor([NormalDist().inv_cdf((1 + q) / 2) ** 2 for q in levels], device=z2.device,
                          dtype=z2.dtype)
    inside = (z2.reshape(1, -1) <= bounds[:, None]).float().mean(1)
    return {"mean_z2": float(z2.mean()), "mean_z2_per_dim": z2.mean(0).tolist(),
            "coverage": {"nominal": list(levels), "observed": inside.tolist()}}


def calibration(model: DynamicsModel, trajectories: list[Trajectory], scale: torch.Tensor, bins: int = 10
                ) -> dict:
    """`gaussian`: `gaussian_calibration` under the predictive variance (the members' mixture,
    moment-matched), None for a single deterministic net; `variance` says where that variance comes from.
    `disagreement`: with several members, per transition the disagreement (root of the summed variance of
    the elites' means) and the error of their mean (root of the summed squares), both in data std units,
    binned by disagreement quantile (root mean square per bin) with their rank correlation; else None."""
    obs, actions, next_obs = _transitions(trajectories, model.device)
    means, mean, variance, disagreement = _mixture(model, obs, actions)
    result = {"variance": None, "gaussian": None, "disagreement": None}
    if variance is not None:
        result["variance"] = ("members' Gaussians and their disagreement" if model.spec.probabilistic
                              else "disagreement of deterministic members")
        result["gaussian"] = gaussian_calibration(mean, variance, next_obs)
    if len(means) > 1:
        spread2 = (disagreement / scale**2).sum(-1).cpu().numpy()
        error2 = (((mean - next_obs) / scale) ** 2).sum(-1).cpu().numpy()
        order = np.argsort(spread2, kind="stable")
        groups = np.array_split(order, min(bins, len(order)))
        result["disagreement"] = {
            "spread": [math.sqrt(spread2[g].mean()) for g in groups],
            "error": [math.sqrt(error2[g].mean()) for g in groups],
            "spearman": rank_correlation(spread2, error2),
        }
    return result


def data_scale(trajectories: list[Trajectory], device) -> torch.Tensor:
    obs = np.concatenate([t.obs for t in trajectories])
    return torch.as_tensor(obs.std(0), device=device).clamp_min(1e-6)


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """The discounted return from each step to the end of `rewards`."""
    returns, total = np.zeros(len(rewards)), 0.0
    for t in reversed(range(len(rewards))):
        total = rewards[t] + gamma * total
        returns[t] = total
    return returns


def value_check(planned_returns: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                trajectories: list[Trajectory], horizon: int, gamma: float, device="cpu") -> dict:
    """A value-guided planner's estimate beside the truth: at each state s_t of the held-out episodes,
    `planned_returns(obs (N, D), actions (N, H, ...))` of the H actions really taken from it (its planned
    rewards plus gamma^H V at the horizon) against the discounted return that followed. States too near the
    end of a time-limited episode (the return after it unknown for more than 1% of the discount weight) are
    left out; a terminal end counts in full. `normalized_bias` is mean(estimate - return) / |mean(return)|."""
    cut = math.ceil(math.log(0.01) / math.log(gamma)) if gamma < 1 else 0
    obs, actions, truth = [], [], []
    for trajectory in trajectories:
        steps = len(trajectory.actions)
        if trajectory.rewards is None:
            raise ValueError("a value check needs the rewards of its trajectories")
        returns = discounted_returns(trajectory.rewards, gamma)
        last = steps - horizon if trajectory.terminated else min(steps - horizon, steps - cut)
        for t in range(last + 1):
            obs.append(trajectory.obs[t])
            actions.append(trajectory.actions[t : t + horizon])
            truth.append(returns[t])
    if not truth:
        raise ValueError(f"no held-out state has a known discounted return (gamma {gamma}) and {horizon} "
                         "actions after it: collect longer episodes")
    with torch.no_grad():
        estimates = planned_returns(torch.as_tensor(np.stack(obs), dtype=torch.float32, device=device),
                                    torch.as_tensor(np.stack(actions), dtype=torch.float32, device=device))
    estimates, truth = estimates.double().cpu().numpy(), np.asarray(truth)
    bias = float(np.mean(estimates - truth))
    rho = rank_correlation(estimates, truth)
    return {"horizon": horizon, "gamma": gamma, "states": len(truth),
            "estimate_mean": float(estimates.mean()), "return_mean": float(truth.mean()), "bias": bias,
            "normalized_bias": bias / max(abs(float(truth.mean())), 1e-8),
            "rmse": float(np.sqrt(np.mean((estimates - truth) ** 2))),
            "spearman": None if math.isnan(rho) else rho,
            "estimates": estimates.tolist(), "returns": truth.tolist()}


def model_report(models: dict[str, DynamicsModel], trajectories: list[Trajectory], horizon: int) -> dict:
    """All three diagnostics for each named model on the same held-out trajectories."""
    device = next(iter(models.values())).device
    scale = data_scale(trajectories, device)
    report = {"scale": scale.tolist(), "transitions": int(sum(len(t.actions) for t in trajectories)),
              "horizon": horizon, "models": {}}
    for name, model in models.items():
        report["models"][name] = {"one_step": one_step_errors(model, trajectories, scale),
                                  "k_step": k_step_errors(model, trajectories, horizon, scale),
                                  "calibration": calibration(model, trajectories, scale)}
    return report


def plot_report(report: dict, out_dir, obs_labels: list[str] | None = None) -> list:
    """one_step.png (per-dimension error), k_step.png (compounding error), calibration.png (interval
    coverage of the predictive Gaussian; ensemble disagreement against error) where any model states an
    uncertainty; value.png (the value check's estimates against the returns) where the report has one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [_plot_value(report["value"], out_dir / "value.png")] if "value" in report else []
    models = report["models"]
    if not models:
        return paths
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

    gaussian = {name: entry["calibration"]["gaussian"] for name, entry in models.items()
                if entry["calibration"]["gaussian"] is not None}
    spread = {name: entry["calibration"]["disagreement"] for name, entry in models.items()
              if entry["calibration"]["disagreement"] is not None}
    if gaussian or spread:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
        colors = {name: f"C{j}" for j, name in enumerate(models)}
        ax = axes[0]
        for name, entry in gaussian.items():
            ax.plot(entry["coverage"]["nominal"], entry["coverage"]["observed"], marker="o",
                    color=colors[name], label=f"{name} (mean z^2 {entry['mean_z2']:.3g})")
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="calibrated")
        ax.set(xlabel="nominal coverage of the central interval", ylabel="observed coverage", xlim=(0, 1),
               ylim=(0, 1), title="Predictive Gaussian: interval coverage")
        ax.legend(fontsize=8)
        ax = axes[1]
        if spread:
            for name, entry in spread.items():
                ax.plot(entry["spread"], entry["error"], marker="o", color=colors[name],
                        label=f"{name} (Spearman {entry['spearman']:.2f})")
            values = np.concatenate([entry[key] for entry in spread.values() for key in ("spread", "error")])
            # Equal axes, so the diagonal is in view and distances from it read the same both ways.
            if values.min() > 0:  # whole decades: labelled major ticks only
                low = 10.0 ** math.floor(math.log10(values.min()))
                limits, scale = (low, max(10.0 ** math.ceil(math.log10(values.max())), 10 * low)), "log"
            else:  # identical members disagree by exactly 0
                limits, scale = (0.0, max(values.max(), 1e-12) * 1.05), "linear"
            ax.plot(limits, limits, color="grey", linestyle=":", label="error = disagreement")
            ax.set(xscale=scale, yscale=scale, xlim=limits, ylim=limits)
            ax.legend(fontsize=8)
        ax.set(xlabel="ensemble disagreement (RMS per bin, data std units)",
               ylabel="error of the ensemble mean (RMS per bin)",
               title="Ensemble disagreement vs error (bins by disagreement)")
        fig.tight_layout()
        paths.append(out_dir / "calibration.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


def _plot_value(check: dict, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    estimates, returns = np.asarray(check["estimates"]), np.asarray(check["returns"])
    ax.scatter(returns, estimates, s=6, alpha=0.5)
    low, high = min(estimates.min(), returns.min()), max(estimates.max(), returns.max())
    ax.plot([low, high], [low, high], color="grey", linestyle=":", label="estimate = return")
    rho = "-" if check["spearman"] is None else f"{check['spearman']:.2f}"
    ax.set(xlabel="discounted return that followed", ylabel=f"planned {check['horizon']}-step return + value",
           title=f"Value check: bias {check['bias']:.3g} ({100 * check['normalized_bias']:.0f}%), "
                 f"RMSE {check['rmse']:.3g},\nSpearman {rho}, {check['states']} states, "
                 f"gamma {check['gamma']:.3g}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
