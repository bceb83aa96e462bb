"""`drq`: SAC from pixels with image augmentation (Kostrikov, Yarats & Fergus 2021, "Image Augmentation Is
All You Need: Regularizing Deep Reinforcement Learning from Pixels"), the model-free baseline that
pixel-based world models (Dreamer, PlaNet) are measured against.

The agent observes 64 x 64 RGB frames and stacks the last `frame_stack` so that velocities can be seen.
Dreamer's conv encoder (`ImageEncoder`, reading the stack's channels), then a linear layer, LayerNorm and
tanh, turn a stack into the critics' `features`; the critics' loss trains the encoder, and the actor reads
its conv features detached, through a linear layer, LayerNorm and tanh of its own (SAC-AE); the target
critics keep a Polyak-averaged copy of the encoder. Every replayed stack is shifted at random by up to
`image_pad` pixels (edges replicated): the critics' loss is averaged over `augment_q` (DrQ's M) shifted
copies of each observation, the Bellman target over `augment_target` (K) shifted copies of the next. Replay
keeps each frame once, in each env's stream of steps; stacks are rebuilt when sampled.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from modelrl.agents.base import Agent
from modelrl.agents.sac import (
    SAC,
    ActionScale,
    SACConfig,
    SACLearner,
    SquashedGaussianActor,
    check_box_actions,
)
from modelrl.buffers import EpisodeStreams
from modelrl.config import check_range
from modelrl.device import resolve_device, restore_generator
from modelrl.errors import ConfigError, IncompatibleEnvError
from modelrl.loop import StreamLoop
from modelrl.models.encoders import IMAGE_SIZE, ImageEncoder, image_input, observation_kind
from modelrl.seeding import seeded_weights, torch_stream


@dataclass
class DrQConfig(SACConfig):
    """SAC's settings with DrQ's defaults on the DeepMind Control Suite (Kostrikov et al. 2021, its table of
    hyperparameters), and DrQ's own. Its encoder is Dreamer's, at a depth near DrQ's 32 channels."""

    lr: float = 1e-3  # Adam learning rate of critics with encoder, actor and temperature
    tau: float = 0.01  # Polyak step of the target critics and their encoder
    target_update_every: int = 2  # updates between Polyak steps
    batch_size: int = 512  # transitions per gradient update
    buffer_size: int = 100_000  # real steps kept for replay (each frame once)
    hidden_size: int = 1024  # units per hidden layer of actor and critics
    learning_starts: int = 1000  # uniform random actions (and no updates) before this many steps
    init_alpha: float = 0.1  # starting entropy temperature
    cuda_graph: bool = False  # drq's update runs eagerly: True is refused
    compile: bool = False  # drq's update runs eagerly: True is refused
    frame_stack: int = 3  # frames observed together, so that velocities can be seen
    image_pad: int = 4  # replayed stacks are shifted by up to this many pixels, edges replicated
    augment_q: int = 2  # M: shifted copies of each observation the critics' loss averages over
    augment_target: int = 2  # K: shifted copies of each next observation the Bellman target averages over
    actor_update_every: int = 2  # critic updates per actor (and temperature) update
    features: int = 50  # the encoder's output: a linear layer, LayerNorm and tanh after the convolutions
    depth: int = 16  # the encoder's width: its four conv stages have 2, 3, 4, 4 x depth channels

    def validate(self) -> None:
        super().validate()
        for name in ("cuda_graph", "compile"):
            if getattr(self, name):
                raise ConfigError(f"drq's update runs eagerly; {name}=True is not supported")
        for name in ("frame_stack", "augment_q", "augment_target", "actor_update_every", "features", "depth"):
            check_range(self, name, 1)
        check_range(self, "image_pad", 0, IMAGE_SIZE // 2)


def feature_head(inputs: int, features: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, features), nn.LayerNorm(features), nn.Tanh())


class StackEncoder(nn.Module):
    """`(N, 3 frames, 64, 64)` pixels -> `(N, features)` in [-1, 1]: convolutions, then a head."""

    def __init__(self, frames: int, depth: int, features: int):
        super().__init__()
        self.conv = ImageEncoder(depth, in_channels=3 * frames)
        self.head = feature_head(self.conv.output_size, features)

    def conv_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.conv.net(pixels).flatten(1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv_features(pixels))


class HeadedActor(nn.Module):
    """SAC's actor on the encoder's conv features through a head of its own (DrQ and SAC-AE share only the
    convolutions between actor and critics)."""

    def __init__(self, conv_size: int, features: int, action_dim: int, hidden_size: int, num_layers: int):
        super().__init__()
        self.head = feature_head(conv_size, features)
        self.policy = SquashedGaussianActor(features, action_dim, hidden_size, num_layers)

    def forward(self, conv: torch.Tensor, generator: torch.Generator | None = None,
                noise: torch.Tensor | None = None):
        return self.policy(self.head(conv), generator, noise)

    def mode(self, conv: torch.Tensor) -> torch.Tensor:
        return self.policy.mode(self.head(conv))


def stack_pixels(stacks: torch.Tensor) -> torch.Tensor:
    """`(N, frames, 64, 64, 3)` uint8 -> `(N, 3 frames, 64, 64)` pixels in image_input's units."""
    pixels = image_input(stacks)
    # channels-last: the CPU's convolutions ran 1.2-1.4x faster so (and the LayerNorms read channels in place)
    pixels = pixels.reshape(pixels.shape[0], -1, *pixels.shape[-2:])
    return pixels.contiguous(memory_format=torch.channels_last)


class DrQLearner(SACLearner):
    """SAC's learner on encoded frame stacks: batches are dicts of device tensors with `obs` and `next_obs`
    as `(B, frames, 64, 64, 3)` uint8 stacks, `action (in [-1, 1]), reward, terminated`. The critics read the
    encoder's features, the actor its conv features (detached) through a head of its own."""

    def __init__(self, frames: int, action_dim: int, config: DrQConfig, device: torch.device,
                 generator: torch.Generator):
        self.encoder = StackEncoder(frames, config.depth, config.features).to(device,
                                                                             memory_format=torch.channels_last)
        super().__init__(config.features, action_dim, config, device, generator)
        self.encoder_target = copy.deepcopy(self.encoder).requires_grad_(False)
        # the critics' loss trains the encoder; their targets are averaged with it
        self._critic_params = [*self.critic.parameters(), *self.encoder.parameters()]
        self._target_params = [*self.critic_target.parameters(), *self.encoder_target.parameters()]
        self.critic_optimizer = torch.optim.Adam(self._critic_params, lr=config.lr, fused=True)
        self._actor_losses: dict[str, torch.Tensor] = {}

    def make_actor(self, obs_dim: int, action_dim: int) -> nn.Module:
        return HeadedActor(self.encoder.conv.output_size, obs_dim, action_dim, self.config.hidden_size,
                           self.config.num_layers)

    def shifted(self, stacks: torch.Tensor, copies: int) -> torch.Tensor:
        """`copies` versions of each stack, each shifted by its own random offset of up to `image_pad`
        pixels each way (a pixel past the edge repeats the edge: DrQ's replicate padding and random crop):
        `(copies x N, 3 frames, 64, 64)` pixels, copy-major."""
        count, frames = stacks.shape[0] * copies, stacks.shape[1]
        # (N, 64, 64, frames x 3): one gather per axis moves whole rows, then whole pixels
        moved = stacks.permute(0, 2, 3, 1, 4).reshape(stacks.shape[0], IMAGE_SIZE, IMAGE_SIZE, -1)
        moved = moved.repeat(copies, 1, 1, 1)
        pad = self.config.image_pad
        shift = torch.randint(-pad, pad + 1, (2, count, 1), generator=self.generator, device=stacks.device)
        rows, cols = (torch.arange(IMAGE_SIZE, device=stacks.device) + shift).clamp(0, IMAGE_SIZE - 1)
        moved = moved.gather(1, rows[:, :, None, None].expand_as(moved))
        moved = moved.gather(2, cols[:, None, :, None].expand_as(moved))
        return stack_pixels(moved.view(count, IMAGE_SIZE, IMAGE_SIZE, frames, 3).permute(0, 3, 1, 2, 4))

    def _gradient_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        config, reward = self.config, batch["reward"]
        size, targets, copies = reward.shape[0], config.augment_target, config.augment_q
        alpha = self.log_alpha.detach().exp()
        with self.precision():
            with torch.no_grad():
                next_pixels = self.shifted(batch["next_obs"], targets)
                target = self.bellman_target(reward.repeat(targets), self.encoder.conv_features(next_pixels),
                                             batch["terminated"].repeat(targets), alpha, self.generator,
                                             target_next_obs=self.encoder_target(next_pixels))
                target = target.view(targets, size).mean(0)
            conv = self.encoder.conv_features(self.shifted(batch["obs"], copies))
            features = self.encoder.head(conv)
            q = self.critic(features, batch["action"].repeat(copies, 1))
        critic_loss = self.critic_loss(q, target.repeat(copies))
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()
        if self.updates % config.actor_update_every == 0:
            # the actor on the conv features, through its own head; the critics judge on their features
            self._actor_losses = self.actor_step(conv[:size].detach(), features[:size].detach(), alpha)
        return {"critic_loss": critic_loss.detach(), "q_value": q.detach().mean(), "alpha": alpha,
                **self._actor_losses}

    @torch.no_grad()
    def act_on_stack(self, stacks: torch.Tensor, deterministic: bool) -> torch.Tensor:
        with self.precision():
            return self.act(self.encoder.conv_features(stack_pixels(stacks)), deterministic)

    def modules(self) -> dict[str, Any]:
        return {**super().modules(), "encoder": self.encoder, "encoder_target": self.encoder_target}

    def state_dict(self) -> dict[str, Any]:  # the last actor losses too: metrics rows resume exactly
        return {**super().state_dict(), "actor_losses": {k: v.cpu() for k, v in self._actor_losses.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._actor_losses = {k: v.to(self.device) for k, v in state["actor_losses"].items()}


class DrQ(Agent):
    agent_id = "drq"
    config_class = DrQConfig
    metric_names = SAC.metric_names
    # each env's frames go to a stream of their own, so a stack never mixes two envs' episodes
    loop_class: ClassVar[type] = StreamLoop

    def __init__(self, env, config=None, seed: int = 0, env_kwargs: dict | None = None, num_envs: int = 1):
        super().__init__(env, config, seed, env_kwargs, num_envs)
        config = self.config
        self.device = resolve_device(config.device)
        self.generator = torch_stream(self.seed, "policy", self.device)  # the policy's, shifts' and update's
        action_dim = self.env.action_space.shape[0]
        self.scale = ActionScale(self.env.action_space)
        with seeded_weights(self.seed):
            self.learner = DrQLearner(config.frame_stack, action_dim, config, self.device, self.generator)
        # buffer_size steps in all, split evenly between the envs' streams
        capacity = max(config.frame_stack + 1, config.buffer_size // self.num_envs)
        self.streams = EpisodeStreams(self.num_envs, capacity, self.env.observation_space.shape, action_dim,
                                      np.uint8)
        self._losses: dict[str, torch.Tensor] = {}

    def check_env(self, env: gym.Env) -> None:
        if observation_kind(env.observation_space) != "image":
            raise IncompatibleEnvError(f"drq learns from 64 x 64 RGB frames; {self.env_id} has vector "
                                       "observations (use sac, or the env's pixels: pixels/<id>, "
                                       "dmc/<task>-pixels-v0)")
        check_box_actions(self.agent_id, self.env_id, env)

    def act(self, obs, deterministic: bool = False):
        raise TypeError("drq acts on a stack of the last frames: use policy(obs, state, info), starting from "
                        "initial_state()")

    @torch.no_grad()
    def policy(self, obs, state: np.ndarray | None, info: dict, deterministic: bool = False):
        """The action for the stack of the last `frame_stack` frames, `obs` the newest (an episode's first
        repeated until it has that many); the stack is the state carried to the next step."""
        frame = np.asarray(obs, np.uint8)[None]
        stack = np.repeat(frame, self.config.frame_stack, 0) if state is None else np.concatenate([state[1:],
                                                                                                   frame])
        if not deterministic and self.env_steps < self.config.learning_starts:
            return self.rng.uniform(self.scale.low, self.scale.high).astype(self.scale.dtype), stack
        action = self.learner.act_on_stack(torch.as_tensor(stack, device=self.device)[None], deterministic)
        return self.scale.to_env(action[0].cpu().numpy()), stack

    def first_learning_step(self) -> tuple[int, str]:
        return max(1, self.config.learning_starts), f"learning_starts={self.config.learning_starts}"

    def on_reset(self, evaluation: bool) -> None:
        if not evaluation:
            self.streams.restart()

    def observe(self, obs, action, reward, next_obs, terminated, truncated, info=None) -> None:
        self.observe_stream(0, obs, action, reward, next_obs, terminated, truncated, info)

    def observe_stream(self, index: int, obs, action, reward, next_obs, terminated, truncated,
                       info=None) -> None:
        """A real transition of env `index`; then `updates_per_step` updates on replayed stacks."""
        config = self.config
        self.streams.add(index, obs, self.scale.to_unit(action), reward, next_obs, terminated, truncated)
        if self.env_steps < config.learning_starts or not self.streams.ready(2):
            return
        for _ in range(config.updates_per_step):
            batch = self.streams.sample(config.batch_size, 2, self.rng,
                                        lambda buffer, count: buffer.sample_stacked(count, config.frame_stack,
                                                                                    self.rng))
            self._losses = self.learner.update({key: torch.as_tensor(value, device=self.device)
                                                for key, value in batch.items()})

    def metrics(self) -> dict[str, float]:
        row = {name: float(value) for name, value in self._losses.items()}
        row["updates"] = self.learner.updates
        return row

    def check_finite(self) -> bool:
        return self.learner.parameters_finite()

    def state_dict(self) -> dict[str, Any]:
        return {"learner": self.learner.state_dict(), **self.streams.state_dict(),
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.learner.load_state_dict(state["learner"])
        self.streams.load_state_dict(state)
        restore_generator(self.generator, state["generator"])
