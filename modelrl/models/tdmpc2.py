"""TD-MPC2's implicit world model (Hansen, Su and Wang 2024, "TD-MPC2: Scalable, Robust World Models for
Continuous Control").

No decoder: an encoder maps observations to a latent, and everything else is learned in that latent from
what planning needs (the next latent, the reward, the value, a policy). Every latent passes through SimNorm,
softmaxes over groups of `simnorm_dim` features, which keeps it on a product of simplices: bounded, and
sparse enough that long imagined rollouts do not drift. Hidden layers are linear, LayerNorm, Mish; reward and
Q heads regress two-hot targets over bins in symlog space ("discrete regression in log space"), their output
layers starting at zero; the Q ensemble drops out 1% of its first layer's units while training.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from modelrl.models.distributions import TwoHot
from modelrl.models.ensemble import EnsembleLayerNorm, EnsembleLinear
from modelrl.models.mlp import require_network_memory


@dataclass(frozen=True)
class TDMPC2Size:
    enc_dim: int  # units of the encoder's hidden layers
    mlp_dim: int  # units of the dynamics', reward's, policy's and Qs' hidden layers
    latent_dim: int
    num_enc_layers: int  # encoder layers, its output layer included
    num_q: int  # Q functions in the ensemble


# The paper's model sizes (its appendix; millions of parameters, with its multitask embedding), and a tiny
# one for tests.
SIZES = {
    "tiny": TDMPC2Size(enc_dim=64, mlp_dim=64, latent_dim=32, num_enc_layers=2, num_q=2),
    "1m": TDMPC2Size(enc_dim=256, mlp_dim=384, latent_dim=128, num_enc_layers=2, num_q=2),
    "5m": TDMPC2Size(enc_dim=256, mlp_dim=512, latent_dim=512, num_enc_layers=2, num_q=5),
    "19m": TDMPC2Size(enc_dim=1024, mlp_dim=1024, latent_dim=768, num_enc_layers=3, num_q=5),
    "48m": TDMPC2Size(enc_dim=1792, mlp_dim=1792, latent_dim=768, num_enc_layers=4, num_q=5),
    "317m": TDMPC2Size(enc_dim=4096, mlp_dim=4096, latent_dim=1376, num_enc_layers=5, num_q=8),
}
INIT_STD = 0.02  # truncated normal std of every weight (the paper's initialisation)


class SimNorm(nn.Module):
    """Softmax over consecutive groups of `group` features."""

    def __init__(self, group: int):
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Written out: torch's softmax over a last axis of 8 runs row by row on the CPU, 6x slower than this.
        groups = x.unflatten(-1, (-1, self.group))
        exp = (groups - groups.amax(-1, keepdim=True).detach()).exp()
        return (exp / exp.sum(-1, keepdim=True)).view(x.shape)


class _Mish(torch.autograd.Function):
    """mish(x) = x tanh(softplus(x)) = x n / (n + 2) with n = e^x (e^x + 2), so n + 2 = (e^x + 1)^2 + 1: exp
    and arithmetic only, mostly in place. torch's CPU kernel goes through log1p and tanh, and took about 3x
    as long (forward and backward). Where a gradient is wanted, the forward pass also keeps the slope, so the
    backward is one product."""

    @staticmethod
    def forward(ctx, x):
        if not ctx.needs_input_grad[0]:  # planning: an overflow to inf is harmless here (x - 2x / inf = x)
            return torch.addcdiv(x, x, x.exp().add_(1).square_().add_(1), value=-2.0)
        exp = x.clamp(max=20.0).exp()  # past 20, n / (n + 2) is 1 in float32
        exp_plus_1 = exp.add(1)
        inverse = exp_plus_1.square().add_(1).reciprocal_()  # 1 / (n + 2)
        tanh_softplus = inverse.mul(-2).add_(1)  # n / (n + 2)
        # d mish / dx = n / (n + 2) + 4 x e^x (e^x + 1) / (n + 2)^2
        ctx.save_for_backward(torch.addcmul(tanh_softplus, x, exp.mul_(exp_plus_1).mul_(inverse.square_()),
                                            value=4.0))
        return x * tanh_softplus

    @staticmethod
    def backward(ctx, grad):
        (slope,) = ctx.saved_tensors
        return grad * slope


class Mish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Mish.apply(x)


def mish(x: torch.Tensor) -> torch.Tensor:
    return _Mish.apply(x)


def _linear(in_dim: int, out_dim: int, zero: bool = False) -> nn.Linear:
    layer = nn.Linear(in_dim, out_dim)
    with torch.no_grad():
        if zero:
            layer.weight.zero_()
        else:
            nn.init.trunc_normal_(layer.weight, std=INIT_STD, a=-2 * INIT_STD, b=2 * INIT_STD)
        layer.bias.zero_()
    return layer


class NormedMLP(nn.Sequential):
    """nn.Sequential with its forward written here: torch.compile does not trace a frame inside torch itself,
    so compiling a plain Sequential compiled only our own layers in it (Mish, SimNorm), each on its own."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = layer(x)
        return x


def normed_mlp(in_dim: int, hidden: list[int], out_dim: int, output: nn.Module | None = None,
               zero_output: bool = False) -> NormedMLP:
    """Hidden layers of linear, LayerNorm, Mish; the output layer linear, or linear, LayerNorm and `output`
    (SimNorm for latents)."""
    sizes = [in_dim, *hidden]
    require_network_memory([*sizes, out_dim], 1, max(hidden, default=out_dim))
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [_linear(a, b), nn.LayerNorm(b), Mish()]
    layers.append(_linear(sizes[-1], out_dim, zero_output))
    if output is not None:
        layers += [nn.LayerNorm(out_dim), output]
    return NormedMLP(*layers)


class QTrunk(nn.Module):
    """The Q ensemble after its first layer: LayerNorm and Mish, a hidden layer, the two-hot logits."""

    def __init__(self, num_q: int, units: int, bins: int):
        super().__init__()
        self.norms = nn.ModuleList([EnsembleLayerNorm(num_q, units), EnsembleLayerNorm(num_q, units)])
        self.hidden, self.output = EnsembleLinear(num_q, units, units), EnsembleLinear(num_q, units, bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = mish(self.norms[1](self.hidden(mish(self.norms[0](x)))))
        return self.output(x)


class QEnsemble(nn.Module):
    """`num_q` Q functions as one network, `(..., latent + action) -> (num_q, ..., bins)` logits; each
    member's first hidden layer drops units out (`dropout`) when `training` is asked for."""

    def __init__(self, num_q: int, in_dim: int, units: int, bins: int, dropout: float):
        super().__init__()
        require_network_memory([in_dim, units, units, bins], num_q, units)
        self.num_q, self.dropout = num_q, dropout
        self.first = EnsembleLinear(num_q, in_dim, units)
        self.trunk = QTrunk(num_q, units, bins)
        with torch.no_grad():
            for layer in (self.first, self.trunk.hidden):
                nn.init.trunc_normal_(layer.weight, std=INIT_STD, a=-2 * INIT_STD, b=2 * INIT_STD)
            self.trunk.output.weight.zero_()

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None,
                training: bool = False) -> torch.Tensor:
        batch_shape = x.shape[:-1]
        x = self.first(x.reshape(1, -1, x.shape[-1]).expand(self.num_q, -1, -1))
        if training and self.dropout > 0:
            keep = torch.rand(x.shape, generator=generator, device=x.device) >= self.dropout
            x = x * keep / (1 - self.dropout)
        return self.trunk(x).view(self.num_q, *batch_shape, -1)


class TDMPC2Model(nn.Module):
    """Encoder, latent dynamics, reward, Q ensemble (with its Polyak-averaged target) and policy prior.
    Actions are in [-1, 1]."""

    def __init__(self, obs_dim: int, action_dim: int, size: TDMPC2Size, *, simnorm_dim: int = 8,
                 bins: int = 101, vmin: float = -10.0, vmax: float = 10.0, dropout: float = 0.01,
                 log_std_min: float = -10.0, log_std_max: float = 2.0):
        super().__init__()
        if size.latent_dim % simnorm_dim:
            raise ValueError(f"latent_dim ({size.latent_dim}) must be a multiple of simnorm_dim "
                             f"({simnorm_dim})")
        latent, units = size.latent_dim, size.mlp_dim
        self.size, self.action_dim = size, action_dim
        self.log_std_min, self.log_std_max = log_std_min, log_std_max
        self.encoder = normed_mlp(obs_dim, [size.enc_dim] * max(size.num_enc_layers - 1, 1), latent,
                                  SimNorm(simnorm_dim))
        self.dynamics = normed_mlp(latent + action_dim, [units, units], latent, SimNorm(simnorm_dim))
        self.reward_head = normed_mlp(latent + action_dim, [units, units], bins, zero_output=True)
        self.policy = normed_mlp(latent, [units, units], 2 * action_dim)
        self.qs = QEnsemble(size.num_q, latent + action_dim, units, bins, dropout)
        self.target_qs = copy.deepcopy(self.qs).requires_grad_(False)
        self.two_hot = TwoHot(bins, vmin, vmax)

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        return self.encoder(obs)

    def next(self, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.dynamics(torch.cat([z, action], -1))

    def reward_logits(self, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.reward_head(torch.cat([z, action], -1))

    def reward(self, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.two_hot.mean(self.reward_logits(z, action))

    def pi(self, z: torch.Tensor, generator: torch.Generator | None = None, noise: torch.Tensor | None = None
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The policy's mean action, a sampled action and that sample's log-probability (tanh-squashed
        Gaussian, its log-std squashed into [log_std_min, log_std_max]); `noise`, where given, is the
        standard normal draw (shaped as the action) instead of one from `generator`."""
        mean, raw_log_std = self.policy(z).chunk(2, -1)
        span = self.log_std_max - self.log_std_min
        log_std = self.log_std_min + 0.5 * span * (torch.tanh(raw_log_std) + 1)
        if noise is None:
            noise = torch.randn(mean.shape, generator=generator, device=mean.device)
        sample = mean + noise * log_std.exp()
        log_prob = (-0.5 * noise.pow(2) - log_std).sum(-1) - 0.5 * math.log(2 * math.pi) * self.action_dim
        action = torch.tanh(sample)
        log_prob = log_prob - torch.log(F.relu(1 - action.pow(2)) + 1e-6).sum(-1)
        return torch.tanh(mean), action, log_prob

    def q_logits(self, z: torch.Tensor, action: torch.Tensor, *, target: bool = False,
                 generator: torch.Generator | None = None, training: bool = False) -> torch.Tensor:
        """`(num_q, ..., bins)` logits of every Q function (the targets' with `target`)."""
        qs = self.target_qs if target else self.qs
        return qs(torch.cat([z, action], -1), generator, training)

    def q_pair(self, z: torch.Tensor, action: torch.Tensor, generator: torch.Generator | None,
               *, target: bool = False, pair: torch.Tensor | None = None) -> torch.Tensor:
        """Two Q functions drawn at random from the ensemble (or the members `pair`), as values `(2, ...)`:
        TD targets take their minimum, the policy and the planner their mean."""
        if pair is None:
            pair = self.random_pair(generator, z.device)
        return self.two_hot.mean(self.q_logits(z, action, target=target)[pair])

    def random_pair(self, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
        return torch.randperm(self.size.num_q, generator=generator, device=device)[:2]

    @torch.no_grad()
    def update_target(self, tau: float) -> None:
        torch._foreach_lerp_(list(self.target_qs.parameters()), list(self.qs.parameters()), tau)
