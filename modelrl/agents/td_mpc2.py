"""`td-mpc2`: TD-MPC2 (Hansen, Su and Wang 2024), model predictive control in a learned latent space.

The model (`modelrl.models.tdmpc2`) is trained on short windows of real transitions (`horizon` steps): from
the first observation's latent it rolls the latent dynamics forward under the actions taken, and each step
is pulled towards the encoding of the observation that really followed (the consistency loss), predicts the
reward, and regresses the TD target r + gamma min(two target Qs at the next latent and a policy action);
step t weighs rho^t. The policy prior learns to maximise the Qs (scaled by their running 5th-95th percentile
range) plus a small entropy bonus, on the rolled-out latents.

Acting plans with TD-MPC2's MPPI: `num_samples` action sequences of `horizon` steps, `num_pi_trajs` of them
from the policy prior rolled through the model, scored by the predicted rewards plus the Qs' estimate at the
horizon; the top `num_elites` refit mean and std for `iterations` rounds, and the action is the first of one
elite drawn by its weight (with the final std as exploration noise while training). The plan's mean is kept,
shifted, as the next step's start. Defaults are the paper's (its config.yaml), at its smallest model size.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from modelrl.agents.base import Agent
from modelrl.agents.sac import ActionScale, check_box_actions
from modelrl.buffers import ReplayBuffer
from modelrl.config import check_range
from modelrl.device import require_cpp_compiler, resolve_device, restore_generator
from modelrl.errors import ConfigError
from modelrl.models.mlp import frozen
from modelrl.models.tdmpc2 import SIZES, TDMPC2Model
from modelrl.planning.mpc import MPC
from modelrl.returns import ReturnScale
from modelrl.seeding import numpy_stream, seeded_weights, torch_stream


@dataclass
class TDMPC2Config:
    """Defaults: TD-MPC2's config.yaml, at the paper's smallest size (1M parameters) for a CPU."""

    size: str = "1m"  # model size: tiny (tests), 1m, 5m (the paper's default), 19m, 48m, 317m
    # training
    batch_size: int = 256  # windows per update
    horizon: int = 3  # steps per training window and planning horizon
    rho: float = 0.5  # weight of step t in the losses: rho^t
    consistency_coef: float = 20.0  # weight of the latent consistency loss
    reward_coef: float = 0.1  # weight of the reward loss
    value_coef: float = 0.1  # weight of the Q (TD) loss
    lr: float = 3e-4  # Adam, model and policy
    enc_lr_scale: float = 0.3  # the encoder's learning rate, as a share of lr
    grad_clip_norm: float = 20.0  # gradient norm clip of model and policy
    tau: float = 0.01  # Polyak step of the target Qs
    gamma: float = 0.0  # discount; 0: the paper's, (T/5 - 1)/(T/5) in [0.95, 0.995] for episodes of T steps
    entropy_coef: float = 1e-4  # policy entropy bonus
    seed_steps: int = 0  # random actions first, then that many updates at once; 0: max(1000, 5 T)
    buffer_size: int = 1_000_000  # real transitions kept for replay
    # planning
    iterations: int = 6  # MPPI refits per real step
    num_samples: int = 512  # action sequences per planning iteration
    num_elites: int = 64  # best sequences that refit mean and std
    num_pi_trajs: int = 24  # of the samples, sequences the policy prior proposes
    min_std: float = 0.05  # lower bound of the planner's std
    max_std: float = 2.0  # upper bound of the planner's std, and each plan's starting std
    temperature: float = 0.5  # weights exp(temperature * (value - best value)), the paper's
    # model
    simnorm_dim: int = 8  # latent features per SimNorm group
    num_bins: int = 101  # two-hot bins of the reward and Q heads
    vmin: float = -10.0  # lower end of the bins' span, in symlog space
    vmax: float = 10.0  # upper end of the bins' span
    dropout: float = 0.01  # Q functions' first layer
    log_std_min: float = -10.0  # lower bound of the policy's log-std
    log_std_max: float = 2.0  # upper bound of the policy's log-std
    device: str = "auto"  # auto (CUDA when present), cpu, cuda or cuda:N
    # compile the networks with torch.compile (fuses each layer's LayerNorm and Mish); the first update and
    # plan compile (tens of seconds)
    compile: bool = False

    def validate(self) -> None:
        if self.size not in SIZES:
            raise ConfigError(f"size must be one of {', '.join(SIZES)}, got {self.size!r}")
        for name in ("batch_size", "horizon", "iterations", "num_samples", "num_elites", "buffer_size",
                     "simnorm_dim"):
            check_range(self, name, 1)
        check_range(self, "num_bins", 2)
        for name in ("seed_steps", "num_pi_trajs", "consistency_coef", "reward_coef", "value_coef",
                     "entropy_coef", "dropout"):
            check_range(self, name, 0)
        for name in ("lr", "grad_clip_norm", "temperature", "min_std"):
            check_range(self, name, 0, low_open=True)
        check_range(self, "rho", 0, 1, low_open=True)
        check_range(self, "enc_lr_scale", 0, low_open=True)
        check_range(self, "tau", 0, 1, low_open=True)
        check_range(self, "gamma", 0, 1, high_open=True)
        check_range(self, "dropout", 0, 1, high_open=True)
        if self.max_std < self.min_std:
            raise ConfigError(f"max_std ({self.max_std}) must be >= min_std ({self.min_std})")
        if self.num_pi_trajs >= self.num_samples:
            raise ConfigError(f"num_pi_trajs ({self.num_pi_trajs}) must leave room in num_samples "
                              f"({self.num_samples})")
        if self.num_elites > self.num_samples:
            raise ConfigError(f"num_elites ({self.num_elites}) must be <= num_samples ({self.num_samples})")
        if self.vmax <= self.vmin:
            raise ConfigError(f"vmax ({self.vmax}) must be above vmin ({self.vmin})")
        if SIZES[self.size].latent_dim % self.simnorm_dim:
            raise ConfigError(f"simnorm_dim ({self.simnorm_dim}) must divide the {self.size} size's latent "
                              f"({SIZES[self.size].latent_dim})")


def episode_steps(env: gym.Env) -> int | None:
    """Env steps in one of the env's episodes, where it says (a time limit, or DMC's own count)."""
    if env.spec is not None and env.spec.max_episode_steps:
        return int(env.spec.max_episode_steps)
    return getattr(env.unwrapped, "episode_steps", None)


class TDMPC2(Agent):
    agent_id = "td-mpc2"
    config_class = TDMPC2Config
    plans_every_step = True
    supports_num_envs = False  # the plan's warm start and the windows of one stream belong to one env
    metric_names = ("consistency_loss", "reward_loss", "value_loss", "policy_loss", "q_scale", "updates",
                    "plan_seconds")

    def __init__(self, env, config=None, seed: int = 0, env_kwargs: dict | None = None, num_envs: int = 1):
        super().__init__(env, config, seed, env_kwargs, num_envs)
        config = self.config
        self.device = resolve_device(config.device)
        self.generator = torch_stream(self.seed, "planning", self.device)  # planning, policy and dropout
        self.eval_generator = torch_stream(self.seed, "evaluation planning", self.device)
        self.eval_rng = numpy_stream(self.seed, "evaluation acting")
        obs_dim, action_dim = self.env.observation_space.shape[0], self.env.action_space.shape[0]
        self.scale = ActionScale(self.env.action_space)
        length = episode_steps(self.env)
        # The paper's discount heuristic: longer episodes, longer horizons; 0.99 where the length is unknown.
        self.gamma = config.gamma or (float(np.clip((length / 5 - 1) / (length / 5), 0.95, 0.995))
                                      if length else 0.99)
        self.seed_steps = config.seed_steps or max(1000, 5 * (length or 200))
        with seeded_weights(self.seed):
            self.model = TDMPC2Model(obs_dim, action_dim, SIZES[config.size], simnorm_dim=config.simnorm_dim,
                                     bins=config.num_bins, vmin=config.vmin, vmax=config.vmax,
                                     dropout=config.dropout, log_std_min=config.log_std_min,
                                     log_std_max=config.log_std_max).to(self.device)
        model = self.model
        if config.compile:
            if self.device.type == "cpu":
                require_cpp_compiler()
            # The networks share one forward's code, and torch.compile keeps at most `recompile_limit` graphs
            # per code: each network sees two grad modes and several ranks and sizes, 8 are too few.
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
            for network in (model.encoder, model.dynamics, model.reward_head, model.policy, model.qs.trunk):
                # in place (the state dict keeps its keys); batch sizes vary (plan, prior, update windows),
                # so a size seen twice is compiled as dynamic rather than once per size
                network.compile(dynamic=None)
        # The planner's rollout as one graph: one call per MPPI iteration instead of one per network and step.
        self._rollout_value = torch.compile(self.rollout_value, dynamic=None) if config.compile \
            else self.rollout_value
        self.optimizer = torch.optim.Adam([
            {"params": model.encoder.parameters(), "lr": config.lr * config.enc_lr_scale},
            {"params": [*model.dynamics.parameters(), *model.reward_head.parameters(),
                        *model.qs.parameters()]},
        ], lr=config.lr, fused=True)
        self.policy_optimizer = torch.optim.Adam(model.policy.parameters(), lr=config.lr, eps=1e-5,
                                                 fused=True)
        self.q_scale = ReturnScale(rate=config.tau)  # TD-MPC2 moves its Q scale at the target's rate
        self.buffer = ReplayBuffer(config.buffer_size, self.env.observation_space.shape, (action_dim,),
                                   name="buffer_size")
        unit = gym.spaces.Box(-1.0, 1.0, (action_dim,), np.float32)
        mppi = {"iterations": config.iterations, "population": config.num_samples,
                "temperature": 1.0 / config.temperature, "elites": config.num_elites,
                "min_std": config.min_std, "max_std": config.max_std}
        # Each plan starts from the std max_std (a share of the unit box's width of 2).
        self.planners = {evaluation: MPC(unit, config.horizon, "mppi", mppi, device=self.device,
                                         generator=self.eval_generator if evaluation else self.generator,
                                         std_scale=config.max_std / 2)
                         for evaluation in (False, True)}
        self.updates = 0
        self.plan_seconds, self.plans = 0.0, 0
        self._losses: dict[str, torch.Tensor] = {}

    def check_env(self, env: gym.Env) -> None:
        self.require_flat_box_observations(env)
        check_box_actions(self.agent_id, self.env_id, env)

    def on_reset(self, evaluation: bool) -> None:
        self.planners[evaluation].reset()

    def first_learning_step(self) -> tuple[int, str]:
        return self.seed_steps, f"seed_steps={self.seed_steps}"

    # --- acting ------------------------------------------------------------------------------------
    def act(self, obs, deterministic: bool = False):
        if not deterministic and self.env_steps < self.seed_steps:
            return self.rng.uniform(self.scale.low, self.scale.high).astype(self.scale.dtype)
        started = time.perf_counter()
        state = torch.as_tensor(np.asarray(obs, np.float32), device=self.device)
        action = self.plan(state, self.planners[deterministic], deterministic)
        self.plan_seconds += time.perf_counter() - started
        self.plans += 1
        return self.scale.to_env(action.cpu().numpy())

    @torch.no_grad()
    def plan(self, obs: torch.Tensor, planner: MPC, deterministic: bool) -> torch.Tensor:
        """One MPPI plan from `obs`; the unit action to take."""
        config, model, generator = self.config, self.model, planner.generator
        z = model.encode(obs[None])
        prior = None
        if config.num_pi_trajs:  # the policy prior's sequences, rolled through the model
            latent, actions = z.expand(config.num_pi_trajs, -1), []
            for t in range(config.horizon):
                actions.append(model.pi(latent, generator)[1])
                if t < config.horizon - 1:
                    latent = model.next(latent, actions[-1])
            prior = torch.stack(actions, 1)

        def value(sequences: torch.Tensor) -> torch.Tensor:
            return self.sequence_value(z.expand(len(sequences), -1), sequences, generator)

        result = planner.plan(value, prior)
        elites, weights = result.weighted
        chosen = elites[torch.multinomial(weights, 1, generator=generator)[0], 0]
        if deterministic:
            return chosen
        noise = torch.randn(chosen.shape, generator=generator, device=chosen.device)
        return (chosen + result.distribution.std[0] * noise).clamp(-1, 1)

    def sequence_value(self, z: torch.Tensor, actions: torch.Tensor, generator) -> torch.Tensor:
        """Predicted discounted rewards of `(N, H, A)` sequences from latents `z`, plus the Qs (mean of a
        random pair) at the horizon for an action of the policy."""
        noise = torch.randn((len(z), self.model.action_dim), generator=generator, device=z.device)
        return self._rollout_value(z, actions, noise, self.model.random_pair(generator, z.device))

    def rollout_value(self, z: torch.Tensor, actions: torch.Tensor, noise: torch.Tensor, pair: torch.Tensor
                      ) -> torch.Tensor:
        """`sequence_value` with its random draws given: free of generators, so compiled as one graph."""
        model, total, discount = self.model, torch.zeros(len(z), device=z.device), 1.0
        for t in range(actions.shape[1]):
            total = total + discount * model.reward(z, actions[:, t])
            z = model.next(z, actions[:, t])
            discount *= self.gamma
        action = model.pi(z, noise=noise)[1]
        return total + discount * model.q_pair(z, action, None, pair=pair).mean(0)

    @torch.no_grad()
    def planned_returns(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The planner's value of each row's own sequence, `obs (N, D)` and env actions `(N, H, A)` (the
        model report's check)."""
        center = torch.as_tensor(self.scale.center, device=self.device)
        half = torch.as_tensor(self.scale.half, device=self.device)
        unit = ((actions.to(self.device) - center) / half).clamp(-1, 1)
        generator = torch.Generator(self.device).manual_seed(0)
        return self.sequence_value(self.model.encode(obs.to(self.device)), unit, generator)

    # --- learning ----------------------------------------------------------------------------------
    def observe(self, obs, action, reward, next_obs, terminated, truncated, info=None) -> None:
        self.buffer.add(obs, self.scale.to_unit(action), reward, next_obs, terminated, truncated)
        if self.env_steps < self.seed_steps:
            return
        # At the end of the random seed steps, the paper trains as many updates as there were steps.
        for _ in range(self.seed_steps if self.env_steps == self.seed_steps else 1):
            self.update()

    def sample(self) -> dict[str, torch.Tensor]:
        """A batch of windows, time-major: `(horizon, batch, ...)` per field."""
        windows = self.buffer.sample_windows(self.config.batch_size, self.config.horizon, self.rng)
        return {key: torch.as_tensor(np.swapaxes(windows[key], 0, 1), device=self.device)
                for key in ("obs", "action", "reward", "next_obs", "terminated")}

    def update(self, batch: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """One gradient step of the model and one of the policy on a batch of windows (sampled if none)."""
        config, model, generator = self.config, self.model, self.generator
        batch = self.sample() if batch is None else batch
        horizon = batch["action"].shape[0]
        weights = config.rho ** torch.arange(horizon, device=self.device, dtype=torch.float32)
        with torch.no_grad():
            next_z = model.encode(batch["next_obs"])
            next_action = model.pi(next_z, generator)[1]
            bootstrap = model.q_pair(next_z, next_action, generator, target=True).min(0).values
            td_target = batch["reward"] + self.gamma * (~batch["terminated"]).float() * bootstrap

        z = model.encode(batch["obs"][0])
        latents = [z]
        consistency = torch.zeros((), device=self.device)
        for t in range(horizon):
            z = model.next(z, batch["action"][t])
            consistency = consistency + weights[t] * F.mse_loss(z, next_z[t])
            latents.append(z)
        zs = torch.stack(latents[:-1])
        two_hot = model.two_hot
        reward_loss = (two_hot.loss(model.reward_logits(zs, batch["action"]), batch["reward"]).mean(1)
                       * weights).sum()
        q_logits = model.q_logits(zs, batch["action"], generator=generator, training=True)
        value_loss = (two_hot.loss(q_logits, td_target.expand_as(q_logits[..., 0])).mean(2).sum(0)
                      * weights).sum()
        loss = (config.consistency_coef * consistency + config.reward_coef * reward_loss
                + config.value_coef * value_loss / model.size.num_q) / horizon
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self._model_parameters(), config.grad_clip_norm, foreach=True)
        self.optimizer.step()

        policy_loss = self.update_policy(torch.stack(latents).detach())
        model.update_target(config.tau)
        self.updates += 1
        self._losses = {"consistency_loss": consistency.detach() / horizon,
                        "reward_loss": reward_loss.detach() / horizon,
                        "value_loss": value_loss.detach() / (horizon * model.size.num_q),
                        "policy_loss": policy_loss}
        return self._losses

    def _model_parameters(self):
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def update_policy(self, zs: torch.Tensor) -> torch.Tensor:
        """The policy towards higher Qs (scaled by their running range) and a little entropy, along the
        rolled-out latents `(horizon + 1, batch, latent)`, step t weighed rho^t."""
        config, model = self.config, self.model
        _, action, log_prob = model.pi(zs, self.generator)
        with frozen(model.qs):  # the gradient flows through the action only
            q = model.q_pair(zs, action, self.generator).mean(0)
        scale = self.q_scale.update(q[0])
        weights = config.rho ** torch.arange(len(zs), device=self.device, dtype=torch.float32)
        loss = ((config.entropy_coef * log_prob - q / scale).mean(1) * weights).mean()
        self.policy_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.policy.parameters(), config.grad_clip_norm, foreach=True)
        self.policy_optimizer.step()
        return loss.detach()

    # --- bookkeeping -------------------------------------------------------------------------------
    def metrics(self) -> dict[str, float]:
        row = {name: float(value) for name, value in self._losses.items()}
        row["q_scale"] = float(self.q_scale.scale())
        row["updates"] = self.updates
        row["plan_seconds"] = self.plan_seconds / self.plans if self.plans else math.nan
        self.plan_seconds, self.plans = 0.0, 0
        return row

    def check_finite(self) -> bool:
        return all(torch.isfinite(p).all() for p in self.model.parameters())

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "policy_optimizer": self.policy_optimizer.state_dict(), "q_scale": self.q_scale.state_dict(),
                "buffer": self.buffer.state_dict(), "updates": self.updates,
                "generator": self.generator.get_state(), "eval_generator": self.eval_generator.get_state(),
                "eval_rng": self.eval_rng.bit_generator.state,
                "planners": {flag: mpc.state_dict() for flag, mpc in self.planners.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.policy_optimizer.load_state_dict(state["policy_optimizer"])
        self.q_scale.load_state_dict(state["q_scale"], self.device)
        self.buffer.load_state_dict(state["buffer"])
        self.updates = state["updates"]
        restore_generator(self.generator, state["generator"])
        restore_generator(self.eval_generator, state["eval_generator"])
        self.eval_rng.bit_generator.state = state["eval_rng"]
        for flag, mpc in self.planners.items():
            mpc.load_state_dict(state["planners"][flag])
