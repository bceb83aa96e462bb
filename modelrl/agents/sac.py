"""`sac`: soft actor-critic (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications").

A tanh-squashed Gaussian policy, twin Q critics with Polyak-averaged targets, and the entropy temperature
tuned towards a target entropy of -|A|. `SACLearner` is the update alone, so MBPO trains the same learner on
a mix of real and imagined transitions. Actions inside the learner and its buffers live in [-1, 1]; only the
env sees them rescaled to its bounds.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from modelrl.agents.base import Agent
from modelrl.agents.sac_update import CompiledStep, CudaGraphStep
from modelrl.buffers import ReplayBuffer
from modelrl.config import check_range
from modelrl.device import check_precision, compute_dtype, resolve_device, restore_generator
from modelrl.envs import make_env
from modelrl.errors import ConfigError, IncompatibleEnvError
from modelrl.models.ensemble import EnsembleMLP
from modelrl.models.mlp import mlp
from modelrl.seeding import seeded_weights, torch_stream

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
LOG_2 = math.log(2.0)


@dataclass
class SACConfig:
    """Defaults: Haarnoja et al. 2018b, table 1; `learning_starts` is stable-baselines3's."""

    lr: float = 3e-4  # Adam learning rate of critics, temperature (and actor unless actor_lr)
    actor_lr: float | None = None  # None: lr (mbrl-lib's MBPO Hopper slows the actor to 3e-5)
    gamma: float = 0.99  # discount factor
    tau: float = 0.005  # Polyak step of the target critics
    target_update_every: int = 1  # updates between Polyak steps
    batch_size: int = 256  # transitions per gradient update
    buffer_size: int = 1_000_000  # real transitions kept for replay
    hidden_size: int = 256  # units per hidden layer of actor and critics
    num_layers: int = 2  # hidden layers of actor and critics
    critic_layer_norm: bool = False  # LayerNorm before each hidden ReLU of the critics
    # "bfloat16": hidden layers' matmuls autocast to bfloat16 (output layers, losses and weights stay float32)
    precision: str = "float32"
    learning_starts: int = 100  # uniform random actions (and no updates) before this many steps
    updates_per_step: int = 1  # gradient updates per real env step
    init_alpha: float = 1.0  # starting entropy temperature
    autotune_alpha: bool = True  # learn the temperature so the entropy tracks target_entropy
    target_entropy: float | None = None  # None: -|A|
    device: str = "auto"  # auto (CUDA when present), cpu, cuda or cuda:N
    # On CUDA, replay each update as one captured CUDA graph: the eager update is bound by its ~100 kernel
    # launches, not by the GPU. Ignored on CPU.
    cuda_graph: bool = True
    # Compile the whole gradient step (critics, actor, temperature and their Adam steps) into one graph with
    # torch.compile, which cuts the eager step's hundred-odd dispatches and fuses its elementwise work. The
    # first update compiles (tens of seconds; cached on disk for later runs). Where a CUDA graph is replayed,
    # this is not used.
    compile: bool = False

    def validate(self) -> None:
        for name in ("batch_size", "buffer_size", "hidden_size", "num_layers", "target_update_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        check_range(self, "learning_starts", 0)
        check_range(self, "updates_per_step", 0)
        check_precision("precision", self.precision)
        if self.actor_lr is not None and self.actor_lr <= 0:
            raise ConfigError(f"actor_lr must be > 0 (or None: lr), got {self.actor_lr}")
        check_range(self, "lr", 0, low_open=True)
        check_range(self, "init_alpha", 0, low_open=True)
        check_range(self, "tau", 0, 1, low_open=True)
        check_range(self, "gamma", 0, 1)


class SquashedGaussianActor(nn.Module):
    """pi(a|s) = tanh(N(mu(s), sigma(s))), actions in [-1, 1]."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_size: int, num_layers: int):
        super().__init__()
        self.net = mlp(obs_dim, 2 * action_dim, hidden_size, num_layers)

    def forward(self, obs: torch.Tensor, generator: torch.Generator | None = None,
                noise: torch.Tensor | None = None):
        """A sampled action and its log-probability (tanh's change of variables included); the standard
        normal `noise` is drawn from `generator` unless given."""
        mean, log_std = self.net(obs).chunk(2, -1)
        log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        if noise is None:
            noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        u = mean + log_std.exp() * noise
        # log(1 - tanh(u)^2) written as 2 (log 2 - u - softplus(-2u)), which stays finite for large |u|
        log_prob = (-0.5 * noise.pow(2) - log_std - HALF_LOG_2PI
                    - 2 * (LOG_2 - u - F.softplus(-2 * u))).sum(-1)
        return torch.tanh(u), log_prob

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs)[..., : self.net[-1].out_features // 2])


class TwinCritic(nn.Module):
    """Two Q networks run as one ensemble: `(obs, action) -> (2, B)`."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_size: int, num_layers: int,
                 layer_norm: bool = False):
        super().__init__()
        self.net = EnsembleMLP(obs_dim + action_dim, 1, ensemble_size=2, hidden_size=hidden_size,
                               num_layers=num_layers, probabilistic=False, activation="relu",
                               layer_norm=layer_norm)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, action], -1)
        return self.net(x.expand(2, *x.shape))[0].squeeze(-1)


class SACLearner:
    """Networks, optimisers and the gradient update of SAC; batches are dicts of device tensors with
    `obs, action (in [-1, 1]), reward, next_obs, terminated`."""

    def __init__(self, obs_dim: int, action_dim: int, config: SACConfig, device: torch.device,
                 generator: torch.Generator):
        self.config, self.device, self.generator = config, device, generator
        self.compute_dtype = compute_dtype("precision", config.precision, device)
        self.actor = self.make_actor(obs_dim, action_dim).to(device)
        self.critic = TwinCritic(obs_dim, action_dim, config.hidden_size, config.num_layers,
                                 config.critic_layer_norm).to(device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(config.init_alpha), device=device,
                                      requires_grad=config.autotune_alpha)
        self.target_entropy = -float(action_dim) if config.target_entropy is None else config.target_entropy
        self.graphed = config.cuda_graph and device.type == "cuda"
        self.compiled = config.compile and not self.graphed
        # Fused Adam updates all of a network's parameters in one kernel; capturable keeps its step count on
        # the device, as graph replay needs.
        adam = {"lr": config.lr, "fused": True, "capturable": self.graphed}
        actor_lr = config.lr if config.actor_lr is None else config.actor_lr
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), **{**adam, "lr": actor_lr})
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), **adam)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], **adam)
        self._critic_params = list(self.critic.parameters())
        self._target_params = list(self.critic_target.parameters())
        self._actor_params = list(self.actor.parameters())
        self.updates = 0
        # How a gradient step runs: eagerly, replayed from a captured CUDA graph, or as one compiled graph.
        if self.graphed:
            self._step = CudaGraphStep(self._gradient_step, generator, device)
        elif self.compiled:
            self._step = CompiledStep(self)
        else:
            self._step = self._gradient_step

    def make_actor(self, obs_dim: int, action_dim: int) -> nn.Module:
        return SquashedGaussianActor(obs_dim, action_dim, self.config.hidden_size, self.config.num_layers)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One gradient step of critics, actor and temperature, then the targets' Polyak step when due;
        returns detached losses (no host sync). Under a CUDA graph they are the graph's output tensors, which
        the next update overwrites."""
        losses = self._step(batch)
        self.updates += 1
        if self.updates % self.config.target_update_every == 0:
            with torch.no_grad():
                torch._foreach_lerp_(self._target_params, self._critic_params, self.config.tau)
        return losses

    def _gradient_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        alpha = self.log_alpha.detach().exp()
        with self.precision():
            target = self.bellman_target(batch["reward"], batch["next_obs"], batch["terminated"], alpha,
                                         self.generator)
            q = self.critic(batch["obs"], batch["action"])
        critic_loss = self.critic_loss(q, target)
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()

        actor = self.actor_step(batch["obs"], batch["obs"], alpha)
        # q_value: the critics' mean estimate on the batch, the first sign of an overestimating critic
        return {"critic_loss": critic_loss.detach(), "actor_loss": actor["actor_loss"], "alpha": alpha,
                "entropy": actor["entropy"], "q_value": q.detach().mean()}

    def actor_step(self, actor_obs: torch.Tensor, critic_obs: torch.Tensor, alpha: torch.Tensor
                   ) -> dict[str, torch.Tensor]:
        """The actor's and the temperature's updates: the actor acting on `actor_obs`, the critics judging
        its actions on `critic_obs` (the same observations, as each reads them)."""
        with self.precision():
            action, log_prob = self.actor(actor_obs, self.generator)
            actor_loss = self.policy_loss(critic_obs, action, log_prob, alpha)
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward(inputs=self._actor_params)  # the critics' weights get no gradient here
        self.actor_optimizer.step()
        log_prob = log_prob.detach()
        if self.config.autotune_alpha:
            alpha_loss = -(self.log_alpha * (log_prob + self.target_entropy)).mean()
            self.alpha_optimizer.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_optimizer.step()
        return {"actor_loss": actor_loss.detach(), "entropy": -log_prob.mean()}

    @torch.no_grad()
    def bellman_target(self, reward: torch.Tensor, next_obs: torch.Tensor, terminated: torch.Tensor,
                       alpha: torch.Tensor | float, generator: torch.Generator | None = None,
                       noise: torch.Tensor | None = None,
                       target_next_obs: torch.Tensor | None = None) -> torch.Tensor:
        """r + gamma (1 - done) (min of the target critics at a' ~ pi(s') - alpha log pi(a' | s')); a' from
        `generator`, or from the given standard normal `noise`. The target critics read `target_next_obs`
        where given (s' as the target encoder sees it), else `next_obs`."""
        next_action, next_log_prob = self.actor(next_obs, generator, noise)
        seen = next_obs if target_next_obs is None else target_next_obs
        next_q = self.critic_target(seen, next_action).min(0).values
        not_done = 1.0 - terminated.to(next_q.dtype)
        return reward + self.config.gamma * not_done * (next_q - alpha * next_log_prob)

    @staticmethod
    def critic_loss(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Half the squared error of each critic's Q against the Bellman target, batch-averaged, summed over
        both."""
        return 0.5 * (q - target).pow(2).mean(-1).sum()

    def policy_loss(self, obs: torch.Tensor, action: torch.Tensor, log_prob: torch.Tensor,
                    alpha: torch.Tensor) -> torch.Tensor:
        """SAC's actor loss: alpha log pi(a | s) - min of the twin critics at (s, a), a ~ pi(s)."""
        return (alpha * log_prob - self.critic(obs, action).min(0).values).mean()

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        with self.precision():
            return self.actor.mode(obs) if deterministic else self.actor(obs, self.generator)[0]

    def precision(self) -> torch.autocast:
        """Autocast of the hidden layers' matmuls to `config.precision` (off for float32). No cast cache:
        each region uses a network's weights once, and graph capture forbids the cache."""
        return torch.autocast(self.device.type, dtype=self.compute_dtype,
                              enabled=self.compute_dtype is not None, cache_enabled=False)

    def modules(self) -> dict[str, Any]:
        return {"actor": self.actor, "critic": self.critic, "critic_target": self.critic_target,
                "actor_optimizer": self.actor_optimizer, "critic_optimizer": self.critic_optimizer,
                "alpha_optimizer": self.alpha_optimizer}

    def state_dict(self) -> dict[str, Any]:
        state = {name: module.state_dict() for name, module in self.modules().items()}
        state.update(log_alpha=self.log_alpha.detach().cpu(), updates=self.updates)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, module in self.modules().items():
            module.load_state_dict(state[name])
        for optimizer in (self.actor_optimizer, self.critic_optimizer, self.alpha_optimizer):
            for group in optimizer.param_groups:  # as this device needs, whatever the saving one had
                group["capturable"] = self.graphed
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.updates = state["updates"]
        if isinstance(self._step, CudaGraphStep):
            self._step.graphs.clear()  # captured graphs hold the replaced optimiser state

    def parameters_finite(self) -> bool:
        params = [*self._actor_params, *self._critic_params, self.log_alpha]
        return bool(torch.stack([p.detach().isfinite().all() for p in params]).all())


def soft_returns(rewards: np.ndarray, log_probs: np.ndarray, alpha: float, gamma: float) -> np.ndarray:
    """What SAC's critic estimates at each step of an episode that ended after its last reward (terminated,
    or cut short): Q(s_t, a_t) = r_t + gamma (Q(s_t+1, a_t+1) - alpha log pi(a_t+1 | s_t+1))."""
    returns, following = np.empty(len(rewards)), 0.0
    for t in reversed(range(len(rewards))):
        if t + 1 < len(rewards):
            following -= alpha * log_probs[t + 1]
        following = rewards[t] + gamma * following
        returns[t] = following
    return returns


def check_box_actions(agent_id: str, env_id: str, env: gym.Env) -> None:
    space = env.action_space
    if not (isinstance(space, gym.spaces.Box) and len(space.shape) == 1 and np.isfinite(space.low).all()
            and np.isfinite(space.high).all()):
        raise IncompatibleEnvError(
            f"{agent_id} needs bounded 1-D Box actions; {env_id} has {space} (use dqn for Discrete actions)")


class ActionScale:
    """Between the learner's [-1, 1] and the env's [low, high]."""

    def __init__(self, space: gym.spaces.Box):
        self.low, self.high = space.low.astype(np.float32), space.high.astype(np.float32)
        self.center, self.half = (self.high + self.low) / 2, (self.high - self.low) / 2
        self.dtype = space.dtype

    def to_env(self, unit: np.ndarray) -> np.ndarray:
        return np.clip(self.center + self.half * unit, self.low, self.high).astype(self.dtype)

    def to_unit(self, action: np.ndarray) -> np.ndarray:
        return ((np.asarray(action, np.float32) - self.center) / self.half).clip(-1, 1)


class SAC(Agent):
    agent_id = "sac"
    config_class = SACConfig
    metric_names = ("critic_loss", "actor_loss", "alpha", "entropy", "q_value", "updates")

    def __init__(self, env, config=None, seed: int = 0, env_kwargs: dict | None = None, num_envs: int = 1):
        super().__init__(env, config, seed, env_kwargs, num_envs)
        self.device = resolve_device(self.config.device)
        self.generator = torch_stream(self.seed, "policy", self.device)  # the policy's and the update's noise
        obs_dim, action_dim = self.env.observation_space.shape[0], self.env.action_space.shape[0]
        self.scale = ActionScale(self.env.action_space)
        with seeded_weights(self.seed):
            self.learner = SACLearner(obs_dim, action_dim, self.config, self.device, self.generator)
        self.buffer = ReplayBuffer(self.config.buffer_size, self.env.observation_space.shape, (action_dim,),
                                   name="buffer_size")
        self._losses: dict[str, torch.Tensor] = {}

    def check_env(self, env: gym.Env) -> None:
        self.require_flat_box_observations(env)
        check_box_actions(self.agent_id, self.env_id, env)

    def act(self, obs, deterministic: bool = False):
        if not deterministic and self.env_steps < self.config.learning_starts:
            return self.rng.uniform(self.scale.low, self.scale.high).astype(self.scale.dtype)
        state = torch.as_tensor(np.asarray(obs, np.float32), device=self.device)
        return self.scale.to_env(self.learner.act(state, deterministic).cpu().numpy())

    def first_learning_step(self) -> tuple[int, str]:
        return max(1, self.config.learning_starts), f"learning_starts={self.config.learning_starts}"

    def observe(self, obs, action, reward, next_obs, terminated, truncated, info=None) -> None:
        self.buffer.add(obs, self.scale.to_unit(action), reward, next_obs, terminated, truncated)
        if self.env_steps >= self.config.learning_starts:
            for _ in range(self.config.updates_per_step):
                batch = self.buffer.sample_tensors(self.config.batch_size, self.rng, self.device)
                self._losses = self.learner.update(batch)

    @torch.no_grad()
    def policy_episode(self, env: gym.Env, seed: int, generator: torch.Generator, deterministic: bool = False,
                       max_steps: int = 1000) -> dict[str, Any]:
        """One episode of the current policy on `env` (not the training env): obs, unit actions and their
        log-probabilities (0 when deterministic) as tensors, rewards, and whether it terminated."""
        obs, _ = env.reset(seed=seed)
        states, actions, log_probs, rewards, terminated, truncated = [], [], [], [], False, False
        while not (terminated or truncated) and len(rewards) < max_steps:
            state = torch.as_tensor(np.asarray(obs, np.float32), device=self.device)[None]
            if deterministic:
                action, log_prob = self.learner.actor.mode(state), torch.zeros(1, device=self.device)
            else:
                action, log_prob = self.learner.actor(state, generator)
            obs, reward, terminated, truncated, _ = env.step(self.scale.to_env(action[0].cpu().numpy()))
            states.append(state[0])
            actions.append(action[0])
            log_probs.append(float(log_prob))
            rewards.append(float(reward))
        return {"obs": torch.stack(states), "action": torch.stack(actions), "log_prob": np.asarray(log_probs),
                "reward": np.asarray(rewards), "terminated": bool(terminated),
                "final_obs": np.asarray(obs, np.float32)}

    @torch.no_grad()
    def critic_bias(self, episodes: int = 3, seed: int = 0, max_steps: int = 1000) -> dict[str, float]:
        """How far the critics are off on the current policy's own states: fresh episodes with the
        stochastic policy on a separate env, and at each visited (s, a) the critics' estimate (the min of the
        twins, what targets use) beside the soft discounted return that actually followed, entropy bonuses
        included as in the targets. States of truncated episodes closer to the end than 99% of the discount
        weight are left out. `normalized_q_bias` is mean(Q - return) / |mean(return)| (Chen et al. 2021).
        Training state (RNGs, envs, buffers) is untouched."""
        gamma, alpha = self.config.gamma, float(self.learner.log_alpha.exp())
        generator = torch.Generator(self.device).manual_seed(seed)
        env = make_env(self.env_id, **self.env_kwargs)
        cut = math.ceil(math.log(0.01) / math.log(gamma)) if gamma < 1 else max_steps
        estimates, returns = [], []
        for episode in range(episodes):
            run = self.policy_episode(env, seed + episode, generator, max_steps=max_steps)
            keep = len(run["reward"]) if run["terminated"] else max(0, len(run["reward"]) - cut)
            q = self.learner.critic(run["obs"], run["action"]).min(0).values.cpu().numpy()
            estimates.append(q[:keep])
            returns.append(soft_returns(run["reward"], run["log_prob"], alpha, gamma)[:keep])
        env.close()
        estimates, returns = np.concatenate(estimates), np.concatenate(returns)
        if not len(returns):
            raise ValueError(f"no state of {episodes} episodes has a full discounted return; raise max_steps")
        bias = float(np.mean(estimates - returns))
        return {"q_estimate": float(estimates.mean()), "soft_return": float(returns.mean()), "q_bias": bias,
                "normalized_q_bias": bias / max(abs(float(returns.mean())), 1e-8), "states": len(returns)}

    def metrics(self) -> dict[str, float]:
        row = {name: float(value) for name, value in self._losses.items()}
        row["updates"] = self.learner.updates
        return row

    def check_finite(self) -> bool:
        return self.learner.parameters_finite()

    def state_dict(self) -> dict[str, Any]:
        return {"learner": self.learner.state_dict(), "buffer": self.buffer.state_dict(),
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.learner.load_state_dict(state["learner"])
        self.buffer.load_state_dict(state["buffer"])
        restore_generator(self.generator, state["generator"])

