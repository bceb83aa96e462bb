"""Returns of imagined trajectories: TD(lambda) targets and DreamerV3's return normalisation."""

from __future__ import annotations

import torch


def lambda_returns(rewards: torch.Tensor, values: torch.Tensor, discounts: torch.Tensor,
                   lam: float) -> torch.Tensor:
    """TD(lambda) returns of a trajectory of H steps, time-major.

    `rewards[t]`, `discounts[t]` (gamma times the probability the episode continues) come with the step
    from state t to t + 1; `values` has H + 1 entries, the last bootstrapping the horizon:
        R_t = r_t + d_t ((1 - lam) V_{t+1} + lam R_{t+1}),   R_H = V_H.
    """
    if not (len(rewards) == len(discounts) == len(values) - 1):
        raise ValueError(f"{len(rewards)} rewards and {len(discounts)} discounts need {len(rewards) + 1} "
                         f"values, got {len(values)}")
    returns = [values[-1]]
    for t in reversed(range(len(rewards))):
        returns.append(rewards[t] + discounts[t] * ((1 - lam) * values[t + 1] + lam * returns[-1]))
    return torch.stack(returns[:0:-1])


class ReturnScale:
    """DreamerV3's return normalisation: advantages are divided by max(limit, S), S an exponential moving
    average of the 5th-to-95th percentile range of the returns. Large returns are scaled down; small ones
    are not scaled up, so sparse rewards do not turn noise into signal."""

    def __init__(self, rate: float = 0.01, limit: float = 1.0, low: float = 0.05, high: float = 0.95):
        self.rate, self.limit, self.low, self.high = rate, limit, low, high
        self.range: torch.Tensor | None = None

    def update(self, returns: torch.Tensor) -> torch.Tensor:
        """Fold in a batch of returns; the scale to divide advantages by."""
        flat = returns.detach().float().flatten()
        spread = torch.quantile(flat, self.high) - torch.quantile(flat, self.low)
        self.range = spread if self.range is None else (1 - self.rate) * self.range + self.rate * spread
        return self.scale()

    def scale(self) -> torch.Tensor:
        if self.range is None:
            return torch.tensor(self.limit)
        return torch.clamp(self.range, min=self.limit)

    def state_dict(self) -> dict:
        return {"range": None if self.range is None else self.range.cpu()}

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        self.range = None if state["range"] is None else state["range"].to(device)
