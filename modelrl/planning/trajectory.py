"""Returns of action sequences under a model: the objective every planner maximises.

`ModelObjective` rolls a population of sequences through a learned `DynamicsModel` with `particles`
samples each, all in one tensor: rows are (sequence, particle) pairs, laid out as `(E, rows / E, D)` so each
ensemble member serves its share with one batched matmul per layer. Propagation (PETS, section 4.3):
- "ts-inf": each particle keeps one member for the whole horizon (TS-infinity);
- "ts1": particles are dealt to members afresh at every step (TS1);
- "mean": every member predicts every row and the members' means are averaged (no sampling).

`SimulatorObjective` does the same with an env's exact dynamics in torch (the true model).

Both also `rollout` a policy: the action sequences it takes from a state through the model (the policy
prior's proposals, LOOP and TD-MPC2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

from modelrl.envs.known import StepFunction
from modelrl.errors import ConfigError
from modelrl.models.dynamics import DynamicsModel

Propagation = Literal["ts-inf", "ts1", "mean"]
TerminalValue = Callable[[torch.Tensor], torch.Tensor]
Policy = Callable[[torch.Tensor], torch.Tensor]  # states (N, D) -> actions (N, ...)


# A terminated particle's later rewards and terminal value are masked out, not multiplied by zero: they come
# from states past the episode's end, where they may be non-finite (NaN * 0 is NaN).
def _accumulate(returns, alive, reward, terminated, discount):
    returns += torch.where(alive, discount * reward, 0.0)
    if terminated is not None:
        alive &= ~terminated
    return returns


def _finish(returns, alive, state, terminal_value, discount):
    if terminal_value is not None:
        returns += torch.where(alive, discount * terminal_value(state), 0.0)
    return returns


class ModelObjective:
    """`objective(obs, actions (N, H, ...)) -> mean return over particles (N,)` under a learned model."""

    def __init__(
        self,
        model: DynamicsModel,
        reward_fn: StepFunction | None,
        termination_fn: StepFunction | None,
        *,
        particles: int = 20,
        propagation: Propagation = "ts-inf",
        gamma: float = 1.0,
        terminal_value: TerminalValue | None = None,
        generator: torch.Generator | None = None,
        precision: torch.dtype | None = None,
    ):
        """`precision`: the dtype the model's matmuls autocast to while planning (None: float32)."""
        if reward_fn is None and not model.spec.learn_reward:
            raise ConfigError(
                "planning needs a reward: this env has no known reward function and the model does not "
                "learn one (set learned_reward=true)"
            )
        if propagation not in ("ts-inf", "ts1", "mean"):
            raise ConfigError(f"propagation must be 'ts-inf', 'ts1' or 'mean', got {propagation!r}")
        self.model, self.reward_fn, self.termination_fn = model, reward_fn, termination_fn
        self.particles = 1 if propagation == "mean" else particles  # mean propagation is deterministic
        self.propagation, self.gamma, self.terminal_value = propagation, gamma, terminal_value
        self.generator, self.precision = generator, precision

    def autocast(self) -> torch.autocast:
        enabled = self.precision is not None
        return torch.autocast(self.model.device.type, dtype=self.precision, enabled=enabled)

    def _step(self, state, action, members, generator):
        """One imagined step for rows `(R, ...)`; returns next state, reward and termination (or None)."""
        model = self.model
        E = model.ensemble_size if members is None else len(members)
        if self.propagation == "mean":
            next_obs, reward, terminated = model.sample(state.expand(E, *state.shape),
                                                        action.expand(E, *action.shape), members=members,
                                                        deterministic=True)
            next_obs = next_obs.mean(0)
            reward = None if reward is None else reward.mean(0)
            terminated = None if terminated is None else terminated.float().mean(0) > 0.5
        else:
            rows = state.shape[0] // E
            next_obs, reward, terminated = model.sample(
                state.view(E, rows, -1), action.reshape(E, rows, *action.shape[1:]), generator, members
            )
            next_obs = next_obs.reshape(state.shape)
            reward = None if reward is None else reward.reshape(-1)
            terminated = None if terminated is None else terminated.reshape(-1)
        if self.reward_fn is not None:
            reward = self.reward_fn(state, action, next_obs)
        if self.termination_fn is not None:
            terminated = self.termination_fn(state, action, next_obs)
        return next_obs, reward, terminated

    @torch.no_grad()
    def rollout(self, obs: torch.Tensor, policy: Policy, n: int, horizon: int) -> torch.Tensor:
        """`n` action sequences `(n, H, ...)` of `policy` from `obs`, along the elites' mean prediction."""
        model = self.model
        members = model.elites if len(model.elites) < model.ensemble_size else None
        E = model.ensemble_size if members is None else len(members)
        state, actions = obs.to(model.device, model.input_mean.dtype).expand(n, -1), []
        for t in range(horizon):
            actions.append(policy(state))
            if t < horizon - 1:
                action = actions[-1]
                with self.autocast():
                    state = model.sample(state.expand(E, *state.shape), action.expand(E, *action.shape),
                                         members=members, deterministic=True)[0].mean(0)
        return torch.stack(actions, 1)

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor, actions: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """`generator`, if given, replaces the objective's own for this call's draws."""
        generator = self.generator if generator is None else generator
        model = self.model
        members = model.elites
        E = len(members)
        if E == model.ensemble_size:
            members = None  # all members: skip gathering their weights at every layer
        n, horizon = actions.shape[:2]
        rows = n * self.particles
        padded = rows if self.propagation == "mean" else -(-rows // E) * E
        row_sequence = torch.arange(padded, device=actions.device).clamp_max(rows - 1) // self.particles
        state = obs.to(model.device, model.input_mean.dtype).expand(padded, -1)
        returns = torch.zeros(padded, device=model.device)
        alive = torch.ones(padded, dtype=torch.bool, device=model.device)
        # A random deal of rows to members; TS-inf keeps it for the whole horizon, TS1 redeals each step.
        deal = torch.randperm(padded, generator=generator, device=model.device)
        state = state[deal]
        row_sequence = row_sequence[deal]
        discount = 1.0
        for t in range(horizon):
            if self.propagation == "ts1" and t > 0:
                redeal = torch.randperm(padded, generator=generator, device=model.device)
                state, returns, alive, row_sequence = (
                    x[redeal] for x in (state, returns, alive, row_sequence))
            action = actions[row_sequence, t]
            with self.autocast():
                state, reward, terminated = self._step(state, action, members, generator)
            returns = _accumulate(returns, alive, reward, terminated, discount)
            discount *= self.gamma
        returns = _finish(returns, alive, state, self.terminal_value, discount)
        totals = torch.zeros(n, device=model.device).index_add_(0, row_sequence, returns)
        counts = torch.zeros(n, device=model.device).index_add_(0, row_sequence, torch.ones_like(returns))
        return totals / counts


class SimulatorObjective:
    """The same objective with exact torch dynamics: `next_obs = simulator(obs, action)`."""

    def __init__(self, simulator, reward_fn: StepFunction, termination_fn: StepFunction | None, *,
                 gamma: float = 1.0, terminal_value: TerminalValue | None = None, device="cpu"):
        self.simulator, self.reward_fn, self.termination_fn = simulator, reward_fn, termination_fn
        self.gamma, self.terminal_value, self.device = gamma, terminal_value, torch.device(device)

    @torch.no_grad()
    def rollout(self, obs: torch.Tensor, policy: Policy, n: int, horizon: int) -> torch.Tensor:
        """`n` action sequences `(n, H, ...)` of `policy` from `obs` under the exact dynamics."""
        state, actions = obs.to(self.device, torch.float32).expand(n, -1), []
        for t in range(horizon):
            actions.append(policy(state))
            if t < horizon - 1:
                state = self.simulator(state, actions[-1])
        return torch.stack(actions, 1)

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor, actions: torch.Tensor, generator=None) -> torch.Tensor:
        """Exact dynamics draw nothing: `generator` is accepted for the common call and unused."""
        n, horizon = actions.shape[:2]
        state = obs.to(self.device, torch.float32).expand(n, -1)
        returns = torch.zeros(n, device=self.device)
        alive = torch.ones(n, dtype=torch.bool, device=self.device)
        discount = 1.0
        for t in range(horizon):
            next_state = self.simulator(state, actions[:, t])
            reward = self.reward_fn(state, actions[:, t], next_state)
            terminated = None if self.termination_fn is None else self.termination_fn(state, actions[:, t],
                                                                                       next_state)
            returns = _accumulate(returns, alive, reward, terminated, discount)
            state = next_state
            discount *= self.gamma
        return _finish(returns, alive, state, self.terminal_value, discount)
