"""The true model of a MuJoCo env: a private copy of the simulator, set to the observed state, steps each
candidate sequence with the env's own termination and its own reward, or a given planning reward (a known
shaped one) computed from the visited observations. Sequential (one simulator), so it is the accurate but
slow upper bound a learned model is measured against, not a fast planner.
"""

from __future__ import annotations

import numpy as np
import torch

from modelrl.envs import make_env
from modelrl.envs.known import StepFunction
from modelrl.errors import IncompatibleEnvError


class EnvCopyObjective:
    def __init__(self, env_id: str, env_kwargs: dict | None = None, gamma: float = 1.0,
                 reward_fn: StepFunction | None = None):
        self.env = make_env(env_id, **(env_kwargs or {})).unwrapped
        if not hasattr(self.env, "set_state") or not hasattr(self.env, "model"):
            raise IncompatibleEnvError(f"{env_id} is not a MuJoCo env whose state can be set")
        nq, nv = self.env.model.nq, self.env.model.nv
        obs_dim = self.env.observation_space.shape[0]
        if obs_dim == nq + nv:
            self.skipped = 0
        elif obs_dim == nq - 1 + nv:  # the torso's x position is left out; dynamics do not depend on it
            self.skipped = 1
        else:
            raise IncompatibleEnvError(
                f"{env_id}'s observation ({obs_dim} numbers) is not its simulator state "
                f"(qpos {nq}, qvel {nv})")
        self.nq, self.gamma, self.reward_fn = nq, gamma, reward_fn
        self.env.reset(seed=0)

    def state(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        qpos = np.concatenate([np.zeros(self.skipped), obs[: self.nq - self.skipped]])
        return qpos, obs[self.nq - self.skipped :]

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor, actions: torch.Tensor, generator=None) -> torch.Tensor:
        """The simulator draws nothing: `generator` is accepted for the common call and unused."""
        start = obs.cpu().numpy().astype(np.float64)
        qpos, qvel = self.state(start)
        plans = actions.cpu().numpy()
        n, horizon = plans.shape[:2]
        rewards, lengths = np.zeros((n, horizon)), np.full(n, horizon)
        visited = np.repeat(start[None, None], horizon + 1, 1).repeat(n, 0)  # (n, H + 1, obs)
        for i, plan in enumerate(plans):
            self.env.set_state(qpos, qvel)
            for t, action in enumerate(plan):
                visited[i, t + 1], rewards[i, t], terminated, _, _ = self.env.step(action)
                if terminated:  # the terminating step is paid, nothing after it
                    lengths[i] = t + 1
                    break
        if self.reward_fn is not None:
            states = torch.as_tensor(visited, dtype=torch.float32)
            rewards = self.reward_fn(states[:, :-1], torch.as_tensor(plans), states[:, 1:]).double().numpy()
            rewards = rewards * (np.arange(horizon) < lengths[:, None])
        discounts = self.gamma ** np.arange(horizon)
        return torch.as_tensor(rewards @ discounts, dtype=torch.float32, device=actions.device)


class RolloutObjective:
    """The exact model of a DeepMind Control task, batched: every candidate sequence rolled from the observed
    state at once by MuJoCo's `rollout` (C, no Python per step), each action held for the env's action
    repeat, its reward the task's own summed over the physics steps (`modelrl.envs.dmc.TRUE_MODELS`)."""

    def __init__(self, env_id: str, env_kwargs: dict | None = None, gamma: float = 1.0):
        import mujoco
        from mujoco import rollout

        from modelrl.envs.dmc import TRUE_MODELS, DMCEnv

        env = make_env(env_id, **(env_kwargs or {})).unwrapped
        if not isinstance(env, DMCEnv) or env.pixels or (env.domain, env.task) not in TRUE_MODELS:
            raise IncompatibleEnvError(f"no exact batched model is written for {env_id}; there is one for "
                                       f"{', '.join(f'dmc/{d}-{t}-v0' for d, t in TRUE_MODELS)}")
        self.state_from_obs, self.reward = TRUE_MODELS[env.domain, env.task]
        physics = env._dmc.physics
        self.model, self.data = physics.model.ptr, mujoco.MjData(physics.model.ptr)
        self.substeps = env.action_repeat * env._dmc._n_sub_steps
        self.env = env
        self.gamma, self.spec, self.rollout = gamma, mujoco.mjtState.mjSTATE_FULLPHYSICS, rollout.rollout
        self.state_size = mujoco.mj_stateSize(self.model, self.spec)
        self.mujoco = mujoco

    def initial_state(self, obs: np.ndarray) -> np.ndarray:
        qpos, qvel = self.state_from_obs(obs.astype(np.float64))
        self.mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:], self.data.qvel[:] = qpos, qvel
        state = np.empty(self.state_size)
        self.mujoco.mj_getState(self.model, self.data, state, self.spec)
        return state

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor, actions: torch.Tensor, generator=None) -> torch.Tensor:
        """The simulator draws nothing: `generator` is accepted for the common call and unused."""
        n, horizon = actions.shape[:2]
        controls = self.env.to_control(actions.cpu().numpy().astype(np.float64))  # as the env takes them
        controls = controls.repeat(self.substeps, 1)  # (n, H * substeps, A)
        states, _ = self.rollout(self.model, self.data, self.initial_state(obs.cpu().numpy())[None], controls)
        nq, nv = self.model.nq, self.model.nv
        rewards = self.reward(states[..., 1:1 + nq], states[..., 1 + nq:1 + nq + nv], controls)
        rewards = rewards.reshape(n, horizon, self.substeps).sum(-1)
        discounts = self.gamma ** np.arange(horizon)
        return torch.as_tensor(rewards @ discounts, dtype=torch.float32, device=actions.device)
