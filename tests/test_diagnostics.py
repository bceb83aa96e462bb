import math
from statistics import NormalDist

import numpy as np
import pytest
import torch

import modelrl
from modelrl.cli import main
from modelrl.diagnostics import (
    COVERAGE_LEVELS,
    Trajectory,
    calibration,
    k_step_errors,
    one_step_errors,
    rank_correlation,
)
from modelrl.experiment import model_report
from modelrl.experiment.runner import CHECKPOINT
from modelrl.models.dynamics import DynamicsModel, ModelSpec

# s' = A s + B a: dimension 0 integrates dimension 1, so an error in dimension 0 is carried on unchanged.
A = np.array([[1.0, 0.1], [0.0, 0.9]])
B = np.array([[0.0], [0.1]])
ONES = torch.ones(2)


def linear_dynamics(A, B, offsets=((0.0, 0.0),), variance=None, weights=None) -> DynamicsModel:
    """A real `DynamicsModel` without hidden layers set to s' = A s + B a + offsets[j] in member j, plus
    N(0, variance) noise where a variance is given (then probabilistic); `weights[j]` adds to member j's
    (A - I). Its normalisers stay the identity, so the single layer is the dynamics itself."""
    d, a = B.shape
    members = len(offsets)
    model = DynamicsModel(ModelSpec(d, a, ensemble_size=members, num_elites=members, num_layers=0,
                                    probabilistic=variance is not None))
    layer = model.net.layers[0]
    base = np.concatenate([A - np.eye(d), B], 1).T  # (d + a, d): the delta is [s, a] @ base
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()
        for j in range(members):
            extra = 0 if weights is None else np.concatenate([weights[j], np.zeros((d, a))], 1).T
            layer.weight[j, :, :d] = torch.as_tensor(base + extra)
        layer.bias[:, 0, :d] = torch.as_tensor(np.asarray(offsets))
        if variance is not None:
            layer.bias[:, 0, d:] = torch.as_tensor(np.log(variance))
            # Bounds far away: the soft clamp then returns the log-variance unchanged (to float precision).
            model.net.max_logvar.fill_(40.0)
            model.net.min_logvar.fill_(-40.0)
    return model


def simulate(A, B, steps, seed, noise=None, episodes=2) -> list[Trajectory]:
    """Episodes of s' = A s + B a (+ noise(rng, size)) under uniform random actions."""
    rng = np.random.default_rng(seed)
    d, a = B.shape
    trajectories = []
    for _ in range(episodes):
        obs = np.zeros((steps + 1, d))
        obs[0] = rng.normal(size=d)
        actions = rng.uniform(-1, 1, (steps, a))
        for t in range(steps):
            obs[t + 1] = A @ obs[t] + B @ actions[t] + (0 if noise is None else noise(rng, d))
        trajectories.append(Trajectory(obs.astype(np.float32), actions.astype(np.float32)))
    return trajectories


def test_an_exact_model_has_no_k_step_error():
    trajectories = simulate(A, B, 30, seed=0)
    errors = k_step_errors(linear_dynamics(A, B), trajectories, 5, ONES)
    np.testing.assert_allclose(errors, 0, atol=1e-10)


def test_a_constant_offset_compounds_over_open_loop_steps():
    # 0.1 too much per step in dimension 0 (of 2): after k steps the error is 0.1 k there, so
    # MSE (0.1 k)^2 / 2. Fed the real state at each step instead, it would stay at 0.005.
    trajectories = simulate(A, B, 30, seed=0)
    errors = k_step_errors(linear_dynamics(A, B, offsets=[(0.1, 0.0)]), trajectories, 5, ONES)
    np.testing.assert_allclose(errors, [0.005, 0.020, 0.045, 0.080, 0.125], rtol=1e-4)


def test_one_step_nll_is_the_gaussian_nll():
    # One transition from s = 0 (a model predicting s' = 0) to s' = (1, 2) under variances (0.25, 4):
    # NLL_i = (log(2 pi var_i) + err_i^2 / var_i) / 2 = (1.83788 - 1.38629 + 4) / 2 and
    # (1.83788 + 1.38629 + 1) / 2.
    model = linear_dynamics(np.eye(2), np.zeros((2, 1)), variance=[0.25, 4.0])
    trajectory = [Trajectory(np.array([[0, 0], [1, 2]], np.float32), np.zeros((1, 1), np.float32))]
    result = one_step_errors(model, trajectory, ONES)
    np.testing.assert_allclose(result["mse"], [1.0, 4.0])
    np.testing.assert_allclose(result["nll"], [2.2257913, 2.1120857], rtol=1e-6)
    # In data std units (dimension 0's std 2): err 1/2, var 0.25/4, so its NLL is lower by log 2.
    halved = one_step_errors(model, trajectory, torch.tensor([2.0, 1.0]))
    np.testing.assert_allclose(halved["nll"], [2.2257913 - math.log(2), 2.1120857], rtol=1e-6)
    np.testing.assert_allclose(halved["mse"], [0.25, 4.0])


def noisy(std):
    return lambda rng, d: rng.normal(0, std, d)


@pytest.mark.parametrize("members", [1, 5])
def test_a_model_drawing_the_truth_from_its_own_gaussian_is_calibrated(members):
    # Identical members do not disagree at all; it is each one's predicted variance that states the noise.
    std = np.array([0.05, 0.2])
    trajectories = simulate(A, B, 5000, seed=1, noise=lambda rng, d: rng.normal(0, std), episodes=4)
    model = linear_dynamics(A, B, offsets=[(0.0, 0.0)] * members, variance=std**2)
    result = calibration(model, trajectories, ONES)
    gaussian = result["gaussian"]
    assert gaussian["mean_z2"] == pytest.approx(1, abs=0.05)
    np.testing.assert_allclose(gaussian["mean_z2_per_dim"], 1, atol=0.06)
    assert gaussian["coverage"]["nominal"] == list(COVERAGE_LEVELS)
    np.testing.assert_allclose(gaussian["coverage"]["observed"], COVERAGE_LEVELS, atol=0.015)
    if members == 1:
        assert result["disagreement"] is None
    else:  # no disagreement to rank: the correlation is undefined, not a number from arbitrary tie order
        assert result["disagreement"]["spread"] == [0.0] * 10
        assert math.isnan(result["disagreement"]["spearman"])


def test_a_model_stating_a_quarter_of_the_true_variance_is_overconfident():
    std = np.array([0.05, 0.2])
    trajectories = simulate(A, B, 5000, seed=2, noise=lambda rng, d: rng.normal(0, std), episodes=4)
    gaussian = calibration(linear_dynamics(A, B, variance=std**2 / 4), trajectories, ONES)["gaussian"]
    assert gaussian["mean_z2"] == pytest.approx(4, rel=0.05)
    # Intervals half as wide as they should be: the central q interval holds P(|Z| <= z_q / 2).
    expected = [2 * NormalDist().cdf(NormalDist().inv_cdf((1 + q) / 2) / 2) - 1 for q in COVERAGE_LEVELS]
    np.testing.assert_allclose(gaussian["coverage"]["observed"], expected, atol=0.015)
    observed = dict(zip(COVERAGE_LEVELS, gaussian["coverage"]["observed"], strict=True))
    assert observed[0.5] < 0.3 and observed[0.9] < 0.62 and observed[0.95] < 0.7


def test_the_predictive_variance_adds_the_members_disagreement_to_their_variances():
    # Two members at +-1 in dimension 0, each with variance 1 there, and the truth drawn from their mixture:
    # the moment-matched variance is 1 + 1 = 2, under which mean z^2 is 1 (it would be 2 under 1 alone).
    std = np.array([1.0, 0.1])

    def mixture(rng, d):
        return np.array([rng.choice([-1.0, 1.0]), 0.0]) + rng.normal(0, std)

    trajectories = simulate(A, B, 5000, seed=3, noise=mixture, episodes=4)
    model = linear_dynamics(A, B, offsets=[(1.0, 0.0), (-1.0, 0.0)], variance=std**2)
    gaussian = calibration(model, trajectories, ONES)["gaussian"]
    np.testing.assert_allclose(gaussian["mean_z2_per_dim"], 1, atol=0.05)


def test_a_single_deterministic_net_has_no_calibration():
    trajectories = simulate(A, B, 30, seed=0)
    model = linear_dynamics(A, B)
    assert calibration(model, trajectories, ONES) == {"variance": None, "gaussian": None,
                                                      "disagreement": None}
    assert one_step_errors(model, trajectories, ONES)["nll"] is None


def test_rank_correlation_by_hand():
    # Ranks (1, 2, 3, 4, 5) against (2, 1, 5, 4, 3): 1 - 6 * (1 + 1 + 4 + 0 + 4) / (5 * 24) = 0.5.
    assert rank_correlation(np.array([1.0, 2, 3, 4, 5]),
                            np.array([0.2, 0.1, 0.5, 0.4, 0.3])) == pytest.approx(0.5)
    # Tied values share their rank: (1.5, 1.5, 3) against (1, 2, 3) gives 1.5 / sqrt(1.5 * 2) = sqrt(3) / 2.
    assert rank_correlation(np.array([1.0, 1, 2]), np.array([1.0, 2, 3])) == pytest.approx(math.sqrt(3) / 2)
    assert math.isnan(rank_correlation(np.zeros(4), np.arange(4.0)))


def test_ensemble_disagreement_against_error_by_hand():
    # Two deterministic members predicting s' = s +- 0.1 s disagree by 0.1 |s|; their mean s is off by s' - s.
    starts, steps = np.arange(1.0, 6.0), np.array([0.2, 0.1, 0.5, 0.4, 0.3])
    trajectories = [Trajectory(np.array([[s], [s + e]], np.float32), np.zeros((1, 1), np.float32))
                    for s, e in zip(starts, steps, strict=True)]
    model = linear_dynamics(np.eye(1), np.zeros((1, 1)), offsets=[(0.0,), (0.0,)],
                            weights=[np.array([[0.1]]), np.array([[-0.1]])])
    result = calibration(model, trajectories, torch.ones(1))
    spread = result["disagreement"]
    np.testing.assert_allclose(spread["spread"], 0.1 * starts, rtol=1e-5)  # five transitions, five bins
    np.testing.assert_allclose(spread["error"], steps, rtol=1e-5)
    assert spread["spearman"] == pytest.approx(0.5)  # the ranks of test_rank_correlation_by_hand
    # Deterministic members state their disagreement as the variance: z^2 = (s' - s)^2 / (0.1 s)^2.
    assert result["variance"] == "disagreement of deterministic members"
    assert result["gaussian"]["mean_z2"] == pytest.approx(np.mean((steps / (0.1 * starts)) ** 2), rel=1e-5)


MBPO = {"hidden_size": 32, "batch_size": 32, "learning_starts": 50, "updates_per_step": 1, "ensemble_size": 3,
        "num_elites": 2, "model_hidden_size": 16, "model_layers": 2, "model_max_epochs": 3,
        "model_train_every": 25, "rollouts_per_step": 2, "epoch_length": 50, "lr": 3e-4, "model_lr": 2e-3,
        "model_batch_size": 24, "model_weight_decay": 1e-4}
DEEP_DYNA_Q = {"hidden_size": 32, "batch_size": 16, "learning_starts": 40, "train_freq": 20,
               "gradient_steps": 1, "planning_steps": 1, "ensemble_size": 3, "num_elites": 2,
               "model_hidden_size": 16, "model_layers": 2, "model_max_epochs": 3, "model_lr": 2e-3,
               "model_batch_size": 24, "model_weight_decay": 1e-4}
PETS = {"model_hidden_size": 16, "model_layers": 2, "ensemble_size": 3, "num_elites": 2, "population": 20,
        "iterations": 1, "particles": 2, "horizon": 3, "model_max_epochs": 3, "random_steps": 40,
        "model_lr": 2e-3, "model_batch_size": 24, "model_weight_decay": 1e-4}


@pytest.mark.parametrize("agent_id, env, config, steps", [
    ("mbpo", "Pendulum-v1", MBPO, 55),
    ("deep-dyna-q", "CartPole-v1", DEEP_DYNA_Q, 60),
    ("pets", "Pendulum-v1", PETS, 41),
])
def test_model_report_fits_the_simpler_models_with_the_runs_model_settings(tmp_path, monkeypatch, agent_id,
                                                                            env, config, steps):
    agent = modelrl.make_agent(agent_id, env=env, seed=0, **config)
    agent.learn(total_steps=steps)
    assert agent.trainer.fits >= 1
    path = agent.save(tmp_path / "agent.pt")
    used = []
    fit_variant = model_report._fit_variant

    def spy(model, data, generator, batch_size, lr, weight_decay):
        used.append((batch_size, lr, weight_decay))
        return fit_variant(model, data, generator, batch_size, lr, weight_decay)

    monkeypatch.setattr(model_report, "_fit_variant", spy)
    report, paths = model_report.run_model_report(path, episodes=1, horizon=3)
    assert used == [(24, 2e-3, 1e-4)] * 2  # the model's, not the policy learner's
    assert len(report["models"]) == 4 and all(p.exists() for p in paths)
    table = model_report.format_report(report)
    assert "k=3 MSE" in table and "k=5" not in table  # one column for k = 3, labelled as such


def test_model_report_refuses_bad_arguments_and_an_unfitted_model(tmp_path, capsys):
    agent = modelrl.make_agent("pets", env="Pendulum-v1", seed=0, **PETS)
    agent.learn(total_steps=20)  # all random steps: no fit yet
    run_dir = tmp_path / "run"
    agent.save(run_dir / CHECKPOINT)
    capsys.readouterr()
    for args, message in ((["--episodes", "0"], "episodes must be >= 1, got 0"),
                          (["--horizon", "0"], "horizon must be >= 1, got 0"),
                          (["--horizon", "-2"], "horizon must be >= 1, got -2"),
                          ([], "never fitted (20 env steps); train past random_steps=40 first")):
        assert main(["model-report", str(run_dir), *args]) == 2
        error = capsys.readouterr().err
        assert error.startswith("modelrl: error: ") and error.count("\n") == 1 and message in error
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoints"]  # nothing written
