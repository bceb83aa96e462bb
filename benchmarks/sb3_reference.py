"""stable-baselines3 as the model-free reference, and our agents' curves measured by the same protocol.

Protocol of the issue's anchors: deterministic evaluation every 1,000 env steps on a separate env,
10 episodes, one thread. SB3 runs with default hyperparameters unless given others (the rl-zoo values for
DQN on CartPole). Needs the `bench` extra (`pip install -e ".[bench]"`).
"""

from __future__ import annotations

import time

import numpy as np

import modelrl

# rl-baselines3-zoo's tuned DQN hyperparameters for CartPole-v1 (a 50k-step budget).
ZOO_DQN_CARTPOLE = {"learning_rate": 2.3e-3, "batch_size": 64, "buffer_size": 100_000, "learning_starts": 1000,
                    "gamma": 0.99, "target_update_interval": 10, "train_freq": 256, "gradient_steps": 128,
                    "exploration_fraction": 0.16, "exploration_final_eps": 0.04,
                    "policy_kwargs": {"net_arch": [256, 256]}}


def sb3_curve(algorithm: str, env_id: str, seed: int, total_steps: int, threshold: float | None = None,
              eval_every: int = 1000, eval_episodes: int = 10, **hyperparameters) -> dict:
    """Learning curve of SB3's `algorithm` ("SAC" or "DQN") in one `learn(total_steps)` call, so schedules
    keep their meaning; evaluation happens in a callback, which stops the run at `threshold`."""
    import gymnasium as gym
    import stable_baselines3
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    env, eval_env = gym.make(env_id), Monitor(gym.make(env_id))
    eval_env.reset(seed=10_000 + seed)
    steps, returns = [], []

    class Evaluate(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % eval_every:
                return True
            mean, _ = evaluate_policy(self.model, eval_env, n_eval_episodes=eval_episodes, deterministic=True)
            steps.append(int(self.num_timesteps))
            returns.append(float(mean))
            return threshold is None or mean < threshold

    model = getattr(stable_baselines3, algorithm)("MlpPolicy", env, seed=seed, verbose=0, device="cpu",
                                                  **hyperparameters)
    started = time.perf_counter()
    model.learn(total_steps, callback=Evaluate())
    seconds = time.perf_counter() - started
    return {"seed": seed, "env_steps": steps, "eval_return": returns, "seconds": round(seconds, 1),
            "steps_per_second": round(steps[-1] / seconds, 1) if steps else None}


def sac_curve(env_id: str, seed: int, total_steps: int, threshold: float | None = None, **kwargs) -> dict:
    return sb3_curve("SAC", env_id, seed, total_steps, threshold, **kwargs)


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
    return next((s for s, r in zip(curve["env_steps"], curve["eval_return"], strict=True) if r >= threshold), None)


def median_or_none(values):
    """Median steps to a threshold, a seed that never reached it counting as later than any that did (a
    censored value, not one to drop); None when the median itself was not reached."""
    median = float(np.median([np.inf if v is None else v for v in values])) if values else np.inf
    return median if np.isfinite(median) else None
