"""Open-loop prediction of a latent world model (Dreamer, PlaNet): what the model imagines against what
happens, for the same actions.

The agent's greedy policy plays a fresh episode from a reset seed. The model reads the first `context`
observations (its posteriors), then predicts the next `horizon` steps from the actions alone (its prior, the
most likely latent at each step), with no observation. Written beside the run: a PNG strip (images: real
frames above predicted ones and their difference; vectors: each dimension over time), a GIF of real and
predicted frames side by side (images), and a JSON with the errors and the real and imagined returns.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from modelrl.agents import load
from modelrl.agents.latent import LatentModelAgent
from modelrl.envs import make_env
from modelrl.errors import ConfigError, RunDirError
from modelrl.experiment.runner import CHECKPOINT
from modelrl.models.distributions import symexp
from modelrl.models.encoders import image_frames, image_input

GIF_FRAME_MS = 100


@torch.no_grad()
def open_loop_prediction(agent: LatentModelAgent, context: int = 5, horizon: int = 45,
                         seed: int = 0) -> dict:
    """Real and predicted observations and rewards of an episode's first `context + horizon` steps (fewer if
    it ends sooner): the first `context` predictions are reconstructions from posteriors, the rest open
    loop."""
    if context < 1 or horizon < 1:
        raise ConfigError(f"context and horizon must be >= 1, got {context} and {horizon}")
    env = make_env(agent.env_id, **agent.env_kwargs)
    obs, info = env.reset(seed=seed)
    observations, actions, rewards = [obs], [np.zeros(agent.action_dim, np.float32)], [0.0]
    state = agent.initial_state()
    for _ in range(context + horizon - 1):
        action, state = agent.policy(obs, state, info, deterministic=True)
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        actions.append(agent.model_action(action))
        rewards.append(float(reward))
        if terminated or truncated:
            break
    env.close()
    steps = len(observations)
    if steps <= context:
        raise ConfigError(f"the episode ended after {steps} steps, within the {context} steps of context")
    model, device, real = agent.model, agent.device, np.stack(observations)
    obs_t = torch.as_tensor(real, device=device)[:, None]
    action_t = torch.as_tensor(np.stack(actions), device=device)[:, None]
    is_first = torch.zeros(steps, 1, dtype=torch.bool, device=device)
    is_first[0] = True
    rssm = model.rssm
    posteriors, _ = rssm.observe(model.encoder(obs_t[:context]), action_t[:context], is_first[:context])
    features = [rssm.features(posteriors)]
    state = {"deter": posteriors["deter"][-1], "stoch": posteriors["stoch"][-1]}
    for t in range(context, steps):
        state = rssm.imagine_step(state, action_t[t], sample=False)
        features.append(rssm.features(state)[None])
    features = torch.cat(features)[:, 0]
    decoded = model.decoder(features)
    if model.kind == "image":
        predicted = image_frames(decoded).cpu().numpy()
        error = (decoded - image_input(obs_t[:, 0])).pow(2).mean((-3, -2, -1))
    else:
        values = symexp(decoded)
        predicted = values.cpu().numpy()
        error = (values - obs_t[:, 0].float()).pow(2).mean(-1)
    predicted_rewards = model.reward(features).cpu().numpy()
    last = real[context - 1 : context].repeat(steps - context, 0)  # the copy-last-frame baseline
    copy_error = ((last.astype(np.float32) - real[context:].astype(np.float32))
                  / (255.0 if model.kind == "image" else 1.0)) ** 2
    return {"kind": model.kind, "context": context, "steps": steps, "real": real, "predicted": predicted,
            "real_rewards": np.asarray(rewards, np.float32), "predicted_rewards": predicted_rewards,
            "error": error.cpu().numpy(), "copy_last_error": copy_error.reshape(steps - context, -1).mean(-1)}


def summary(prediction: dict) -> dict:
    context = prediction["context"]
    return {"context": context, "open_loop_steps": prediction["steps"] - context,
            "open_loop_mse": float(prediction["error"][context:].mean()),
            "copy_last_observation_mse": float(prediction["copy_last_error"].mean()),
            "real_return": float(prediction["real_rewards"][context:].sum()),
            "imagined_return": float(prediction["predicted_rewards"][context:].sum())}


def write_prediction(prediction: dict, out: Path, title: str) -> list[Path]:
    """The PNG strip (and GIF, for images) and JSON of a prediction, under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "open_loop_prediction.png"]
    if prediction["kind"] == "image":
        _image_strip(prediction, paths[0], title)
        paths.append(out / "open_loop_prediction.gif")
        _gif(prediction, paths[1])
    else:
        _vector_plot(prediction, paths[0], title)
    paths.append(out / "open_loop_prediction.json")
    paths[-1].write_text(json.dumps({"title": title, **summary(prediction),
                                     "mse_by_step": [round(float(x), 6) for x in prediction["error"]]},
                                    indent=1))
    return paths


def _image_strip(prediction: dict, path: Path, title: str, columns: int = 10) -> None:
    real, predicted, context = prediction["real"], prediction["predicted"], prediction["context"]
    shown = np.unique(np.linspace(0, len(real) - 1, columns).round().astype(int))
    fig, axes = plt.subplots(3, len(shown), figsize=(1.3 * len(shown), 4.2), squeeze=False)
    difference = np.abs(real.astype(np.int16) - predicted.astype(np.int16)).astype(np.uint8)
    for column, t in enumerate(shown):
        for row, frames in enumerate((real, predicted, difference)):
            axes[row, column].imshow(frames[t])
            axes[row, column].set_xticks([])
            axes[row, column].set_yticks([])
        axes[0, column].set_title(f"t={t}" + (" (ctx)" if t < context else ""), fontsize=7)
    for row, label in enumerate(("real", "model", "|difference|")):
        axes[row, 0].set_ylabel(label, fontsize=8)
    fig.suptitle(f"{title}\nopen loop after {context} observed steps", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _gif(prediction: dict, path: Path) -> None:
    from PIL import Image

    frames = [Image.fromarray(np.concatenate([real, predicted], 1))
              for real, predicted in zip(prediction["real"], prediction["predicted"], strict=True)]
    frames = [frame.resize((frame.width * 2, frame.height * 2), Image.NEAREST) for frame in frames]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=GIF_FRAME_MS, loop=0)


def _vector_plot(prediction: dict, path: Path, title: str) -> None:
    real, predicted, context = prediction["real"], prediction["predicted"], prediction["context"]
    dims = real.shape[1]
    fig, axes = plt.subplots(dims + 1, 1, figsize=(7, 1.4 * (dims + 1)), sharex=True, squeeze=False)
    steps = np.arange(len(real))
    rows = [(f"obs[{d}]", real[:, d], predicted[:, d]) for d in range(dims)]
    rows.append(("reward", prediction["real_rewards"], prediction["predicted_rewards"]))
    for ax, (label, actual, model) in zip(axes[:, 0], rows, strict=True):
        ax.plot(steps, actual, color="black", label="real")
        ax.plot(steps, model, color="tab:blue", linestyle="--", label="model")
        ax.axvspan(0, context - 1, color="grey", alpha=0.15)
        ax.set_ylabel(label, fontsize=8)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel(f"step (shaded: {context} observed steps; then open loop)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_prediction(run_dir: str | Path, *, context: int = 5, horizon: int = 45, seed: int = 0,
                   out: str | Path | None = None) -> tuple[dict, list[Path]]:
    """`modelrl predict`: load a run's checkpoint and write its open-loop prediction under `out` (default:
    the run's `plots/`)."""
    run_dir = Path(run_dir)
    checkpoint = run_dir / CHECKPOINT if run_dir.is_dir() else run_dir
    if not checkpoint.exists():
        raise RunDirError(f"{run_dir} is not a run directory (no {CHECKPOINT})")
    agent = load(checkpoint)
    if not isinstance(agent, LatentModelAgent):
        raise RunDirError(f"predict shows a latent world model (dreamer, planet); {run_dir} holds "
                          f"{agent.agent_id} (model-report covers its model)")
    prediction = open_loop_prediction(agent, context, horizon, seed)
    out = Path(out) if out is not None else (run_dir if run_dir.is_dir() else run_dir.parent) / "plots"
    title = f"{agent.agent_id} on {agent.env_id} after {agent.env_steps} env steps"
    return summary(prediction), write_prediction(prediction, out, title)
