"""Hyperparameters of the stable-baselines3 references, and the older helpers a few studies still use.

The protocol every sample-efficiency study now follows (ours and SB3 evaluated alike, from the same reset
seeds, threshold held for two evaluations) is in common.py (`Ours`, `SB3`, `study_main`); SB3 needs the
`bench` extra (`pip install -e ".[bench]"`). `modelrl_curve` below is the earlier single-evaluation rule,
kept for sac_precision.py, which compares two of our own settings.
"""

from __future__ import annotations

import time

import numpy as np

import modelrl

# rl-baselines3-zoo's tuned DQN hyperparameters for CartPole-v1 (a 50k-step budget).
ZOO_DQN_CARTPOLE = {"learning_rate": 2.3e-3, "batch_size": 64, "buffer_size": 100_000,
                    "learning_starts": 1000, "gamma": 0.99, "target_update_interval": 10, "train_freq": 256,
                    "gradient_steps": 128,
                    "exploration_fraction": 0.16, "exploration_final_eps": 0.04,
                    "policy_kwargs": {"net_arch": [256, 256]}}


def modelrl_curve(agent_id: str, env_id: str, seed: int, total_steps: int, threshold: float | None = None,
                  eval_every: int = 1000, eval_episodes: int = 10, log: bool = True, **overrides) -> dict:
    """The same protocol for one of our agents; extra numbers from its last metrics row come along."""
    agent = modelrl.make_agent(agent_id, env=env_id, seed=seed, **overrides)
    steps, returns, started = [], [], time.perf_counter()
    while agent.env_steps < total_steps:
        agent.learn(total_steps=min(eval_every, total_steps - agent.env_steps))
        value = agent.evaluate(eval_episodes)["eval_return"]
        steps.append(agent.env_steps)
        returns.append(float(value))
        if log:
            print(f"{agent_id} seed {seed}: {agent.env_steps} steps, eval return {value:.1f} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
        if threshold is not None and value >= threshold:
            break
    seconds = time.perf_counter() - started
    metrics = {k: v for k, v in agent.metrics().items() if isinstance(v, (int, float))}
    return {"seed": seed, "env_steps": steps, "eval_return": returns, "seconds": round(seconds, 1),
            "steps_per_second": round(agent.env_steps / seconds, 2), "final_metrics": metrics}


def steps_to(curve: dict, threshold: float) -> int | None:
    pairs = zip(curve["env_steps"], curve["eval_return"], strict=True)
    return next((s for s, r in pairs if r >= threshold), None)


def median_or_none(values):
    """Median steps to a threshold, a seed that never reached it counting as later than any that did (a
    censored value, not one to drop); None when the median itself was not reached."""
    median = float(np.median([np.inf if v is None else v for v in values])) if values else np.inf
    return median if np.isfinite(median) else None
