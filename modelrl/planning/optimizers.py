"""Optimisers over action sequences, as pure batched functions.

Each takes an `objective` mapping a population of sequences `(N, H, ...)` to returns `(N,)`, a starting
`ActionSequence` distribution and a torch generator, and returns a `PlanResult`. Each samples Box actions as
its paper does (`GaussianSequence.sample`'s `bounds`):
- `random_shooting`: one population, keep the best sequence (PETS's truncated sampling).
- `cem`: cross-entropy method (Rubinstein 1999; PETS, Chua et al. 2018): truncated samples, refit mean and
  variance to the elites, smoothed by `alpha`.
- `mppi`: model predictive path integral control (Williams et al. 2017): noise at the full std, clipped to the
  bounds; the mean becomes the softmax(return / `temperature`)-weighted average of the population, unsmoothed.
  With `elites`, TD-MPC2's variant (Hansen et al. 2024): only the top `elites` are weighted, and the std is
  refitted to them too, within `[min_std, max_std]`.
- `icem`: improved CEM (Pinneri et al. 2020): coloured noise at the full std, clipped to the bounds; a
  population that shrinks each iteration, a share of elites kept across iterations and real steps, and the
  best sequence executed.

Each also takes a `prior`: sequences a policy proposes, which take their share of every iteration's
population in place of draws (TD-MPC2, LOOP).

Any non-finite return (NaN, or +-inf) counts as -inf: a diverging imagined rollout must never look best.
If no return is finite, every optimiser still returns a sequence inside the bounds: random shooting and
iCEM an arbitrary sample, CEM the refit to arbitrary samples (near its mean), MPPI the population's plain
average; `best_return` is then -inf.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from modelrl.planning.sequences import ActionSequence, GaussianSequence

Objective = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class PlanResult:
    actions: torch.Tensor  # the sequence to execute, (H, A) or (H,)
    distribution: ActionSequence  # the final search distribution (warm start for the next step)
    best_return: torch.Tensor  # scalar: the best return seen
    evaluations: int  # sequences evaluated
    elites: torch.Tensor | None = None  # iCEM: the final elites, kept for the next real step
    # MPPI: the last iteration's weighted sequences and their weights (TD-MPC2 draws its action from them)
    weighted: tuple[torch.Tensor, torch.Tensor] | None = None


def _draw(distribution: ActionSequence, population: int, generator, prior: torch.Tensor | None,
          **sample_kwargs) -> torch.Tensor:
    """A population of `population` sequences: the `prior`'s (a policy's proposals, clipped into the
    bounds) and as many draws from `distribution` as make up the rest (TD-MPC2 and LOOP seed CEM/MPPI so)."""
    if prior is None:
        return distribution.sample(population, generator, **sample_kwargs)
    if not 0 < len(prior) < population:
        raise ValueError(f"a prior of {len(prior)} sequences must leave room in a population of {population}")
    drawn = distribution.sample(population - len(prior), generator, **sample_kwargs)
    if prior.shape[1:] != drawn.shape[1:]:
        raise ValueError(f"prior sequences of shape {tuple(prior.shape[1:])} do not match the planner's "
                         f"{tuple(drawn.shape[1:])}")
    return torch.cat([drawn, distribution.inside(prior.to(drawn.device))])


def _returns(objective: Objective, samples: torch.Tensor) -> torch.Tensor:
    returns = objective(samples)
    return torch.where(returns.isfinite(), returns, -torch.inf)


class _Best:
    """The best sequence seen over all iterations, kept on the device (no host sync per iteration)."""

    def __init__(self):
        self.value, self.sequence = None, None

    def update(self, samples: torch.Tensor, returns: torch.Tensor) -> None:
        i = returns.argmax()
        value, sequence = returns[i], samples[i]
        if self.value is None:
            self.value, self.sequence = value, sequence
        else:
            better = value > self.value
            self.value = torch.where(better, value, self.value)
            self.sequence = torch.where(better, sequence, self.sequence)


def random_shooting(objective: Objective, distribution: ActionSequence,
                    generator: torch.Generator | None = None, *, population: int = 1000,
                    prior: torch.Tensor | None = None) -> PlanResult:
    samples = _draw(distribution, population, generator, prior, bounds="truncate")
    returns = _returns(objective, samples)
    best = returns.argmax()
    return PlanResult(samples[best], distribution, returns[best], population)


def cem(objective: Objective, distribution: ActionSequence, generator: torch.Generator | None = None, *,
        iterations: int = 5, population: int = 500, elite_ratio: float = 0.1, alpha: float = 0.1,
        return_mean: bool = True, prior: torch.Tensor | None = None) -> PlanResult:
    """PETS's CEM: sample, keep the top `elite_ratio`, refit mean and variance, keep `alpha` of the old ones.
    Executes the final mean (`return_mean`, as PETS and mbrl-lib do) or the best sequence seen."""
    n_elites = max(2, round(elite_ratio * population))
    best = _Best()
    for _ in range(iterations):
        samples = _draw(distribution, population, generator, prior, bounds="truncate")
        returns = _returns(objective, samples)
        best.update(samples, returns)
        elite_returns, index = returns.topk(n_elites)
        weights = torch.full_like(elite_returns, 1.0 / n_elites)
        distribution = distribution.refit(samples[index], weights, alpha)
    actions = distribution.mode() if return_mean else best.sequence
    return PlanResult(actions, distribution, best.value, iterations * population)


def mppi(objective: Objective, distribution: ActionSequence, generator: torch.Generator | None = None, *,
         iterations: int = 1, population: int = 500, temperature: float = 1.0, elites: int | None = None,
         min_std: float = 0.0, max_std: float = float("inf"),
         prior: torch.Tensor | None = None) -> PlanResult:
    """Update the mean to the softmax(return / temperature)-weighted average of the population, with no
    smoothing (Williams et al.'s update); the sampling std stays what the distribution started with (the
    MPPI noise level). With `elites`: only the best `elites` sequences are weighted and the std is refitted
    to them as well, clamped into `[min_std, max_std]` (TD-MPC2)."""
    best = _Best()
    weighted = None
    for _ in range(iterations):
        samples = _draw(distribution, population, generator, prior, bounds="clip")
        returns = _returns(objective, samples)
        best.update(samples, returns)
        if elites is not None:
            returns, index = returns.topk(min(elites, len(samples)))
            samples = samples[index]
        # No finite return: the softmax is NaN everywhere; weigh the population evenly instead.
        weights = torch.softmax(returns / temperature, 0).nan_to_num(1.0 / len(samples))
        distribution = distribution.refit(samples, weights, update_std=elites is not None)
        if elites is not None and isinstance(distribution, GaussianSequence):
            distribution = replace(distribution, std=distribution.std.clamp(min_std, max_std))
        weighted = (samples, weights)
    return PlanResult(distribution.mode(), distribution, best.value, iterations * population,
                      weighted=weighted)


def icem(objective: Objective, distribution: ActionSequence, generator: torch.Generator | None = None, *,
         iterations: int = 3, population: int = 300, num_elites: int = 10, decay: float = 1.25,
         keep_elites: float = 0.3, noise_beta: float = 2.0, alpha: float = 0.1,
         carried_elites: torch.Tensor | None = None, prior: torch.Tensor | None = None) -> PlanResult:
    """iCEM (Pinneri et al. 2020, Algorithm 1). `carried_elites` are the previous real step's elites,
    already shifted by one step; a `keep_elites` share of them joins the first iteration, a share of
    each iteration's elites joins the next, and the last iteration also tries the mean itself."""
    best = _Best()
    elites, evaluations = carried_elites, 0
    n_keep = max(1, round(keep_elites * num_elites)) if keep_elites > 0 else 0
    for i in range(iterations):
        size = max(round(population * decay**-i), 2 * num_elites)
        samples = _draw(distribution, size, generator, prior, bounds="clip", noise_beta=noise_beta)
        extra = []
        if elites is not None and n_keep:
            extra.append(elites[:n_keep])
        if i == iterations - 1:
            extra.append(distribution.mode().unsqueeze(0))
        if extra:
            samples = torch.cat([samples, *extra])
        returns = _returns(objective, samples)
        evaluations += len(samples)
        best.update(samples, returns)
        elite_returns, index = returns.topk(min(num_elites, len(samples)))
        elites = samples[index]
        weights = torch.full_like(elite_returns, 1.0 / len(index))
        distribution = distribution.refit(elites, weights, alpha)
    return PlanResult(best.sequence, distribution, best.value, evaluations, elites)


OPTIMIZERS = {"random": random_shooting, "cem": cem, "mppi": mppi, "icem": icem}
