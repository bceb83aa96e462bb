"""TD-MPC2: its pieces (SimNorm, windows of real steps, TD-MPC2's MPPI), learning, checkpoints, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import modelrl
from modelrl.buffers import ReplayBuffer
from modelrl.errors import ConfigError, IncompatibleEnvError
from modelrl.models.tdmpc2 import SimNorm, mish
from modelrl.planning.optimizers import mppi
from modelrl.planning.sequences import GaussianSequence
from tests.test_learning import TargetReaching, held

# A small TD-MPC2 for the suite: the tiny size, a smaller planner and batch.
SMALL = {"size": "tiny", "seed_steps": 200, "batch_size": 64, "num_samples": 64, "num_elites": 8,
         "num_pi_trajs": 4, "iterations": 3, "lr": 1e-3}


def test_simnorm_makes_each_group_a_distribution():
    x = torch.randn(3, 16) * 5
    z = SimNorm(4)(x)
    torch.testing.assert_close(z.view(3, 4, 4), x.view(3, 4, 4).softmax(-1))
    assert torch.allclose(z.view(3, 4, 4).sum(-1), torch.ones(3, 4)) and (z > 0).all()


def test_our_mish_is_torchs_in_value_and_gradient():
    x = torch.linspace(-40, 40, 20001, requires_grad=True)
    ours, theirs = mish(x), torch.nn.functional.mish(x)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    grads = [torch.autograd.grad(y.sum(), x)[0] for y in (ours, theirs)]
    torch.testing.assert_close(*grads, atol=1e-5, rtol=1e-5)
    wide = (torch.randn(100, dtype=torch.double) * 8).requires_grad_()
    assert torch.autograd.gradcheck(mish, (wide,))
    with torch.no_grad():  # planning's path, in place, out to where e^x overflows
        far = torch.cat([x, torch.tensor([-1e4, -100.0, 100.0, 1e4])])
        torch.testing.assert_close(mish(far), torch.nn.functional.mish(far), atol=1e-5, rtol=1e-5)
        assert torch.equal(far[:-4], x)  # the input is left as it was


def test_windows_stay_inside_one_episode():
    buffer = ReplayBuffer(50, (1,), (1,))
    step = 0
    for length in (3, 1, 6, 2, 7, 9, 4, 8, 5, 6, 3):  # episodes; the ring wraps
        for t in range(length):
            buffer.add([step], [0.0], 0.0, [step + 1], False, t == length - 1)
            step += 1
    windows = buffer.sample_windows(500, 4, np.random.default_rng(0))
    obs, next_obs = windows["obs"][..., 0], windows["next_obs"][..., 0]
    assert obs.shape == (500, 4)
    assert (np.diff(obs, axis=1) == 1).all() and (next_obs == obs + 1).all()  # consecutive steps
    assert not windows["truncated"][:, :-1].any()  # only a window's last step may end its episode
    assert obs.min() >= step - 50  # only what the ring still holds
    with pytest.raises(ValueError, match="consecutive"):
        buffer.sample_windows(1, 10, np.random.default_rng(0))


def test_tdmpc2_mppi_refits_the_std_to_its_elites_within_bounds():
    target = torch.tensor([0.5, -0.3])

    def objective(sequences):  # best: every step at the target
        return -((sequences - target) ** 2).sum((1, 2))

    start = GaussianSequence(torch.zeros(3, 2), torch.full((3, 2), 2.0), -torch.ones(2), torch.ones(2))
    result = mppi(objective, start, torch.Generator().manual_seed(0), iterations=6, population=256,
                  temperature=0.1, elites=16, min_std=0.05, max_std=2.0)
    assert torch.allclose(result.actions, target.expand(3, 2), atol=0.1)
    assert (result.distribution.std >= 0.05).all() and (result.distribution.std < 0.5).all()
    sequences, weights = result.weighted
    assert len(sequences) == 16 and torch.isclose(weights.sum(), torch.tensor(1.0))
    # the plain MPPI update keeps its std
    plain = mppi(objective, start, torch.Generator().manual_seed(0), iterations=2, population=64)
    assert torch.equal(plain.distribution.std, start.std)


def test_policy_prior_takes_its_share_of_the_plan_inside_the_bounds():
    agent = modelrl.make_agent("td-mpc2", env=TargetReaching(), seed=0, **SMALL)
    seen = []
    planner = agent.planners[False]
    plan = planner.plan

    def recording(objective, prior=None):
        seen.append(prior)
        return plan(objective, prior)

    planner.plan = recording
    agent.plan(torch.zeros(1), planner, deterministic=False)
    prior = seen[0]
    assert prior.shape == (SMALL["num_pi_trajs"], agent.config.horizon, 1)
    assert prior.abs().max() <= 1


def test_tdmpc2_learns_to_read_the_target():
    """The model learns the reward from latents, the Qs and the policy follow, and the planner acts on them:
    always acting 0 earns 10 a 20-step episode, reading the target 20."""
    agent = modelrl.make_agent("td-mpc2", env=TargetReaching(), seed=0, **SMALL)
    history = agent.learn(600, eval_every=100, eval_episodes=10)
    # before the first update (step 200) the untrained planner earns 6.4; seeds 0-2 held 18.7-19.0
    assert history[0]["eval_return"] < 14 and held(history) >= 18, [r["eval_return"] for r in history]


def test_tdmpc2_resumes_exactly(tmp_path):
    config = {**SMALL, "seed_steps": 60}
    first = modelrl.make_agent("td-mpc2", env="Pendulum-v1", seed=3, **config)
    first.learn(80)
    first.save(tmp_path / "run.pt")
    first.learn(20)
    resumed = modelrl.load(tmp_path / "run.pt")
    resumed.learn(20)
    obs = np.array([0.3, -0.9, 0.5], np.float32)
    assert np.array_equal(first.act(obs, deterministic=True), resumed.act(obs, deterministic=True))
    for a, b in zip(first.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_tdmpc2_refuses_bad_settings_and_envs():
    with pytest.raises(ConfigError, match="size"):
        modelrl.make_agent("td-mpc2", env="Pendulum-v1", size="2m")
    with pytest.raises(ConfigError, match="num_pi_trajs"):
        modelrl.make_agent("td-mpc2", env="Pendulum-v1", num_samples=16, num_pi_trajs=16)
    with pytest.raises(ConfigError, match="simnorm_dim"):
        modelrl.make_agent("td-mpc2", env="Pendulum-v1", simnorm_dim=7)
    with pytest.raises(IncompatibleEnvError, match="Box actions"):
        modelrl.make_agent("td-mpc2", env="CartPole-v1")
    with pytest.raises(ConfigError, match="one env"):
        modelrl.make_agent("td-mpc2", env="Pendulum-v1", num_envs=2)


@pytest.mark.slow
def test_compiled_tdmpc2_plans_and_learns_as_the_eager_one():
    config = {**SMALL, "seed_steps": 30, "batch_size": 8}
    eager, compiled = (modelrl.make_agent("td-mpc2", env="Pendulum-v1", seed=0, compile=flag, **config)
                       for flag in (False, True))
    for agent in (eager, compiled):
        agent.learn(40)
    for a, b in zip(eager.model.parameters(), compiled.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
