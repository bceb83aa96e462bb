"""Cart-pole with a continuous force: the task of the PETS paper and mbrl-lib's PETS tutorial.

The physics are Gymnasium's CartPole-v1 (Barto et al. 1983; Euler steps of 0.02 s); the action in [-1, 1]
scales a force of at most 10 N. The reward is 1 per step; the episode ends when the pole leans past 12
degrees or the cart leaves the track, and the registered id stops it after 200 steps.
"""

from __future__ import annotations

import math
from typing import ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

GRAVITY, CART_MASS, POLE_MASS, POLE_HALF_LENGTH = 9.8, 1.0, 0.1, 0.5
FORCE_SCALE, DT = 10.0, 0.02
THETA_LIMIT, X_LIMIT = 12 * 2 * math.pi / 360, 2.4


def cartpole_step(state, action):
    """One Euler step for a batch: `state` (..., 4) = (x, x_dot, theta, theta_dot), `action` (..., 1).

    Works on NumPy arrays and torch tensors alike (the env steps with it; MPC uses it as the true model).
    """
    lib = torch if isinstance(state, torch.Tensor) else np
    x, x_dot, theta, theta_dot = (state[..., i] for i in range(4))
    force = FORCE_SCALE * lib.clip(action[..., 0], -1.0, 1.0)
    cos, sin = lib.cos(theta), lib.sin(theta)
    total_mass = CART_MASS + POLE_MASS
    temp = (force + POLE_MASS * POLE_HALF_LENGTH * theta_dot**2 * sin) / total_mass
    theta_acc = (GRAVITY * sin - cos * temp) / (
        POLE_HALF_LENGTH * (4.0 / 3.0 - POLE_MASS * cos**2 / total_mass)
    )
    x_acc = temp - POLE_MASS * POLE_HALF_LENGTH * theta_acc * cos / total_mass
    return lib.stack(
        [x + DT * x_dot, x_dot + DT * x_acc, theta + DT * theta_dot, theta_dot + DT * theta_acc], -1
    )


def cartpole_fallen(state):
    """True where the pole leans past 12 degrees or the cart has left the track."""
    return (abs(state[..., 0]) > X_LIMIT) | (abs(state[..., 2]) > THETA_LIMIT)


class ContinuousCartPoleEnv(gym.Env):
    metadata: ClassVar[dict] = {"render_modes": []}

    def __init__(self, render_mode: str | None = None):
        if render_mode is not None:
            raise ValueError("ContinuousCartPole has no render modes")
        high = np.array([X_LIMIT * 2, np.finfo(np.float32).max, THETA_LIMIT * 2, np.finfo(np.float32).max],
                        dtype=np.float32)
        self.observation_space = spaces.Box(-high, high, dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)
        self.state = np.zeros(4)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.state = self.np_random.uniform(-0.05, 0.05, size=4)
        return self.state.astype(np.float32), {}

    def step(self, action):
        action = np.asarray(action, dtype=np.float64).reshape(1)
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action must be finite, got {action}")
        self.state = cartpole_step(self.state, action)
        terminated = bool(cartpole_fallen(self.state))
        return self.state.astype(np.float32), 1.0, terminated, False, {}
