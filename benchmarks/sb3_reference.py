"""stable-baselines3 as the model-free reference, run in the same benchmark as our agents.

Protocol of the issue's anchors: default hyperparameters, one thread, deterministic evaluation every 1,000
env steps on a separate env, 10 episodes. Needs the `bench` extra (`pip install -e ".[bench]"`).
"""

from __future__ import annotations

import time

import numpy as np


def sac_curve(env_id: str, seed: int, total_steps: int, threshold: float | None = None, eval_every: int = 1000,
              eval_episodes: int = 10) -> dict:
    """Learning curve of SB3 SAC; stops early once the mean eval return reaches `threshold`."""
    import gymnasium as gym
    from stable_baselines3 import SAC
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    env, eval_env = gym.make(env_id), Monitor(gym.make(env_id))
    eval_env.reset(seed=10_000 + seed)
    model = SAC("MlpPolicy", env, seed=seed, verbose=0, device="cpu")
    steps, returns, started = [], [], time.perf_counter()
    while model.num_timesteps < total_steps:
        model.learn(eval_every, reset_num_timesteps=False)
        mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=eval_episodes, deterministic=True)
        steps.append(int(model.num_timesteps))
        returns.append(float(mean))
        if threshold is not None and mean >= threshold:
            break
    seconds = time.perf_counter() - started
    return {"seed": seed, "env_steps": steps, "eval_return": returns, "seconds": round(seconds, 1),
            "steps_per_second": round(steps[-1] / seconds, 1) if steps else None}


def steps_to(curve: dict, threshold: float) -> int | None:
    return next((s for s, r in zip(curve["env_steps"], curve["eval_return"], strict=True) if r >= threshold), None)


def median_or_none(values):
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None
