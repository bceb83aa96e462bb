"""The learned terminal value of planners (`modelrl.planning.value`) and its use by PETS."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import modelrl
from modelrl.cli import main
from modelrl.diagnostics import Trajectory, value_check
from modelrl.errors import ConfigError, IncompatibleEnvError
from modelrl.experiment.runner import CHECKPOINT
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
    updates = agent.config.value_updates_per_step
    assert agent.value.updates == 31 * updates  # from the first fit on
    assert np.isfinite(history[-1]["value_loss"])
    agent.save(tmp_path / "pets.pt")
    resumed = modelrl.load(tmp_path / "pets.pt")
    for a, b in zip(agent.value.net.parameters(), resumed.value.net.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ConfigError, match="terminal_value needs a discount below 1"):
        modelrl.make_agent("pets", env="Pendulum-v1", terminal_value=True)  # PETS's default gamma is 1


def test_mpc_with_known_dynamics_learns_a_terminal_value_from_its_real_steps(tmp_path):
    agent = modelrl.make_agent("mpc", env="Pendulum-v1", seed=0, population=20, iterations=1, horizon=3,
                               gamma=0.99, terminal_value=True, value_hidden_size=16, value_batch_size=8)
    assert agent.objective.terminal_value is agent.value
    agent.learn(20)
    assert agent.value.updates == 20 * agent.config.value_updates_per_step and len(agent.buffer) == 20
    assert "value_loss" in agent.metrics()
    agent.save(tmp_path / "mpc.pt")
    resumed = modelrl.load(tmp_path / "mpc.pt")
    assert len(resumed.buffer) == 20 and resumed.value.updates == agent.value.updates
    assert modelrl.make_agent("mpc", env="Pendulum-v1").buffer is None  # no value, no replay


def test_the_critic_as_terminal_value_is_the_policy_priors_q_at_its_mean_action(tmp_path):
    """value_source="critic" (LOOP): V(s) = min of the SAC prior's twin Q(s, mode of pi(s)); the prior's
    updates are what train it, `prior_updates_per_step` of them a step, and a save/load keeps it."""
    agent = modelrl.make_agent("mpc", env="Pendulum-v1", seed=0, population=20, iterations=1, horizon=2,
                               gamma=0.99, terminal_value=True, value_source="critic", policy_prior=True,
                               prior_updates_per_step=3)
    assert agent.objective.terminal_value is agent.value
    states = torch.randn(7, 3)
    with torch.no_grad():
        expected = agent.prior.critic(states, agent.prior.actor.mode(states)).min(0).values
    torch.testing.assert_close(agent.value(states), expected)
    agent.prior.config.batch_size = 8  # so updates start within a few steps
    agent.learn(10)
    assert agent.prior.updates == 3 * 10
    assert not torch.equal(agent.value(states), expected)  # the critic learned, and the value with it
    assert "value_loss" not in agent.metrics()
    agent.save(tmp_path / "mpc.pt")
    resumed = modelrl.load(tmp_path / "mpc.pt")
    torch.testing.assert_close(resumed.value(states), agent.value(states), rtol=0, atol=0)
    with pytest.raises(ConfigError, match="value_source='critic'"):
        modelrl.make_agent("mpc", env="Pendulum-v1", gamma=0.99, terminal_value=True, value_source="critic")


@pytest.mark.parametrize("optimizer", ["random", "cem", "mppi", "icem"])
def test_a_policy_prior_takes_its_share_of_every_population_inside_the_bounds(optimizer):
    space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    kwargs = {"random": {"population": 50}, "cem": {"population": 50, "iterations": 3},
              "mppi": {"population": 50, "iterations": 2}, "icem": {"population": 50, "iterations": 2,
                                                                     "num_elites": 5}}[optimizer]
    planner = MPC(space, 4, optimizer, kwargs, generator=torch.Generator().manual_seed(0))
    prior = torch.full((8, 4, 2), 3.0)  # outside the bounds: clipped to 1
    prior[:, :, 1] = -0.5
    seen = []

    def objective(sequences):
        seen.append(sequences.clone())
        return -(sequences - torch.tensor([1.0, -0.5])).pow(2).sum((1, 2))  # the prior's (clipped) sequence

    result = planner.plan(objective, prior=prior)
    for population in seen:
        assert population.min() >= -1 and population.max() <= 1
        matches = (population == torch.tensor([1.0, -0.5])).all(-1).all(-1)
        assert matches.sum() >= 8  # every iteration holds the 8 proposals
    assert torch.allclose(result.best_return, torch.tensor(0.0))  # the best sequence is the prior's
    with pytest.raises(ValueError, match="must leave room"):
        MPC(space, 4, "random", {"population": 8}).plan(objective, prior=prior)


def _counting_episode(steps: int, terminated: bool) -> Trajectory:
    """obs = the step's index, reward 1 per step."""
    return Trajectory(np.arange(steps + 1, dtype=np.float32)[:, None], np.zeros((steps, 1), np.float32),
                      np.ones(steps), terminated)


def test_value_check_measures_an_estimate_against_the_return_that_followed():
    gamma, steps = 0.5, 20

    def exact(obs, actions):  # the true discounted return of a terminated 20-step episode from step t
        return (1 - gamma ** (steps - obs[:, 0])) / (1 - gamma)

    check = value_check(exact, [_counting_episode(steps, True)], horizon=2, gamma=gamma)
    assert check["states"] == 19 and abs(check["bias"]) < 1e-6 and check["rmse"] < 1e-6
    assert check["spearman"] == pytest.approx(1.0)
    optimistic = value_check(lambda obs, actions: exact(obs, actions) + 1, [_counting_episode(steps, True)],
                             horizon=2, gamma=gamma)
    assert optimistic["bias"] == pytest.approx(1.0) and optimistic["rmse"] == pytest.approx(1.0)
    # A time limit hides what came after: states within 7 steps of it (0.5^7 < 1%) are left out.
    truncated = value_check(exact, [_counting_episode(steps, False)], horizon=2, gamma=gamma)
    assert truncated["states"] == 14
    with pytest.raises(ValueError, match="no held-out state"):
        value_check(exact, [_counting_episode(5, False)], horizon=2, gamma=gamma)


@pytest.mark.parametrize("agent_id, config, steps", [
    ("pets", {"population": 20, "iterations": 1, "horizon": 3, "particles": 2, "random_steps": 30,
              "model_hidden_size": 16, "model_max_epochs": 2, "train_every": 30, "gamma": 0.9,
              "terminal_value": True, "value_hidden_size": 16, "value_batch_size": 16}, 40),
    ("td-mpc2", {"size": "tiny", "seed_steps": 30, "batch_size": 16, "num_samples": 16, "num_elites": 4,
                 "num_pi_trajs": 2, "iterations": 1, "gamma": 0.9}, 40),
])
def test_model_report_checks_a_planners_value(tmp_path, capsys, agent_id, config, steps):
    agent = modelrl.make_agent(agent_id, env="Pendulum-v1", seed=0, **config)
    agent.learn(steps)
    run_dir = tmp_path / "run"
    agent.save(run_dir / CHECKPOINT)
    assert main(["model-report", str(run_dir), "--episodes", "1", "--horizon", "3"]) == 0
    out = capsys.readouterr().out
    assert "value check: planned 3-step return + value (gamma 0.9) over 157 states" in out
    report = json.loads((run_dir / "model_report" / "report.json").read_text())
    assert report["value"]["states"] == 157 and (run_dir / "model_report" / "value.png").exists()
    assert bool(report["models"]) == (agent_id == "pets")  # td-mpc2's model is latent: the value alone


def test_a_learned_policy_prior_proposes_its_share_of_every_plan(tmp_path):
    small = {"population": 40, "iterations": 2, "horizon": 4, "particles": 2, "random_steps": 30,
             "model_hidden_size": 16, "model_max_epochs": 2, "train_every": 30, "gamma": 0.99,
             "policy_prior": True, "prior_share": 0.1}
    agent = modelrl.make_agent("pets", env="Pendulum-v1", seed=0, **small)
    proposals = []
    planner = agent.planners[False]
    plan = planner.plan

    def recording(objective, prior=None):
        proposals.append(prior)
        return plan(objective, prior)

    planner.plan = recording
    history = agent.learn(40, eval_every=40, eval_episodes=1)
    assert agent.prior.updates == 11 and np.isfinite(history[-1]["prior_actor_loss"])  # from the first fit on
    assert len(proposals) == 10 and all(p.shape == (4, 4, 1) for p in proposals)  # 10% of 40, 4 steps each
    assert all(p.abs().max() <= 2.0 for p in proposals)  # Pendulum's torque bounds
    agent.save(tmp_path / "pets.pt")
    resumed = modelrl.load(tmp_path / "pets.pt")
    for a, b in zip(agent.prior.actor.parameters(), resumed.prior.actor.parameters(), strict=True):
        assert torch.equal(a, b)
    known = modelrl.make_agent("mpc", env="Pendulum-v1", seed=0, population=20, iterations=1, horizon=3,
                               gamma=0.99, policy_prior=True)
    known.learn(5)
    assert known.prior.updates == 5 and len(known.buffer) == 5
    with pytest.raises(IncompatibleEnvError, match="Box actions"):
        modelrl.make_agent("mpc", env="CartPole-v1", policy_prior=True)
    with pytest.raises(ConfigError, match="no room"):
        modelrl.make_agent("mpc", env="Pendulum-v1", policy_prior=True, population=10, prior_share=0.99)
