"""`mbpo`: model-based policy optimisation (Janner et al. 2019, "When to Trust Your Model").

SAC trained mostly on imagined data: every `model_train_every` real steps the ensemble is refitted on all
real transitions, then `rollouts_per_step x model_train_every` branched rollouts of length k start from
real states (k grows with the epoch, counted from the end of the random phase, by the paper's schedule
for the task) and land in a model buffer that
keeps about `model_retain_epochs` epochs of them. Each real step then takes G = `updates_per_step` SAC
updates on batches that are `real_ratio` real and the rest imagined. Rewards are learned; terminations are
the env's known functions (learned for envs without one).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from modelrl.agents.learned_model import LearnedModelConfig
from modelrl.agents.sac import SAC, SACConfig
from modelrl.buffers import ReplayBuffer
from modelrl.envs.known import lookup_known
from modelrl.errors import ConfigError
from modelrl.models.imagination import branched_rollouts
from modelrl.models.training import ModelTrainer

# Rollout length schedules of the paper (appendix C) by task, whatever the env version: (start epoch, end
# epoch, min length, max length); k rises linearly from min to max between the two epochs. Tasks not
# listed use k = 1.
ROLLOUT_SCHEDULES = {
    "Hopper": (20, 100, 1, 15),
    "Ant": (20, 100, 1, 25),
    "Humanoid": (20, 300, 1, 25),
}
DEFAULT_SCHEDULE = (20, 100, 1, 1)


@dataclass
class MBPOConfig(SACConfig, LearnedModelConfig):
    """Defaults: Janner et al. 2019, appendix C, and its released code (initial exploration, holdout,
    early stopping, model retention)."""

    updates_per_step: int = 20  # G
    learning_starts: int = 5000  # random steps before the first model fit
    real_ratio: float = 0.05  # share of real transitions in each SAC batch (the rest imagined)
    ensemble_size: int = 7
    model_layers: int = 4
    model_max_epochs: int = 1000
    model_train_every: int = 250  # real steps between model refits (each followed by new rollouts)
    rollouts_per_step: int = 400  # M: 100k rollouts per refit
    rollout_schedule: str = "auto"  # "start_epoch,end_epoch,min_length,max_length"; auto: the task's
    # real steps per epoch, the unit of the rollout schedule and of model_retain_epochs
    epoch_length: int = 1000
    model_retain_epochs: int = 1  # epochs of rollouts the model buffer keeps

    def validate(self) -> None:
        super().validate()
        self.validate_model()
        if not 0 <= self.real_ratio <= 1:
            raise ConfigError(f"real_ratio must be in [0, 1], got {self.real_ratio}")
        if self.learning_starts < 1:  # the first fit, at step `learning_starts`, needs real data
            raise ConfigError(f"mbpo fits its model on real steps first: learning_starts must be >= 1, "
                              f"got {self.learning_starts}")
        for name in ("model_train_every", "rollouts_per_step", "epoch_length", "model_retain_epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.epoch_length < self.model_train_every:  # the model buffer holds epochs of rollouts
            raise ConfigError(f"epoch_length ({self.epoch_length}) must be >= model_train_every "
                              f"({self.model_train_every}): the model buffer, sized in epochs, would not "
                              f"hold one refit's rollouts")
        if self.rollout_schedule != "auto":
            parse_schedule(self.rollout_schedule)

    def schedule(self, env_id: str) -> tuple[int, int, int, int]:
        if self.rollout_schedule == "auto":
            task = (env_id or "").split("/")[-1].split(":")[-1].split("-v")[0]
            return ROLLOUT_SCHEDULES.get(task, DEFAULT_SCHEDULE)
        return parse_schedule(self.rollout_schedule)


def parse_schedule(text: str) -> tuple[int, int, int, int]:
    try:
        start, end, low, high = (int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"rollout_schedule must be 'auto' or four integers "
                          f"'start_epoch,end_epoch,min_length,max_length', got {text!r}") from None
    if not (0 <= start <= end and 1 <= low <= high):
        raise ConfigError(f"rollout_schedule needs 0 <= start <= end and 1 <= min_length <= max_length, "
                          f"got {text!r}")
    return start, end, low, high


def rollout_length(schedule: tuple[int, int, int, int], epoch: int) -> int:
    start, end, low, high = schedule
    progress = 1.0 if end == start else min(1.0, max(0.0, (epoch - start) / (end - start)))
    return int(low + progress * (high - low))


class MBPO(SAC):
    agent_id = "mbpo"
    config_class = MBPOConfig
    metric_names = (*SAC.metric_names, *ModelTrainer.metric_names, "rollout_length", "model_buffer",
                    "imagined_reward", "imagined_terminated", "rollout_seconds", "policy_seconds")

    def __init__(self, env, config=None, seed: int = 0, env_kwargs: dict | None = None, num_envs: int = 1):
        super().__init__(env, config, seed, env_kwargs, num_envs)
        config = self.config
        known = lookup_known(self.env_id, self.env_kwargs)
        self.termination_fn = known.termination if known is not None else None
        self.trainer = config.model_trainer(self.env.observation_space.shape[0],
                                            self.env.action_space.shape[0], self.device, self.seed,
                                            learn_termination=known is None)
        self.model = self.trainer.model
        self.schedule = config.schedule(self.env_id)
        self.rollout_length = rollout_length(self.schedule, 0)
        self.model_buffer = self._new_model_buffer(self.rollout_length)
        self.seconds = {"rollout": 0.0, "policy": 0.0}
        self.imagined: dict[str, float] = {}  # the last rollouts' mean reward and share of terminations

    def _new_model_buffer(self, length: int) -> ReplayBuffer:
        config = self.config
        capacity = config.rollouts_per_step * config.epoch_length * length * config.model_retain_epochs
        return ReplayBuffer(capacity, self.env.observation_space.shape, self.env.action_space.shape,
                            name="rollouts_per_step x epoch_length x rollout length x model_retain_epochs")

    def observe(self, obs, action, reward, next_obs, terminated, truncated, info=None) -> None:
        self.buffer.add(obs, self.scale.to_unit(action), reward, next_obs, terminated, truncated)
        config, step = self.config, self.env_steps
        if step < config.learning_starts:
            return
        if (step - config.learning_starts) % config.model_train_every == 0:
            self.trainer.fit(self.buffer, self.generator)
            self.imagine()
        started = time.perf_counter()
        real = round(config.batch_size * config.real_ratio)
        for _ in range(config.updates_per_step):
            batch = self.buffer.sample_tensors(real, self.rng, self.device)
            imagined = self.model_buffer.sample_tensors(config.batch_size - real, self.rng, self.device)
            self._losses = self.learner.update({key: torch.cat([batch[key], imagined[key]]) for key in batch})
        self.seconds["policy"] += time.perf_counter() - started

    def imagine(self) -> None:
        """Branched rollouts from real states into the model buffer (regrown when k changes)."""
        started, config = time.perf_counter(), self.config
        # Epochs count from the end of the random phase, as in the paper's released code and mbrl-lib.
        length = rollout_length(self.schedule,
                                (self.env_steps - config.learning_starts) // config.epoch_length)
        if length != self.rollout_length:
            old, self.model_buffer = self.model_buffer, self._new_model_buffer(length)
            self.model_buffer.add_batch(**old.all())
            self.rollout_length = length
        count = config.rollouts_per_step * config.model_train_every
        start = self.buffer.sample_tensors(count, self.rng, self.device)["obs"]
        data = branched_rollouts(self.model, lambda obs: self.learner.act(obs, deterministic=False), start,
                                 length, self.generator, termination_fn=self.termination_fn)
        self.imagined = {"imagined_reward": float(data["reward"].mean()),
                         "imagined_terminated": float(data["terminated"].float().mean())}
        data = {key: value.cpu().numpy() for key, value in data.items()}
        self.model_buffer.add_batch(truncated=np.zeros(len(data["obs"]), bool), **data)
        self.seconds["rollout"] += time.perf_counter() - started

    def metrics(self) -> dict[str, float]:
        return {**super().metrics(), **self.trainer.metrics(), "rollout_length": self.rollout_length,
                "model_buffer": len(self.model_buffer), **self.imagined,
                **{f"{part}_seconds": round(value, 3) for part, value in self.seconds.items()}}

    def check_finite(self) -> bool:
        return super().check_finite() and self.trainer.parameters_finite()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), **self.trainer.state_dict(),
                "model_buffer": self.model_buffer.state_dict(), "rollout_length": self.rollout_length,
                "seconds": dict(self.seconds)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.trainer.load_state_dict(state)
        self.rollout_length = state["rollout_length"]
        self.model_buffer = self._new_model_buffer(self.rollout_length)
        self.model_buffer.load_state_dict(state["model_buffer"])
        self.seconds = dict(state["seconds"])
