"""The recurrent state-space model (RSSM) of PlaNet and Dreamer (Hafner et al. 2019, 2020, 2023).

The latent state has a deterministic part `deter`, a GRU's hidden state that carries memory, and a stochastic
part `stoch` drawn at each step: from the prior p(z_t | h_t) when imagining, from the posterior
q(z_t | h_t, e_t) when an observation's embedding e_t is at hand. Two kinds of stochastic latent:
- "gaussian" (PlaNet, Dreamer V1): `stoch` diagonal Gaussian dimensions;
- "categorical" (DreamerV2/V3): `stoch` categoricals of `classes` classes each, sampled one-hot with
  straight-through gradients and mixed with 1% uniform (`unimix`).
The GRU's weights are block-diagonal over `blocks` groups (DreamerV3), so a wide `deter` stays cheap.

States are dicts of tensors: `deter (B, D)`, `stoch (B, S)` flat, and the distribution's parameters
(`logits (B, latents, classes)`, or `mean`, `std`). Sequences are time-major, `(T, B, ...)`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from modelrl.models.distributions import categorical_kl, gaussian_kl, mixed_probs, straight_through_sample
from modelrl.models.mlp import dense

LATENTS = ("categorical", "gaussian")
State = dict[str, torch.Tensor]


class BlockLinear(nn.Module):
    """`blocks` independent linear maps, one per group of features: `(B, G, in) -> (B, G, out)`."""

    def __init__(self, blocks: int, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(blocks, in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(blocks, out_dim))
        nn.init.uniform_(self.weight, -in_dim**-0.5, in_dim**-0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bgi,gio->bgo", x, self.weight) + self.bias


class BlockGRU(nn.Module):
    """A GRU cell with block-diagonal recurrent weights and LayerNorm (DreamerV2/V3's variant): the update
    gate is biased towards keeping the old state (`sigmoid(u - 1)`), which helps memory over long spans."""

    def __init__(self, input_dim: int, deter: int, blocks: int):
        super().__init__()
        if deter % blocks:
            raise ValueError(f"deter ({deter}) must be a multiple of blocks ({blocks})")
        self.blocks, self.group = blocks, deter // blocks
        self.hidden = BlockLinear(blocks, self.group + input_dim, self.group)
        self.hidden_norm = nn.LayerNorm(self.group, eps=1e-3)
        self.gates = BlockLinear(blocks, self.group, 3 * self.group)
        self.gates_norm = nn.LayerNorm(3 * self.group, eps=1e-3)

    def forward(self, x: torch.Tensor, deter: torch.Tensor) -> torch.Tensor:
        batch = deter.shape[0]
        groups = deter.view(batch, self.blocks, self.group)
        inputs = torch.cat([groups, x[:, None].expand(batch, self.blocks, x.shape[-1])], -1)
        hidden = F.silu(self.hidden_norm(self.hidden(inputs)))
        reset, candidate, update = self.gates_norm(self.gates(hidden)).chunk(3, -1)
        candidate = torch.tanh(torch.sigmoid(reset) * candidate)
        update = torch.sigmoid(update - 1.0)
        return (update * candidate + (1 - update) * groups).reshape(batch, -1)


class RSSM(nn.Module):
    def __init__(self, action_dim: int, embed_dim: int, *, deter: int, hidden: int, stoch: int,
                 classes: int, latent: str = "categorical", blocks: int = 8, unimix: float = 0.01,
                 min_std: float = 0.1, prior_layers: int = 2):
        super().__init__()
        if latent not in LATENTS:
            raise ValueError(f"latent must be one of {LATENTS}, got {latent!r}")
        self.latent, self.deter_size, self.unimix, self.min_std = latent, deter, unimix, min_std
        self.latents, self.classes = stoch, classes
        self.stoch_size = stoch * classes if latent == "categorical" else stoch
        params = self.stoch_size if latent == "categorical" else 2 * stoch
        self.from_stoch, self.from_action, self.from_deter = (dense(self.stoch_size, hidden),
                                                              dense(action_dim, hidden), dense(deter, hidden))
        self.gru = BlockGRU(3 * hidden, deter, blocks)
        self.prior_net = nn.Sequential(dense(deter, hidden),
                                       *(dense(hidden, hidden) for _ in range(prior_layers - 1)),
                                       nn.Linear(hidden, params))
        self.posterior_net = nn.Sequential(dense(deter + embed_dim, hidden), nn.Linear(hidden, params))

    @property
    def feature_size(self) -> int:
        return self.deter_size + self.stoch_size

    def initial(self, batch: int, device: torch.device | str = "cpu") -> State:
        """The state before an episode's first step: zeros (its first posterior reads the observation)."""
        return {"deter": torch.zeros(batch, self.deter_size, device=device),
                "stoch": torch.zeros(batch, self.stoch_size, device=device)}

    def features(self, state: State) -> torch.Tensor:
        return torch.cat([state["deter"], state["stoch"]], -1)

    # --- one step -----------------------------------------------------------------------------------
    def _stats(self, params: torch.Tensor) -> State:
        if self.latent == "categorical":
            return {"logits": params.view(*params.shape[:-1], self.latents, self.classes)}
        mean, raw_std = params.chunk(2, -1)
        return {"mean": mean, "std": F.softplus(raw_std) + self.min_std}

    def _sample(self, stats: State, generator: torch.Generator | None) -> torch.Tensor:
        if self.latent == "categorical":
            sample = straight_through_sample(mixed_probs(stats["logits"], self.unimix), generator)
            return sample.flatten(-2)
        noise = torch.randn(stats["mean"].shape, device=stats["mean"].device, generator=generator)
        return stats["mean"] + stats["std"] * noise

    def mode(self, stats: State) -> torch.Tensor:
        """The most likely latent (PlaNet's and deterministic evaluation's choice)."""
        if self.latent == "categorical":
            logits = stats["logits"]
            return F.one_hot(logits.argmax(-1), self.classes).to(logits.dtype).flatten(-2)
        return stats["mean"]

    def imagine_step(self, state: State, action: torch.Tensor, generator: torch.Generator | None = None,
                     sample: bool = True) -> State:
        """The prior's next state after `action`: h_t = f(h_{t-1}, z_{t-1}, a_{t-1}), z_t ~ p(z_t | h_t)."""
        x = torch.cat([self.from_stoch(state["stoch"]), self.from_action(action),
                       self.from_deter(state["deter"])], -1)
        deter = self.gru(x, state["deter"])
        stats = self._stats(self.prior_net(deter))
        stoch = self._sample(stats, generator) if sample else self.mode(stats)
        return {"deter": deter, "stoch": stoch, **stats}

    def observe_step(self, prior: State, embed: torch.Tensor, generator: torch.Generator | None = None,
                     sample: bool = True) -> State:
        """The posterior at the prior's `deter` given an observation's embedding."""
        stats = self._stats(self.posterior_net(torch.cat([prior["deter"], embed], -1)))
        stoch = self._sample(stats, generator) if sample else self.mode(stats)
        return {"deter": prior["deter"], "stoch": stoch, **stats}

    def step(self, state: State, action: torch.Tensor, embed: torch.Tensor, is_first: torch.Tensor,
             generator: torch.Generator | None = None, sample: bool = True) -> tuple[State, State]:
        """(posterior, prior) after `action` and the observation it led to; where `is_first`, the previous
        state and action are replaced by the initial ones (a new episode)."""
        keep = (~is_first).to(action.dtype)[:, None]
        state = {"deter": state["deter"] * keep, "stoch": state["stoch"] * keep}  # the initial state is zeros
        prior = self.imagine_step(state, action * keep, generator, sample)
        return self.observe_step(prior, embed, generator, sample), prior

    # --- sequences ----------------------------------------------------------------------------------
    def observe(self, embeds: torch.Tensor, actions: torch.Tensor, is_first: torch.Tensor,
                state: State | None = None, generator: torch.Generator | None = None) -> tuple[State, State]:
        """Posteriors and priors `(T, B, ...)` along a sequence; `actions[t]` led to observation t."""
        state = self.initial(embeds.shape[1], embeds.device) if state is None else state
        posteriors, priors = [], []
        for t in range(len(embeds)):
            state, prior = self.step(state, actions[t], embeds[t], is_first[t], generator)
            posteriors.append(state)
            priors.append(prior)
        return stack(posteriors), stack(priors)

    def kl(self, posterior: State, prior: State, free: float) -> tuple[torch.Tensor, torch.Tensor]:
        """DreamerV3's KL balancing: the dynamics loss KL(sg(post) || prior) trains the prior towards the
        posterior, the representation loss KL(post || sg(prior)) keeps the posterior predictable; each is
        clipped below at `free` nats (free bits), so a KL already small is left alone."""
        if self.latent == "categorical":
            post, pri = (mixed_probs(s["logits"], self.unimix) for s in (posterior, prior))
            dynamics = categorical_kl(post.detach(), pri)
            representation = categorical_kl(post, pri.detach())
        else:
            post_d = (posterior["mean"].detach(), posterior["std"].detach())
            pri_d = (prior["mean"].detach(), prior["std"].detach())
            dynamics = gaussian_kl(*post_d, prior["mean"], prior["std"])
            representation = gaussian_kl(posterior["mean"], posterior["std"], *pri_d)
        return dynamics.clamp(min=free), representation.clamp(min=free)


def stack(states: list[State]) -> State:
    return {key: torch.stack([s[key] for s in states]) for key in states[0]}


def flatten(state: State) -> State:
    """`(T, B, ...)` -> `(T * B, ...)`: every state of a batch of sequences as a start for imagination."""
    return {key: value.reshape(-1, *value.shape[2:]) for key, value in state.items()}


def detach(state: State) -> State:
    return {key: value.detach() for key, value in state.items()}
