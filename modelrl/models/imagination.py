"""Imagined experience: branched rollouts through a learned model from real start states.

Every row takes each step through a random elite (MBPO, Janner et al. 2019): rows are dealt to the elites
by a fresh random permutation per step, so all of them go through one batched forward pass.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from modelrl.models.dynamics import DynamicsModel

StepFunction = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def step_random_elites(model: DynamicsModel, obs: torch.Tensor, action: torch.Tensor,
                       generator: torch.Generator, deterministic: bool = False):
    """One sampled step per row, each through a randomly chosen elite: (next_obs, reward, terminated)."""
    n, k = len(obs), len(model.elites)
    per_member = -(-n // k)
    slots = torch.randperm(per_member * k, generator=generator, device=obs.device)
    rows = slots % n  # slot j holds row slots[j]; the few extra slots repeat rows and are dropped
    next_obs, reward, terminated = model.sample(
        obs[rows].view(k, per_member, -1), action[rows].view(k, per_member, *action.shape[1:]), generator,
        members=model.elites, deterministic=deterministic)
    where = torch.empty_like(slots)
    where[slots] = torch.arange(len(slots), device=obs.device)
    where = where[:n]  # the slot of each real row

    def back(x):
        return None if x is None else x.reshape(per_member * k, *x.shape[2:])[where]

    return back(next_obs), back(reward), back(terminated)


@torch.no_grad()
def branched_rollouts(
    model: DynamicsModel,
    policy: Callable[[torch.Tensor], torch.Tensor],
    start_obs: torch.Tensor,
    length: int,
    generator: torch.Generator,
    *,
    reward_fn: StepFunction | None = None,
    termination_fn: StepFunction | None = None,
) -> dict[str, torch.Tensor]:
    """`length` imagined steps from every start state, all rollouts batched; a rollout stops where its
    step is predicted to terminate. Rewards and terminations come from `reward_fn` / `termination_fn`
    where given, else from the model (no termination if it learns none). Returns the transitions of all
    steps concatenated: obs, action, reward, next_obs, terminated."""
    obs, steps = start_obs, []
    for _ in range(length):
        action = policy(obs)
        next_obs, reward, terminated = step_random_elites(model, obs, action, generator)
        if reward_fn is not None:
            reward = reward_fn(obs, action, next_obs)
        if reward is None:
            raise ValueError("the model learns no reward and no reward function was given")
        if termination_fn is not None:
            terminated = termination_fn(obs, action, next_obs)
        elif terminated is None:
            terminated = torch.zeros(len(obs), dtype=torch.bool, device=obs.device)
        steps.append((obs, action, reward, next_obs, terminated))
        obs = next_obs[~terminated]
        if len(obs) == 0:
            break
    fields = ("obs", "action", "reward", "next_obs", "terminated")
    return {name: torch.cat([step[i] for step in steps]) for i, name in enumerate(fields)}
