"""What Dreamer and PlaNet share: a world model with a recurrent latent state, learned from replayed
sequences at a train ratio, and a policy that carries the latent from step to step.

`LatentModelAgent` keeps the replay of steps, trains the `WorldModel` on `batch_size x batch_length` windows
(`train_ratio` replayed steps per env step, as DreamerV3 counts), and turns each observation into the
posterior latent its decision is made from; a concrete agent supplies `decide` (an actor, or a planner) and
`learn_behaviour` (what it does with the posteriors after each model step).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from modelrl.agents.base import Agent
from modelrl.agents.sac import ActionScale, check_box_actions
from modelrl.buffers import EpisodeStreams, SequenceBuffer
from modelrl.config import check_range
from modelrl.device import require_cpp_compiler, resolve_device, restore_generator
from modelrl.errors import ConfigError, IncompatibleEnvError
from modelrl.loop import StreamLoop
from modelrl.models.distributions import TwoHot
from modelrl.models.encoders import make_decoder, make_encoder, observation_kind
from modelrl.models.mlp import norm_mlp
from modelrl.models.rssm import LATENTS, RSSM
from modelrl.seeding import seeded_weights, torch_stream


@dataclass(frozen=True)
class ModelSize:
    deter: int  # GRU state
    hidden: int  # the RSSM's hidden layers
    latents: int  # stochastic latents (categoricals, or Gaussian dims)
    classes: int  # classes per categorical latent
    units: int  # MLP layers of encoder, decoder, heads, actor and critic
    depth: int  # conv channels of the first stage (images)
    blocks: int  # groups of the block-diagonal GRU


# DreamerV3's sizes (its configs.yaml: size1m ... size200m); `planet` is PlaNet's (Hafner et al. 2019:
# deterministic 200, stochastic 30, hidden 200, conv depth 32); `tiny` is ours, for tests and smoke runs.
SIZES = {
    "tiny": ModelSize(deter=64, hidden=32, latents=8, classes=8, units=64, depth=4, blocks=4),
    "planet": ModelSize(deter=200, hidden=200, latents=30, classes=1, units=200, depth=8, blocks=1),
    "size1m": ModelSize(deter=512, hidden=64, latents=32, classes=4, units=64, depth=4, blocks=8),
    "size12m": ModelSize(deter=2048, hidden=256, latents=32, classes=16, units=256, depth=16, blocks=8),
    "size25m": ModelSize(deter=3072, hidden=384, latents=32, classes=24, units=384, depth=24, blocks=8),
    "size50m": ModelSize(deter=4096, hidden=512, latents=32, classes=32, units=512, depth=32, blocks=8),
    "size100m": ModelSize(deter=6144, hidden=768, latents=32, classes=48, units=768, depth=48, blocks=8),
    "size200m": ModelSize(deter=8192, hidden=1024, latents=32, classes=64, units=1024, depth=64, blocks=8),
}


@dataclass
class LatentModelConfig:
    """The world model and its training; defaults: DreamerV3 (Hafner et al. 2023, its table of
    hyperparameters; sizes from its configs.yaml)."""

    size: str = "size1m"  # model size: tiny, planet, size1m, size12m, size25m, size50m, size100m, size200m
    latent: str = "categorical"  # categorical (DreamerV2/V3) or gaussian (PlaNet, Dreamer V1) latents
    deter: int | None = None  # GRU state size (None: the size's)
    latents: int | None = None  # stochastic latents (None: the size's)
    classes: int | None = None  # classes per categorical latent (None: the size's)
    units: int | None = None  # units of the MLP layers (None: the size's)
    depth: int | None = None  # conv channels of the first image stage (None: the size's)
    mlp_layers: int = 3  # layers of encoder and decoder MLPs (and actor and critic)
    head_layers: int = 1  # layers of the reward and continue heads
    # the reward head: "two-hot" (DreamerV3: a categorical over 255 bins in symlog space) or "gaussian"
    # (PlaNet, Dreamer V1: a unit-variance Gaussian, fitted by squared error)
    reward_head: str = "two-hot"
    batch_size: int = 16  # sequences per update
    batch_length: int = 64  # steps per sequence
    train_ratio: float = 512.0  # replayed steps per env step (V3 used 512 on DMC)
    learning_starts: int = 1024  # uniform random actions, and no updates, before this many env steps
    buffer_size: int = 300_000  # real steps kept for replay
    model_lr: float = 1e-4  # Adam learning rate of the world model
    model_grad_clip: float = 1000.0  # gradient norm clip of the world model
    kl_free: float = 1.0  # free nats: KL terms below this are not pushed down
    kl_dynamics: float = 0.5  # weight of KL(sg(posterior) || prior)
    kl_representation: float = 0.1  # weight of KL(posterior || sg(prior))
    unimix: float = 0.01  # uniform share mixed into categorical latents (and discrete policies)
    device: str = "auto"  # auto (CUDA when present), cpu, cuda or cuda:N
    # with num_envs > 1: step each env in a process of its own, so rendering frames runs beside learning
    # (their episodes in progress are not saved in checkpoints: a resumed run starts new ones)
    env_processes: bool = False
    # compile the prior's step (imagination and planning, no gradients) with torch.compile: measured 1.8x
    # faster at size1m on one CPU thread; the first update compiles (tens of seconds)
    compile: bool = False

    def validate(self) -> None:
        if self.size not in SIZES:
            raise ConfigError(f"size must be one of {', '.join(SIZES)}, got {self.size!r}")
        if self.reward_head not in ("two-hot", "gaussian"):
            raise ConfigError(f"reward_head must be 'two-hot' or 'gaussian', got {self.reward_head!r}")
        if self.latent not in LATENTS:
            raise ConfigError(f"latent must be one of {', '.join(LATENTS)}, got {self.latent!r}")
        for name in ("deter", "latents", "classes", "units", "depth"):
            if getattr(self, name) is not None:
                check_range(self, name, 1)
        for name in ("mlp_layers", "head_layers", "batch_size", "batch_length", "buffer_size"):
            check_range(self, name, 1)
        check_range(self, "learning_starts", 0)
        check_range(self, "train_ratio", 0, low_open=True)
        for name in ("model_lr", "model_grad_clip"):
            check_range(self, name, 0, low_open=True)
        for name in ("kl_free", "kl_dynamics", "kl_representation"):
            check_range(self, name, 0)
        check_range(self, "unimix", 0, 1)
        if self.buffer_size < self.batch_length:
            raise ConfigError(f"buffer_size ({self.buffer_size}) must hold a sequence of batch_length "
                              f"({self.batch_length}) steps")
        if self.model_size.deter % self.model_size.blocks:
            raise ConfigError(f"deter ({self.model_size.deter}) must be a multiple of the size's "
                              f"{self.model_size.blocks} GRU blocks")

    @property
    def model_size(self) -> ModelSize:
        """The size's widths, each replaced by its own key where that is set."""
        base = SIZES[self.size]
        return ModelSize(**{name: getattr(self, name, None) or value for name, value in vars(base).items()})


class WorldModel(nn.Module):
    """Encoder, RSSM, decoder, reward and continue heads, and their loss on a batch of sequences."""

    def __init__(self, obs_space: gym.Space, action_dim: int, config: LatentModelConfig):
        super().__init__()
        size = config.model_size
        self.kind = observation_kind(obs_space)
        self.encoder = make_encoder(self.kind, obs_space.shape, size.units, config.mlp_layers, size.depth)
        self.rssm = RSSM(action_dim, self.encoder.output_size, deter=size.deter, hidden=size.hidden,
                         stoch=size.latents, classes=size.classes, latent=config.latent, blocks=size.blocks,
                         unimix=config.unimix)
        features = self.rssm.feature_size
        self.decoder = make_decoder(self.kind, obs_space.shape, features, size.units, config.mlp_layers,
                                    size.depth)
        self.two_hot = TwoHot() if config.reward_head == "two-hot" else None
        self.reward_head = norm_mlp(features, self.two_hot.bins if self.two_hot else 1, size.units,
                                    config.head_layers, 0.0)
        self.continue_head = norm_mlp(features, 1, size.units, config.head_layers)
        self.config = config

    def reward(self, features: torch.Tensor) -> torch.Tensor:
        out = self.reward_head(features)
        return out.squeeze(-1) if self.two_hot is None else self.two_hot.mean(out)

    def continues(self, features: torch.Tensor) -> torch.Tensor:
        """The probability that the episode goes on from each state."""
        return torch.sigmoid(self.continue_head(features).squeeze(-1))

    def loss(self, batch: dict[str, torch.Tensor], generator: torch.Generator):
        """The world model's loss on time-major sequences, the posteriors (for imagination) and metrics."""
        config = self.config
        embeds = self.encoder(batch["obs"])
        posteriors, priors = self.rssm.observe(embeds, batch["action"], batch["is_first"],
                                               generator=generator)
        features = self.rssm.features(posteriors)
        reconstruction = self.decoder.loss(features, batch["obs"])
        if self.two_hot is None:  # the Gaussian's negative log-likelihood, up to a constant
            reward = 0.5 * (self.reward_head(features).squeeze(-1) - batch["reward"]).square()
        else:
            reward = self.two_hot.loss(self.reward_head(features), batch["reward"])
        continues = F.binary_cross_entropy_with_logits(self.continue_head(features).squeeze(-1),
                                                       (~batch["is_terminal"]).float(), reduction="none")
        dynamics, representation = self.rssm.kl(posteriors, priors, config.kl_free)
        loss = (reconstruction + reward + continues + config.kl_dynamics * dynamics
                + config.kl_representation * representation).mean()
        metrics = {"model_loss": loss, "reconstruction_loss": reconstruction.mean(),
                   "reward_loss": reward.mean(), "continue_loss": continues.mean(), "kl": dynamics.mean()}
        return loss, posteriors, metrics


def compiled_without_gradients(function, compiled):
    """`compiled` where no gradient is taken (imagination, planning), `function` where one is (the world
    model's loss: compiling its 64 steps one by one gained 7%, for a minute of compiling)."""

    def call(*args, **kwargs):
        return (function if torch.is_grad_enabled() else compiled)(*args, **kwargs)

    return call


class LatentModelAgent(Agent):
    # each env's steps go to a replay of their own, so windows never mix two envs' episodes
    loop_class: ClassVar[type] = StreamLoop
    model_metric_names: ClassVar[tuple[str, ...]] = ("model_loss", "reconstruction_loss", "reward_loss",
                                                     "continue_loss", "kl", "updates")

    def __init__(self, env, config=None, seed: int = 0, env_kwargs: dict | None = None, num_envs: int = 1):
        super().__init__(env, config, seed, env_kwargs, num_envs)
        config = self.config
        self.device = resolve_device(config.device)
        space = self.env.action_space
        self.discrete = isinstance(space, gym.spaces.Discrete)
        self.action_dim = int(space.n) if self.discrete else space.shape[0]
        self.scale = None if self.discrete else ActionScale(space)
        with seeded_weights(self.seed, "world model"):
            self.model = WorldModel(self.env.observation_space, self.action_dim, config).to(self.device)
        self.model_optimizer = torch.optim.Adam(self.model.parameters(), config.model_lr, eps=1e-8)
        if config.compile:
            if self.device.type == "cpu":
                require_cpp_compiler()
            step = self.model.rssm.imagine_step
            # imagination compiled with or without gradients (Dreamer backpropagates its returns through it:
            # 1.2x its whole update at size1m on one thread), the world model's observing eager
            self.imagine_step = torch.compile(step, dynamic=False)
            self.model.rssm.imagine_step = compiled_without_gradients(step, self.imagine_step)
        else:
            self.imagine_step = self.model.rssm.imagine_step
        # buffer_size steps in all, split evenly between the envs' streams
        capacity = max(config.batch_length, config.buffer_size // self.num_envs)
        obs_dtype = np.uint8 if self.model.kind == "image" else np.float32
        self.streams = EpisodeStreams(self.num_envs, capacity, self.env.observation_space.shape,
                                      self.action_dim, obs_dtype)
        self.generator = torch_stream(self.seed, "policy", self.device)  # acting's latents and actions
        self.train_generator = torch_stream(self.seed, "training", self.device)  # updates' samples
        self.update_credit = 0.0  # updates owed by the train ratio, carried between steps
        self.updates = 0
        self._metrics: dict[str, torch.Tensor] = {}

    @property
    def buffers(self) -> list[SequenceBuffer]:
        return self.streams.buffers

    def check_env(self, env: gym.Env) -> None:
        observation_kind(env.observation_space)  # raises on anything but a vector or a 64 x 64 image
        if not isinstance(env.action_space, gym.spaces.Discrete):
            try:
                check_box_actions(self.agent_id, self.env_id, env)
            except IncompatibleEnvError:
                raise IncompatibleEnvError(f"{self.agent_id} needs Discrete or bounded 1-D Box actions; "
                                           f"{self.env_id} has {env.action_space}") from None

    # --- what a concrete agent supplies -------------------------------------------------------------
    @abstractmethod
    def decide(self, posterior: dict[str, torch.Tensor], deterministic: bool) -> torch.Tensor:
        """The model-space action `(1, A)` (unit box, or one-hot) at a posterior latent state."""

    @abstractmethod
    def learn_behaviour(self, batch: dict[str, torch.Tensor], posteriors: dict[str, torch.Tensor]) -> dict:
        """After each world-model step: learn from its posteriors of `batch`; the metrics to report."""

    # --- acting -------------------------------------------------------------------------------------
    def initial_state(self) -> None:
        return None  # the first step starts from the RSSM's initial state

    def act(self, obs, deterministic: bool = False):
        raise TypeError(f"{self.agent_id} keeps a latent state between steps: use policy(obs, state, info), "
                        "starting from initial_state()")

    @torch.no_grad()
    def policy(self, obs, state: dict | None, info: dict, deterministic: bool = False):
        if not deterministic and self.env_steps < self.config.learning_starts:
            action = (self.rng.integers(self.action_dim) if self.discrete
                      else self.rng.uniform(-1, 1, self.action_dim))
            return self._to_env(np.asarray(action)), None
        rssm = self.model.rssm
        first = state is None
        if first:
            state = {**rssm.initial(1, self.device),
                     "action": torch.zeros(1, self.action_dim, device=self.device)}
        obs_t = torch.as_tensor(np.array(obs), device=self.device)[None]  # a copy: frames may be read-only
        is_first = torch.tensor([first], device=self.device)
        generator = None if deterministic else self.generator
        posterior, _ = rssm.step({"deter": state["deter"], "stoch": state["stoch"]}, state["action"],
                                 self.model.encoder(obs_t), is_first, generator, sample=not deterministic)
        action = self.decide(posterior, deterministic)
        next_state = {"deter": posterior["deter"], "stoch": posterior["stoch"], "action": action}
        return self._to_env(action[0].cpu().numpy()), next_state

    def _to_env(self, action: np.ndarray):
        """A discrete index (or one-hot) as an int, or a unit-box action scaled to the env's bounds."""
        if self.discrete:
            return int(action.argmax()) if action.ndim else int(action)
        return self.scale.to_env(action.astype(np.float32))

    def model_action(self, action) -> np.ndarray:
        """An env action as the model reads it: one-hot, or in the unit box."""
        if self.discrete:
            return np.eye(self.action_dim, dtype=np.float32)[int(action)]
        return self.scale.to_unit(action)

    # --- learning -----------------------------------------------------------------------------------
    def on_reset(self, evaluation: bool) -> None:
        if not evaluation:
            self.streams.restart()

    def first_learning_step(self) -> tuple[int, str]:
        return max(1, self.config.learning_starts), f"learning_starts={self.config.learning_starts}"

    def observe(self, obs, action, reward, next_obs, terminated, truncated, info=None) -> None:
        self.observe_stream(0, obs, action, reward, next_obs, terminated, truncated, info)

    def observe_stream(self, index: int, obs, action, reward, next_obs, terminated, truncated,
                       info=None) -> None:
        """A real transition of env `index` (the loop's `StreamLoop` says which); updates as the train
        ratio owes them, counted over every env's steps."""
        self.streams.add(index, obs, self.model_action(action), reward, next_obs, terminated, truncated)
        config = self.config
        if self.env_steps < config.learning_starts or not self.streams.ready(config.batch_length):
            return
        self.update_credit += config.train_ratio / (config.batch_size * config.batch_length)
        while self.update_credit >= 1:
            self.update_credit -= 1
            self.update()

    def sample_batch(self) -> dict[str, torch.Tensor]:
        """A replayed batch, time-major: `(batch_length, batch_size, ...)` per field; with several envs,
        each window's stream drawn in proportion to the steps it holds."""
        config = self.config
        batch = self.streams.sample(config.batch_size, config.batch_length, self.rng,
                                    lambda buffer, count: buffer.sample_sequences(count, config.batch_length,
                                                                                  self.rng))
        return {key: torch.as_tensor(value, device=self.device).transpose(0, 1)
                for key, value in batch.items()}

    def update(self) -> None:
        """One world-model step on a replayed batch, then the agent's own learning from its posteriors."""
        batch = self.sample_batch()
        model_loss, posteriors, metrics = self.model.loss(batch, self.train_generator)
        self.gradient_step(self.model_optimizer, model_loss, self.model, self.config.model_grad_clip)
        metrics.update(self.learn_behaviour(batch, posteriors))
        self.updates += 1
        self._metrics = {key: value.detach() for key, value in metrics.items()}

    @staticmethod
    def gradient_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, module: nn.Module,
                      clip: float) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(module.parameters(), clip)
        optimizer.step()

    # --- reporting and checkpoints ------------------------------------------------------------------
    def metrics(self) -> dict[str, float]:
        row = {name: float(value) for name, value in self._metrics.items()}
        row["updates"] = self.updates
        return row

    def learned_modules(self) -> dict[str, nn.Module]:
        return {"model": self.model}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"model": self.model_optimizer}

    def check_finite(self) -> bool:
        return all(torch.isfinite(p).all() for module in self.learned_modules().values()
                   for p in module.parameters())

    def state_dict(self) -> dict[str, Any]:
        return {"modules": {name: module.state_dict() for name, module in self.learned_modules().items()},
                "optimizers": {name: opt.state_dict() for name, opt in self.optimizers().items()},
                **self.streams.state_dict(), "generator": self.generator.get_state(),
                "train_generator": self.train_generator.get_state(), "update_credit": self.update_credit,
                "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, module in self.learned_modules().items():
            module.load_state_dict(state["modules"][name])
        for name, optimizer in self.optimizers().items():
            optimizer.load_state_dict(state["optimizers"][name])
        self.streams.load_state_dict(state)
        restore_generator(self.generator, state["generator"])
        restore_generator(self.train_generator, state["train_generator"])
        self.update_credit, self.updates = state["update_credit"], state["updates"]
