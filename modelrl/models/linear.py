"""Linear dynamics, s' - s = W [s, a] + b, fitted in closed form (ridge regression) per member.

A `DynamicsModel` with no hidden layers is exactly this model; `fit_linear` solves its least-squares
problem directly instead of by gradient steps. It is the baseline that shows what nonlinearity buys.
"""

from __future__ import annotations

import torch

from modelrl.models.dynamics import DynamicsModel, ModelSpec
from modelrl.models.training import Transitions, holdout_error


def linear_model(obs_dim: int, action_dim: int, *, ensemble_size: int = 1, discrete_actions: bool = False,
                 learn_reward: bool = False) -> DynamicsModel:
    return DynamicsModel(ModelSpec(obs_dim, action_dim, discrete_actions, ensemble_size, ensemble_size,
                                   num_layers=0, probabilistic=False, learn_reward=learn_reward))


@torch.no_grad()
def fit_linear(model: DynamicsModel, data: Transitions, *, generator: torch.Generator, ridge: float = 1e-3,
               bootstrap: bool = True) -> list[float]:
    """Set each member's weights to the ridge solution on its bootstrap sample; returns training MSE."""
    if model.spec.num_layers != 0 or model.spec.probabilistic or model.spec.learn_termination:
        raise ValueError("fit_linear needs a deterministic DynamicsModel without hidden layers or "
                         "termination")
    model.set_normalizer(data.obs, data.action, data.next_obs, data.reward)
    inputs = model.inputs(data.obs, data.action)
    targets = model.targets(data.obs, data.next_obs, data.reward)
    n, E = len(data), model.ensemble_size
    index = (torch.randint(n, (E, n), generator=generator, device=model.device) if bootstrap
             else torch.arange(n, device=model.device).expand(E, n))
    x = torch.cat([inputs[index], torch.ones(E, n, 1, device=model.device)], -1)  # (E, n, in + 1)
    gram = x.transpose(1, 2) @ x + ridge * n * torch.eye(x.shape[-1], device=model.device)
    solution = torch.linalg.solve(gram, x.transpose(1, 2) @ targets[index])  # (E, in + 1, out)
    layer = model.net.layers[0]
    layer.weight.copy_(solution[:, :-1])
    layer.bias.copy_(solution[:, -1:])
    return holdout_error(model, inputs, targets).tolist()
