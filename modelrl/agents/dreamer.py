"""`dreamer`: DreamerV3 (Hafner et al. 2023, "Mastering Diverse Domains through World Models").

A recurrent state-space model (`modelrl.models.rssm`) learns from sequences of real steps to reconstruct
observations (vectors or 64 x 64 images), predict rewards and episode ends, and keep its prior close to its
posterior (KL balancing with free bits). An actor and a critic then learn entirely from trajectories the model
imagines from replayed states: the critic regresses TD(lambda) returns (two-hot in symlog space, regularised
towards a slow copy of itself); the actor maximises those returns divided by the return scale, plus an
entropy bonus, by backpropagating them through the model's dynamics for continuous actions and by REINFORCE
for discrete ones (`actor_gradient`), as V3's 2023 release does, whose optimiser settings these are.
`train_ratio` is V3's: replayed steps per real env step, so one update of a `batch_size x batch_length`
batch comes every `batch_size * batch_length / train_ratio` env steps.

The policy keeps the latent state between steps (`policy`/`initial_state`), and a checkpoint holds it, so a
resumed run acts as the uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from modelrl.agents.latent import LatentModelAgent, LatentModelConfig
from modelrl.config import check_range
from modelrl.errors import ConfigError
from modelrl.models.distributions import BoundedNormal, OneHotCategorical, TwoHot
from modelrl.models.mlp import frozen, norm_mlp
from modelrl.models.rssm import detach, flatten
from modelrl.returns import ReturnScale, lambda_returns
from modelrl.seeding import seeded_weights


@dataclass
class DreamerConfig(LatentModelConfig):
    """Defaults: DreamerV3 (Hafner et al. 2023, its table of hyperparameters); the world model's are
    `LatentModelConfig`'s."""

    actor_lr: float = 3e-5  # Adam learning rate of the actor
    critic_lr: float = 3e-5  # Adam learning rate of the critic
    actor_critic_grad_clip: float = 100.0  # gradient norm clip of actor and critic
    horizon: int = 15  # imagined steps
    gamma: float = 0.997  # discount (V3: 1 - 1/333)
    lam: float = 0.95  # TD(lambda) of the imagined returns
    entropy: float = 3e-4  # actor entropy bonus
    slow_critic_rate: float = 0.02  # EMA rate of the slow critic
    slow_critic_reg: float = 1.0  # weight of the critic's pull towards the slow critic
    return_norm_rate: float = 0.01  # EMA rate of the return range
    return_norm_limit: float = 1.0  # advantages are divided by max(this, return range)
    # "dynamics": backpropagate the returns through the imagined trajectory; "reinforce": score-function
    # gradient; "auto": dynamics for continuous actions, reinforce for discrete (V3's 2023 release)
    actor_gradient: str = "auto"
    actor_output_scale: float = 1.0  # initial scale of the actor's output weights (V3 2023: 1; newest: 0.01)

    def validate(self) -> None:
        super().validate()
        check_range(self, "horizon", 1)
        for name in ("actor_lr", "critic_lr", "actor_critic_grad_clip", "return_norm_limit"):
            check_range(self, name, 0, low_open=True)
        for name in ("entropy", "slow_critic_reg"):
            check_range(self, name, 0)
        for name in ("gamma", "lam", "slow_critic_rate", "return_norm_rate"):
            check_range(self, name, 0, 1)
        check_range(self, "actor_output_scale", 0, low_open=True)
        if self.actor_gradient not in ("auto", "dynamics", "reinforce"):
            raise ConfigError(f"actor_gradient must be 'auto', 'dynamics' or 'reinforce', "
                              f"got {self.actor_gradient!r}")


class Actor(nn.Module):
    def __init__(self, features: int, action_dim: int, discrete: bool, units: int, layers: int,
                 unimix: float, output_scale: float):
        super().__init__()
        self.discrete, self.unimix = discrete, unimix
        self.net = norm_mlp(features, action_dim if discrete else 2 * action_dim, units, layers, output_scale)

    def forward(self, features: torch.Tensor) -> BoundedNormal | OneHotCategorical:
        out = self.net(features)
        return OneHotCategorical(out, self.unimix) if self.discrete else BoundedNormal(out)


class Critic(nn.Module):
    def __init__(self, features: int, units: int, layers: int, two_hot: TwoHot):
        super().__init__()
        self.net = norm_mlp(features, two_hot.bins, units, layers, 0.0)
        self.two_hot = two_hot

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)

    def value(self, features: torch.Tensor) -> torch.Tensor:
        return self.two_hot.mean(self.net(features))


class Dreamer(LatentModelAgent):
    agent_id = "dreamer"
    config_class = DreamerConfig
    metric_names = (*LatentModelAgent.model_metric_names, "actor_loss", "critic_loss", "entropy",
                    "imagined_return", "return_scale")

    def __init__(self, env, config=None, seed: int = 0, env_kwargs: dict | None = None, num_envs: int = 1):
        super().__init__(env, config, seed, env_kwargs, num_envs)
        config, size = self.config, self.config.model_size
        features = self.model.rssm.feature_size
        self.two_hot = TwoHot().to(self.device)  # the critic's, whatever the reward head
        with seeded_weights(self.seed, "actor critic"):
            self.actor = Actor(features, self.action_dim, self.discrete, size.units, config.mlp_layers,
                               config.unimix, config.actor_output_scale).to(self.device)
            self.critic = Critic(features, size.units, config.mlp_layers, self.two_hot).to(self.device)
        self.slow_critic = Critic(features, size.units, config.mlp_layers, self.two_hot).to(self.device)
        self.slow_critic.load_state_dict(self.critic.state_dict())
        self.slow_critic.requires_grad_(False)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), config.actor_lr, eps=1e-5)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), config.critic_lr, eps=1e-5)
        self.return_scale = ReturnScale(config.return_norm_rate, config.return_norm_limit)
        gradient = config.actor_gradient
        if gradient == "dynamics" and self.discrete:
            raise ConfigError("actor_gradient='dynamics' needs continuous actions: a discrete action has no "
                              "gradient to pass (use 'reinforce' or 'auto')")
        self.backprop_actor = gradient == "dynamics" or (gradient == "auto" and not self.discrete)

    def decide(self, posterior: dict[str, torch.Tensor], deterministic: bool) -> torch.Tensor:
        distribution = self.actor(self.model.rssm.features(posterior))
        action = distribution.mode() if deterministic else distribution.sample(self.generator)
        return action if self.discrete else action.clamp(-1, 1)

    def learn_behaviour(self, batch: dict[str, torch.Tensor], posteriors: dict[str, torch.Tensor]) -> dict:
        """One actor-critic step on trajectories imagined from every replayed state."""
        start = flatten(detach(posteriors))
        alive = (~batch["is_terminal"]).float().flatten()
        return self.actor_critic_update(start, alive)

    def imagine(self, start: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Features `(H + 1, N, F)` and actions `(H, N, A)` of the actor's trajectories in the model."""
        rssm, state = self.model.rssm, start
        features, actions = [rssm.features(start)], []
        for _ in range(self.config.horizon):
            action = self.actor(features[-1]).sample(self.train_generator)
            # clipped into the box the model was trained on (a sample beyond it passes no gradient back:
            # a straight-through clip did no better on the test suite's target task)
            model_action = action if self.discrete else action.clamp(-1, 1)
            state = self.imagine_step(state, model_action, self.train_generator)
            features.append(rssm.features(state))
            actions.append(action)
        return torch.stack(features), torch.stack(actions)

    def actor_critic_update(self, start: dict[str, torch.Tensor], alive: torch.Tensor) -> dict:
        config = self.config
        # Backpropagating the returns runs the imagination with gradients; the model (and the critic, for the
        # values) only pass them on, so their weights are kept out of the graph.
        with torch.set_grad_enabled(self.backprop_actor), frozen(self.model):
            features, actions = self.imagine(start)
            rewards = self.model.reward(features[1:])
            continues = self.model.continues(features[1:]).detach()
        if self.backprop_actor:
            with frozen(self.critic):
                values = self.critic.value(features)
            logits = self.critic(features[:-1].detach())
        else:  # one pass of the critic: its values bootstrap the returns, its first H are trained
            logits = self.critic(features)
            values, logits = self.two_hot.mean(logits.detach()), logits[:-1]
        returns = lambda_returns(rewards, values, config.gamma * continues, config.lam)
        with torch.no_grad():
            # the chance each state is still in the episode: its start's, then the predicted continues
            weights = torch.cumprod(torch.cat([alive[None], continues[:-1]]), 0)
            scale = self.return_scale.update(returns)
            # detached, though no_grad needs it not: a view of a graph's tensor made under no_grad keeps
            # requires_grad without a grad_fn, which torch's module hooks (FlopCounterMode's) refuse
            slow_values = self.slow_critic.value(features[:-1].detach())
        distribution = self.actor(features[:-1].detach())
        entropy = distribution.entropy()
        advantages = (returns - values[:-1].detach()) / scale
        objective = advantages if self.backprop_actor else distribution.log_prob(actions) * advantages
        actor_loss = -(weights * (objective + config.entropy * entropy)).mean()
        self.gradient_step(self.actor_optimizer, actor_loss, self.actor, config.actor_critic_grad_clip)
        returns = returns.detach()
        two_hot, log_probs = self.two_hot, logits.log_softmax(-1)
        critic_loss = -(weights * (two_hot.log_likelihood(log_probs, returns) + config.slow_critic_reg
                                   * two_hot.log_likelihood(log_probs, slow_values))).mean()
        self.gradient_step(self.critic_optimizer, critic_loss, self.critic, config.actor_critic_grad_clip)
        with torch.no_grad():
            for slow, online in zip(self.slow_critic.parameters(), self.critic.parameters(), strict=True):
                slow.lerp_(online, config.slow_critic_rate)
        return {"actor_loss": actor_loss, "critic_loss": critic_loss, "entropy": entropy.mean(),
                "imagined_return": returns[0].mean(), "return_scale": scale}

    # --- checkpoints --------------------------------------------------------------------------------
    def learned_modules(self) -> dict[str, nn.Module]:
        return {**super().learned_modules(), "actor": self.actor, "critic": self.critic,
                "slow_critic": self.slow_critic}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {**super().optimizers(), "actor": self.actor_optimizer, "critic": self.critic_optimizer}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "return_scale": self.return_scale.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.return_scale.load_state_dict(state["return_scale"], self.device)
