"""The learned terminal value of planners (`modelrl.planning.value`) and its use by PETS."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import modelrl
from modelrl.errors import ConfigError
from modelrl.planning.mpc import MPC
from modelrl.planning.trajectory import SimulatorObjective
from modelrl.planning.value import TerminalValue


def test_td_value_converges_to_the_known_value_of_a_chain():
    """A 5-state chain walked left to right, reward 1 on entering the last state, which ends the episode:
    V(s_i) = gamma^(3 - i) for i < 4 (the terminal state's value is never bootstrapped)."""
    gamma, states = 0.9, torch.eye(5)
    obs, next_obs = states[:4], states[1:]
    reward = torch.tensor([0.0, 0.0, 0.0, 1.0])
    terminated = torch.tensor([False, False, False, True])
    torch.manual_seed(0)
    value = TerminalValue(5, gamma=gamma, hidden_size=32, lr=3e-3, tau=0.05)
    batch = {"obs": obs, "reward": reward, "next_obs": next_obs, "terminated": terminated}
    for _ in range(1500):
        value.update(batch)
    expected = torch.tensor([gamma**3, gamma**2, gamma, 1.0])
    torch.testing.assert_close(value(obs), expected, atol=0.03, rtol=0)


def test_with_a_perfect_terminal_value_a_one_step_plan_is_optimal():
    """x' = x + a, no reward at all: only V(x) = -|x - 3| tells the planner where to go. Horizon 1."""
    objective = SimulatorObjective(lambda x, a: x + a, lambda x, a, nx: torch.zeros(len(x)), None, gamma=0.9,
                                   terminal_value=lambda x: -(x[:, 0] - 3.0).abs())
    space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    planner = MPC(space, 1, "cem", {"population": 100, "iterations": 5},
                  generator=torch.Generator().manual_seed(0))
    for x, best in ((-2.0, 1.0), (2.5, 0.5), (5.0, -1.0)):
        state = torch.tensor([x])
        action = planner.act(lambda actions, state=state: objective(state, actions))
        assert abs(float(action[0]) - best) < 0.1, (x, action)
        planner.reset()


def test_pets_learns_a_terminal_value_and_plans_with_it(tmp_path):
    small = {"population": 20, "iterations": 1, "horizon": 3, "particles": 2, "random_steps": 30,
             "model_hidden_size": 16, "model_max_epochs": 2, "train_every": 30, "gamma": 0.99,
             "terminal_value": True, "value_hidden_size": 16, "value_batch_size": 16}
    agent = modelrl.make_agent("pets", env="Pendulum-v1", seed=0, **small)
    assert agent.objective.terminal_value is agent.value
    history = agent.learn(60, eval_every=60, eval_episodes=1)
    assert agent.value.updates == 31 and np.isfinite(history[-1]["value_loss"])  # from the first fit on
    agent.save(tmp_path / "pets.pt")
    resumed = modelrl.load(tmp_path / "pets.pt")
    for a, b in zip(agent.value.net.parameters(), resumed.value.net.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ConfigError, match="terminal_value needs a discount below 1"):
        modelrl.make_agent("pets", env="Pendulum-v1", terminal_value=True)  # PETS's default gamma is 1
