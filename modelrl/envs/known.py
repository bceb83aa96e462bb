"""Known reward and termination functions, batched in torch and keyed by env id, for planning with a model.

Each takes `(obs, action, next_obs)` with any leading batch shape and returns a tensor of that shape.
Some envs also have a `simulator`: their exact dynamics in torch, `next_obs = simulator(obs, action)`, the
"true model" that MPC with a perfect model uses as the upper bound a learned model is measured against.

MuJoCo locomotion rewards are paid on the change of the torso's x position, which the observation leaves
out; they are approximated here by the mean of the x velocity (an observation coordinate) before and after
the step, which correlates 0.96 (HalfCheetah) and 0.94 (Hopper) with the true reward under random actions.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from modelrl.envs.cartpole import cartpole_fallen, cartpole_step

StepFunction = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class KnownFunctions:
    reward: StepFunction | None = None
    termination: StepFunction | None = None  # None: the env never terminates
    simulator: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    # A dense reward to plan with where the env's own gives a short horizon no signal (survival bonuses);
    # used only when asked for (`planning_reward="shaped"`), and always labelled as such.
    shaped_reward: StepFunction | None = None


# --- classic control --------------------------------------------------------------------------------
def cartpole_reward(obs, action, next_obs):
    return torch.ones(next_obs.shape[:-1], dtype=next_obs.dtype, device=next_obs.device)


def cartpole_termination(obs, action, next_obs):
    return cartpole_fallen(next_obs)


def discrete_cartpole_step(obs, action):
    """CartPole-v1: action 0 pushes left, 1 right, with the full force."""
    return cartpole_step(obs, (2.0 * action.to(obs.dtype) - 1.0).unsqueeze(-1))


PENDULUM_MAX_SPEED, PENDULUM_MAX_TORQUE, PENDULUM_DT, PENDULUM_G = 8.0, 2.0, 0.05, 10.0


def pendulum_reward(obs, action, next_obs):
    """Pendulum-v1's cost of the state before the step and the clipped torque."""
    theta = torch.atan2(obs[..., 1], obs[..., 0])
    torque = action[..., 0].clamp(-PENDULUM_MAX_TORQUE, PENDULUM_MAX_TORQUE)
    return -(theta**2 + 0.1 * obs[..., 2] ** 2 + 0.001 * torque**2)


def pendulum_step(obs, action):
    """Pendulum-v1's dynamics (g = 10, m = l = 1) on (cos, sin, theta_dot) observations."""
    theta = torch.atan2(obs[..., 1], obs[..., 0])
    torque = action[..., 0].clamp(-PENDULUM_MAX_TORQUE, PENDULUM_MAX_TORQUE)
    speed = obs[..., 2] + (3 * PENDULUM_G / 2 * torch.sin(theta) + 3.0 * torque) * PENDULUM_DT
    speed = speed.clamp(-PENDULUM_MAX_SPEED, PENDULUM_MAX_SPEED)
    theta = theta + speed * PENDULUM_DT
    return torch.stack([torch.cos(theta), torch.sin(theta), speed], -1)


# --- MuJoCo -----------------------------------------------------------------------------------------
def _mean_velocity(obs, next_obs, index):
    return 0.5 * (obs[..., index] + next_obs[..., index])


def inverted_pendulum_termination(obs, action, next_obs):
    return ~torch.isfinite(next_obs).all(-1) | (next_obs[..., 1].abs() > 0.2)


def inverted_pendulum_reward(obs, action, next_obs):
    return (~inverted_pendulum_termination(obs, action, next_obs)).to(next_obs.dtype)


def inverted_pendulum_shaped_reward(obs, action, next_obs):
    """Alive (1), plus up to 1 more for a pole upright within its 0.2 rad limit and a cart near the centre of
    its [-1, 1] rail: it prefers upright and centred, which survival alone only tells a planner once the pole
    is past saving. The bonus is never negative, so falling never looks better than staying up (a penalty
    had made a cart near the rail's end prefer to fall); the centre term keeps a slope at the ends."""
    alive = inverted_pendulum_reward(obs, action, next_obs)
    upright = 1 - (next_obs[..., 1] / 0.2) ** 2  # in [0, 1] while alive
    centred = torch.exp(-((next_obs[..., 0] / 0.5) ** 2))
    return alive * (1 + 0.5 * upright + 0.5 * centred)


def half_cheetah_reward(obs, action, next_obs):
    return _mean_velocity(obs, next_obs, 8) - 0.1 * (action**2).sum(-1)


def reacher_reward(obs, action, next_obs):
    # The last two coordinates are fingertip minus target in the plane (their heights are equal).
    return -next_obs[..., -2:].norm(dim=-1) - (action**2).sum(-1)


def hopper_termination(obs, action, next_obs):
    height, angle = next_obs[..., 0], next_obs[..., 1]
    healthy = (
        torch.isfinite(next_obs).all(-1)
        & (next_obs[..., 1:].abs() < 100).all(-1)
        & (height > 0.7)
        & (angle.abs() < 0.2)
    )
    return ~healthy


def _healthy(termination, obs, action, next_obs):
    """The v5 healthy bonus of 1: paid only on steps that do not end the episode."""
    return (~termination(obs, action, next_obs)).to(next_obs.dtype)


def hopper_reward(obs, action, next_obs):
    healthy = _healthy(hopper_termination, obs, action, next_obs)
    return _mean_velocity(obs, next_obs, 5) + healthy - 1e-3 * (action**2).sum(-1)


def walker_termination(obs, action, next_obs):
    height, angle = next_obs[..., 0], next_obs[..., 1]
    return ~((height > 0.8) & (height < 2.0) & (angle.abs() < 1.0) & torch.isfinite(next_obs).all(-1))


def walker_reward(obs, action, next_obs):
    healthy = _healthy(walker_termination, obs, action, next_obs)
    return _mean_velocity(obs, next_obs, 8) + healthy - 1e-3 * (action**2).sum(-1)


def _ant_termination(obs, action, next_obs):
    height = next_obs[..., 0]
    return ~((height >= 0.2) & (height <= 1.0) & torch.isfinite(next_obs).all(-1))


def _humanoid_termination(obs, action, next_obs):
    height = next_obs[..., 0]  # the torso's z: Humanoid-v5 is healthy while it lies in (1, 2)
    return ~((height > 1.0) & (height < 2.0))


KNOWN: dict[str, KnownFunctions] = {
    "modelrl/ContinuousCartPole-v0": KnownFunctions(cartpole_reward, cartpole_termination, cartpole_step),
    "CartPole-v1": KnownFunctions(cartpole_reward, cartpole_termination, discrete_cartpole_step),
    "Pendulum-v1": KnownFunctions(pendulum_reward, None, pendulum_step),
    "InvertedPendulum-v5": KnownFunctions(inverted_pendulum_reward, inverted_pendulum_termination,
                                          shaped_reward=inverted_pendulum_shaped_reward),
    "HalfCheetah-v5": KnownFunctions(half_cheetah_reward, None),
    "Reacher-v5": KnownFunctions(reacher_reward, None),
    "Hopper-v5": KnownFunctions(hopper_reward, hopper_termination),
    "Walker2d-v5": KnownFunctions(walker_reward, walker_termination),
    "Ant-v5": KnownFunctions(None, _ant_termination),
    "Humanoid-v5": KnownFunctions(None, _humanoid_termination),
}


# Constructor arguments that leave what the functions read unchanged. Any other argument may move the
# observation layout or change the rule (`exclude_current_positions_from_observation`,
# `terminate_when_unhealthy`, `healthy_z_range`, ...), so with it nothing is taken as known.
NEUTRAL_ENV_ARGS = {"render_mode", "max_episode_steps", "reset_noise_scale"}
# These drop only trailing observation terms (the paper-sized Ant and Humanoid of MBPO); the termination
# reads the torso height in front.
NEUTRAL_ENV_ARGS_PER_ENV = {
    "Ant-v5": {"include_cfrc_ext_in_observation"},
    "Humanoid-v5": {"include_cinert_in_observation", "include_cvel_in_observation",
                    "include_qfrc_actuator_in_observation", "include_cfrc_ext_in_observation"},
}


def lookup_known(env_id: str, env_kwargs: dict | None = None) -> KnownFunctions | None:
    """What is known about `env_id` built with `env_kwargs`, or None if nothing is: an env not listed,
    or one built with arguments the functions were not written for (with a warning)."""
    known = KNOWN.get(env_id)
    unknown_args = set(env_kwargs or {}) - NEUTRAL_ENV_ARGS - NEUTRAL_ENV_ARGS_PER_ENV.get(env_id, set())
    if known is not None and unknown_args:
        warnings.warn(f"{env_id}'s known reward and termination are written for its default construction; "
                      f"with {', '.join(sorted(unknown_args))} they are not used", stacklevel=2)
        return None
    return known


def known_functions(env_id: str, env_kwargs: dict | None = None) -> KnownFunctions:
    """What is known about `env_id`'s reward, termination and dynamics; empty where `lookup_known` finds
    nothing."""
    return lookup_known(env_id, env_kwargs) or KnownFunctions()


__all__ = ["KNOWN", "KnownFunctions", "known_functions", "lookup_known"]
