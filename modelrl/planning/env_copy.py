"""The true model of a MuJoCo env: a private copy of the simulator, set to the observed state, steps each
candidate sequence with the env's own reward and termination. Sequential (one simulator), so it is the
accurate but slow upper bound a learned model is measured against, not a fast planner.
"""

from __future__ import annotations

import numpy as np
import torch

from modelrl.envs import make_env
from modelrl.errors import IncompatibleEnvError


class EnvCopyObjective:
    def __init__(self, env_id: str, env_kwargs: dict | None = None, gamma: float = 1.0):
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
                f"{env_id}'s observation ({obs_dim} numbers) is not its simulator state (qpos {nq}, qvel {nv})")
        self.nq, self.gamma = nq, gamma
        self.env.reset(seed=0)

    def state(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        qpos = np.concatenate([np.zeros(self.skipped), obs[: self.nq - self.skipped]])
        return qpos, obs[self.nq - self.skipped :]

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        qpos, qvel = self.state(obs.cpu().numpy().astype(np.float64))
        plans = actions.cpu().numpy()
        returns = np.zeros(len(plans))
        for i, plan in enumerate(plans):
            self.env.set_state(qpos, qvel)
            discount = 1.0
            for action in plan:
                _, reward, terminated, _, _ = self.env.step(action)
                returns[i] += discount * reward
                discount *= self.gamma
                if terminated:
                    break
        return torch.as_tensor(returns, dtype=torch.float32, device=actions.device)
