"""`mpc`: receding-horizon control with a given model: an env's exact dynamics (batched torch dynamics for
classic control; for MuJoCo envs, a copy of the simulator, or MuJoCo's batched rollout for the DeepMind
Control tasks whose model is written out: the upper bound a learned model is measured against) or a saved
dynamics model (`model_path`, e.g. a PETS run's checkpoint).

What a planner may learn from its real steps (`mpc` and `pets` alike): a terminal value (`terminal_value`:
by TD, or with `value_source="critic"` the policy prior's critic, as LOOP has it), and a SAC policy whose
own action sequences, rolled through the model, join every population (`policy_prior`: LOOP's and
TD-MPC2's policy-guided planning)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from modelrl.agents.base import Agent
from modelrl.agents.sac import ActionScale, SACConfig, SACLearner
from modelrl.buffers import ReplayBuffer
from modelrl.config import check_range
from modelrl.device import compute_dtype, resolve_device, restore_generator
from modelrl.envs.dmc import DMCEnv
from modelrl.envs.known import known_functions
from modelrl.errors import ConfigError, IncompatibleEnvError
from modelrl.models.dynamics import DynamicsModel
from modelrl.planning.config import PlannerConfig
from modelrl.planning.env_copy import EnvCopyObjective, RolloutObjective
from modelrl.planning.trajectory import ModelObjective, SimulatorObjective
from modelrl.planning.value import CriticValue, TerminalValue
from modelrl.seeding import numpy_stream, seeded_weights, torch_stream


@dataclass
class MPCConfig(PlannerConfig):
    model_path: str = ""  # a saved dynamics model or PETS checkpoint; empty: the env's exact dynamics
    buffer_size: int = 1_000_000  # real transitions kept for the terminal value (terminal_value only)
    device: str = "auto"  # auto (CUDA when present), cpu, cuda or cuda:N

    def validate(self) -> None:
        super().validate()
        check_range(self, "buffer_size", 1)


class MPCAgent(Agent):
    agent_id = "mpc"
    config_class = MPCConfig
    plans_every_step = True
    supports_num_envs = False  # the planner's warm start belongs to one episode
    metric_names = ("plan_seconds", "value_loss", "prior_actor_loss", "prior_critic_loss")

    def __init__(self, env, config=None, seed: int = 0, env_kwargs: dict | None = None, num_envs: int = 1):
        super().__init__(env, config, seed, env_kwargs, num_envs)
        self.device = resolve_device(self.config.device)
        self.generator = torch_stream(self.seed, "planning", self.device)
        # Evaluation draws from streams of its own, so evaluating never shifts a training run's draws.
        self.eval_generator = torch_stream(self.seed, "evaluation planning", self.device)
        self.eval_rng = numpy_stream(self.seed, "evaluation acting")
        self.known = known_functions(self.env_id, self.env_kwargs)
        obs_dim = int(self.env.observation_space.shape[0])
        with seeded_weights(self.seed, "value"):
            self.value = self.config.make_value(obs_dim, self.device)
        self.prior, self.prior_losses = None, {}
        if self.config.policy_prior:
            self.prior = self.make_prior(obs_dim)
            if self.config.terminal_value and self.config.value_source == "critic":
                self.value = CriticValue(self.prior)
        self.buffer: ReplayBuffer | None = None  # pets keeps its real steps; mpc only for what it learns
        self.objective = self.build_objective()
        if (self.value is not None or self.prior is not None) and self.buffer is None:
            self.buffer = self.real_steps_buffer()
        if self.prior is not None and not hasattr(self.objective, "rollout"):
            raise ConfigError("policy_prior rolls the policy through a model or known dynamics in torch, not "
                              f"through a copy of {self.env_id}'s simulator")
        # Training and evaluation episodes each keep their own warm start.
        self.planners = {
            evaluation: self.config.make_mpc(self.env.action_space, device=self.device,
                                             generator=self.eval_generator if evaluation else self.generator)
            for evaluation in (False, True)
        }
        self.plan_seconds, self.plans = 0.0, 0

    def check_env(self, env: gym.Env) -> None:
        self.require_flat_box_observations(env)
        space = env.action_space
        if not (isinstance(space, gym.spaces.Discrete) or (isinstance(space, gym.spaces.Box)
                                                         and len(space.shape) == 1)):
            raise IncompatibleEnvError(f"{self.agent_id} plans over 1-D Box or Discrete actions, not {space}")

    def make_prior(self, obs_dim: int) -> SACLearner:
        """SAC's learner, its discount the planner's (0.99 where the planner's is 1)."""
        space = self.env.action_space
        if not isinstance(space, gym.spaces.Box):
            raise IncompatibleEnvError(f"policy_prior learns a SAC policy, for Box actions; {self.env_id} "
                                       f"has {space}")
        self.prior_scale = ActionScale(space)
        config = SACConfig(gamma=self.config.gamma if self.config.gamma < 1 else 0.99)
        with seeded_weights(self.seed, "policy prior"):
            return SACLearner(obs_dim, int(space.shape[0]), config, self.device,
                              torch_stream(self.seed, "policy prior", self.device))

    def prior_sequences(self, state: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The policy prior's proposals from `state`, in the env's action scale."""
        center = torch.as_tensor(self.prior_scale.center, device=self.device)
        half = torch.as_tensor(self.prior_scale.half, device=self.device)

        def policy(states: torch.Tensor) -> torch.Tensor:
            return center + half * self.prior.actor(states, generator)[0]

        return self.objective.rollout(state, policy, self.config.prior_count(), self.config.horizon)

    def real_steps_buffer(self) -> ReplayBuffer:
        """A replay of real transitions, actions as the env takes them, `config.buffer_size` long."""
        space = self.env.action_space
        discrete = isinstance(space, gym.spaces.Discrete)
        return ReplayBuffer(self.config.buffer_size, self.env.observation_space.shape,
                            () if discrete else space.shape,
                            action_dtype=np.int64 if discrete else np.float32, name="buffer_size")

    def known_reward(self):
        """The known reward to plan with: the env's own, or its shaped planning reward if asked for."""
        if self.config.planning_reward == "env":
            return self.known.reward
        if self.known.shaped_reward is None:
            raise ConfigError(f"planning_reward='shaped', but no shaped reward is known for {self.env_id}")
        return self.known.shaped_reward

    def planning_dtype(self) -> torch.dtype | None:
        return compute_dtype("planning_precision", self.config.planning_precision, self.device)

    def build_objective(self):
        config = self.config
        if config.model_path:
            model = DynamicsModel.load(config.model_path, self.device)
            reward = None if model.spec.learn_reward else self.known_reward()
            termination = None if model.spec.learn_termination else self.known.termination
            return ModelObjective(model, reward, termination, particles=config.particles,
                                  propagation=config.propagation, gamma=config.gamma,
                                  generator=self.generator, terminal_value=self.value,
                                  precision=self.planning_dtype())
        if config.planning_precision != "float32":
            raise ConfigError("planning_precision sets the precision of a learned model's matmuls; planning "
                              f"with {self.env_id}'s exact dynamics has none (give model_path)")
        if self.known.simulator is None or self.known.reward is None:
            copied = hasattr(self.env.unwrapped, "set_state") or isinstance(self.env.unwrapped, DMCEnv)
            if copied and self.value is not None:
                raise ConfigError("terminal_value plans with a model or known dynamics in torch, not "
                                  f"with a copy of {self.env_id}'s simulator")
            shaped = self.known_reward() if config.planning_reward == "shaped" else None
            if isinstance(self.env.unwrapped, DMCEnv):  # the task's exact model, rolled out in batches
                return RolloutObjective(self.env_id, self.env_kwargs, gamma=config.gamma)
            if hasattr(self.env.unwrapped, "set_state"):  # MuJoCo: a private copy of the simulator
                return EnvCopyObjective(self.env_id, self.env_kwargs, gamma=config.gamma, reward_fn=shaped)
            raise IncompatibleEnvError(
                f"no exact simulator is known for {self.env_id}; give model_path=<a saved dynamics model "
                "or PETS checkpoint> to plan with a learned model"
            )
        return SimulatorObjective(self.known.simulator, self.known_reward(), self.known.termination,
                                  gamma=config.gamma, terminal_value=self.value, device=self.device)

    def on_reset(self, evaluation: bool) -> None:
        self.planners[evaluation].reset()

    def act(self, obs, deterministic: bool = False):
        started = time.perf_counter()
        state = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device)
        planner = self.planners[deterministic]
        prior = None if self.prior is None else self.prior_sequences(state, planner.generator)
        action = planner.act(lambda actions: self.objective(state, actions, planner.generator), prior)
        self.plan_seconds += time.perf_counter() - started
        self.plans += 1
        return action

    @torch.no_grad()
    def planned_returns(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The planner's objective for each row's own sequence, `obs (N, D)` and env actions `(N, H, ...)`:
        its planned return, plus gamma^H V at the horizon with a terminal value (the model report's check)."""
        if isinstance(self.env.action_space, gym.spaces.Discrete):
            actions = actions.long()
        generator = torch.Generator(self.device).manual_seed(0)
        obs, actions = obs.to(self.device), actions.to(self.device)
        return torch.stack([self.objective(state, sequence[None], generator)[0]
                            for state, sequence in zip(obs, actions, strict=True)])

    def observe(self, obs, action, reward, next_obs, terminated, truncated, info=None) -> None:
        """A given model learns nothing; a terminal value and a policy prior learn from every real step."""
        if self.buffer is not None:
            self.buffer.add(obs, action, reward, next_obs, terminated, truncated)
            self.update_learners()

    def update_learners(self) -> None:
        """The terminal value's and the policy prior's updates for one real step."""
        if isinstance(self.value, TerminalValue):
            for _ in range(self.config.value_updates_per_step):
                self.value.update(self.buffer.sample_tensors(self.config.value_batch_size, self.rng,
                                                             self.device))
        if self.prior is not None:
            center = torch.as_tensor(self.prior_scale.center, device=self.device)
            half = torch.as_tensor(self.prior_scale.half, device=self.device)
            for _ in range(self.config.prior_updates_per_step):
                batch = self.buffer.sample_tensors(self.prior.config.batch_size, self.rng, self.device)
                batch["action"] = ((batch["action"] - center) / half).clamp(-1, 1)  # SAC's unit actions
                self.prior_losses = self.prior.update(batch)

    def metrics(self) -> dict[str, float]:
        row = {"plan_seconds": self.plan_seconds / self.plans if self.plans else float("nan")}
        self.plan_seconds, self.plans = 0.0, 0
        if isinstance(self.value, TerminalValue) and self.value.updates:
            row["value_loss"] = float(self.value.loss)
        if self.prior_losses:
            row["prior_actor_loss"] = float(self.prior_losses["actor_loss"])
            row["prior_critic_loss"] = float(self.prior_losses["critic_loss"])
        return row

    def check_finite(self) -> bool:
        return ((not isinstance(self.value, TerminalValue) or self.value.parameters_finite())
                and (self.prior is None or self.prior.parameters_finite()))

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "eval_generator": self.eval_generator.get_state(),
                "eval_rng": self.eval_rng.bit_generator.state,
                "planners": {flag: mpc.state_dict() for flag, mpc in self.planners.items()},
                **({"value": self.value.state_dict()} if isinstance(self.value, TerminalValue) else {}),
                **({} if self.prior is None else {"prior": self.prior.state_dict()}),
                **({} if self.buffer is None else {"buffer": self.buffer.state_dict()})}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        restore_generator(self.generator, state["generator"])
        restore_generator(self.eval_generator, state["eval_generator"])
        self.eval_rng.bit_generator.state = state["eval_rng"]
        for flag, mpc in self.planners.items():
            mpc.load_state_dict(state["planners"][flag])
        if isinstance(self.value, TerminalValue):
            self.value.load_state_dict(state["value"])
        if self.prior is not None:
            self.prior.load_state_dict(state["prior"])
        if self.buffer is not None:
            self.buffer.load_state_dict(state["buffer"])
