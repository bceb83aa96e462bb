import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import modelrl
from modelrl.checkpoint import load_checkpoint, save_checkpoint
from modelrl.envs.known import KNOWN
from modelrl.errors import ConfigError, IncompatibleEnvError
from modelrl.models.dynamics import DynamicsModel, ModelSpec
from modelrl.planning import PlannerConfig
from modelrl.planning.mpc import MPC
from modelrl.planning.optimizers import cem, icem, mppi, random_shooting
from modelrl.planning.sequences import CategoricalSequence, GaussianSequence, colored_noise
from modelrl.planning.trajectory import ModelObjective, SimulatorObjective

TARGET = torch.tensor([[0.5, -0.2], [-0.3, 0.9], [0.8, 0.0], [0.1, -0.7], [-0.9, 0.4]])
LOW, HIGH = torch.tensor([-1.0, -1.0]), torch.tensor([1.0, 1.0])


def quadratic(actions):
    return -((actions - TARGET) ** 2).sum((1, 2))


@pytest.mark.parametrize(
    ("optimizer", "kwargs", "tolerance"),
    [
        (cem, {"iterations": 10, "population": 400}, 1e-3),
        # MPPI samples at its fixed noise level, so its mean stays a Monte Carlo estimate: 0.007-0.035 off for
        # seeds 0-7.
        (mppi, {"iterations": 15, "population": 400, "temperature": 0.2}, 0.05),
        (icem, {"iterations": 10, "population": 300, "noise_beta": 0.0}, 0.02),
    ],
)
def test_optimizers_find_a_known_optimum(optimizer, kwargs, tolerance):
    result = optimizer(quadratic, GaussianSequence.initial(5, LOW, HIGH), torch.Generator().manual_seed(0),
                       **kwargs)
    assert -float(quadratic(result.actions[None])) < tolerance
    random = random_shooting(quadratic, GaussianSequence.initial(5, LOW, HIGH),
                             torch.Generator().manual_seed(0), population=result.evaluations)
    assert -float(quadratic(result.actions[None])) < -float(quadratic(random.actions[None]))


@pytest.mark.parametrize("optimizer", [cem, mppi, icem])
def test_discrete_optimizers_sample_categories(optimizer):
    target = torch.tensor([2, 0, 1, 3, 3, 1, 0, 2])
    kwargs = {"temperature": 0.2} if optimizer is mppi else {}
    result = optimizer(lambda a: (a == target).float().sum(1), CategoricalSequence.initial(8, 4),
                       torch.Generator().manual_seed(0), iterations=6, population=300, **kwargs)
    assert result.actions.dtype == torch.int64
    assert result.actions.tolist() == target.tolist()


def test_icem_keeps_elites_and_tries_the_mean():
    # Only the exact optimum scores: random samples never hit it, so iCEM finds it only among the sequences
    # it is handed (carried elites) or builds itself (the mean).
    def objective(actions):
        evaluated.append(len(actions))
        return (actions == TARGET).all(2).all(1).float()

    evaluated = []
    others = GaussianSequence.initial(5, LOW, HIGH).sample(9, torch.Generator().manual_seed(0), bounds="clip")
    result = icem(objective, GaussianSequence.initial(5, LOW, HIGH), torch.Generator().manual_seed(0),
                  iterations=3, population=300, num_elites=10, keep_elites=0.3,
                  carried_elites=torch.cat([TARGET[None], others]))
    assert float(result.best_return) == 1.0 and torch.equal(result.actions, TARGET)
    # Pinneri et al. 2020: populations 300 / 1.25^i, plus round(0.3 * 10) elites kept into every iteration
    # (the carried ones into the first), plus the mean in the last.
    assert sum(evaluated) == result.evaluations == (300 + 240 + 192) + 3 * 3 + 1

    evaluated = []
    centred_on_target = GaussianSequence.initial(5, LOW, HIGH)
    centred_on_target.mean[:] = TARGET
    result = icem(objective, centred_on_target, torch.Generator().manual_seed(0), iterations=1,
                  population=300)
    assert float(result.best_return) == 1.0 and sum(evaluated) == result.evaluations == 300 + 1


def test_samples_stay_inside_asymmetric_bounds_each_mode_its_own_way():
    low, high = torch.tensor([0.0, -3.0]), torch.tensor([0.5, -1.0])
    dist = GaussianSequence.initial(4, low, high)  # std 0.125 and 0.5
    dist.mean[:] = torch.tensor([0.49, -2.9])  # hugging the upper bound in dimension 0, the lower in 1
    room = torch.minimum(dist.mean - low, high - dist.mean)
    # PETS's truncation (CEM): the std is capped so two deviations reach the nearer bound; samples spread no
    # further on either side (but do spread).
    samples = dist.sample(2000, torch.Generator().manual_seed(1), bounds="truncate")
    assert (samples >= low).all() and (samples <= high).all()
    spread = (samples - dist.mean).abs().amax(0)
    assert (spread <= room + 1e-6).all() and (spread > 0.7 * room).all()
    with pytest.raises(ValueError, match="white noise"):
        dist.sample(10, bounds="truncate", noise_beta=2.0)
    # Clipping (iCEM, MPPI): the full std, white or coloured, untruncated; what falls past a bound lands on
    # it, as much as the normal puts there, and the free side passes two deviations as often as a normal.
    cdf = torch.special.ndtr
    for beta in (0.0, 2.0):
        samples = dist.sample(4000, torch.Generator().manual_seed(1), bounds="clip", noise_beta=beta)
        assert (samples >= low).all() and (samples <= high).all()
        at_high, at_low = (samples == high).float().mean((0, 1)), (samples == low).float().mean((0, 1))
        on_bound = torch.stack([at_high[0], at_low[1]])
        torch.testing.assert_close(on_bound, cdf(-room[0] / dist.std[0]), atol=0.03, rtol=0)
        z = (samples - dist.mean) / dist.std
        far = torch.stack([(z[..., 0] < -2.2).float().mean(), (z[..., 1] > 2.2).float().mean()])
        torch.testing.assert_close(far, cdf(torch.tensor([-2.2, -2.2])), atol=0.006, rtol=0)


@pytest.mark.parametrize("optimizer", ["icem", "mppi"])
def test_a_warm_started_plan_at_a_bound_leaves_it_in_one_step(optimizer):
    # MPC's warm start keeps the last plan's mean, here at the upper bound, and resets the std to a quarter of
    # the range (0.5). The optimum has moved to the lower bound. Sampled at the full std and clipped, one
    # planning step moves the action well off the bound; with the std capped at half the distance to the bound
    # (PETS's truncation), every first-iteration sample would lie in [0.96, 1].
    start = GaussianSequence.initial(10, LOW[:1], HIGH[:1])
    start.mean[:] = 0.98
    kwargs = PlannerConfig(optimizer=optimizer, population=300, iterations=3).optimizer_kwargs()
    result = {"icem": icem, "mppi": mppi}[optimizer](lambda a: -((a + 1) ** 2).sum((1, 2)), start,
                                                      torch.Generator().manual_seed(0), **kwargs)
    assert result.actions[0, 0] < 0.5


@pytest.mark.parametrize("optimizer", [cem, random_shooting])
def test_cem_and_random_shooting_keep_pets_truncated_sampling(optimizer):
    # From the same start, PETS's sampling caps the std at half the distance to the nearer bound.
    def objective(actions):
        evaluated.append(actions)
        return -((actions + 1) ** 2).sum((1, 2))

    evaluated = []
    start = GaussianSequence.initial(10, LOW[:1], HIGH[:1])
    start.mean[:] = 0.98
    optimizer(objective, start, torch.Generator().manual_seed(0), population=300)
    assert evaluated[0].min() >= 0.96 - 1e-6 and evaluated[0].max() <= 1


def test_refit_smooths_the_variance():
    # PETS and mbrl-lib: var = alpha var_old + (1 - alpha) var_elites (and the mean likewise), not the std.
    old = GaussianSequence(torch.zeros(1, 1), torch.full((1, 1), 0.5), LOW[:1], HIGH[:1])
    elites = torch.tensor([0.3, 0.5]).view(2, 1, 1)  # mean 0.4, std 0.1
    new = old.refit(elites, torch.full((2,), 0.5), alpha=0.1)
    torch.testing.assert_close(new.mean, torch.tensor([[0.9 * 0.4]]))
    torch.testing.assert_close(new.std, torch.tensor([[(0.1 * 0.25 + 0.9 * 0.01) ** 0.5]]))  # 0.184


def test_mppi_mean_is_the_weighted_average_of_its_samples():
    # Williams et al.'s update has no smoothing: the config's alpha (0.1, for CEM and iCEM) must not reach it.
    evaluated = []

    def objective(actions):
        evaluated.append(actions)
        return quadratic(actions)

    kwargs = PlannerConfig(optimizer="mppi", population=50, iterations=1, temperature=0.5).optimizer_kwargs()
    mpc = MPC(gym.spaces.Box(-1, 1, (2,)), 5, "mppi", kwargs, generator=torch.Generator().manual_seed(0))
    result = mpc.plan(objective)
    weights = torch.softmax(quadratic(evaluated[0]) / 0.5, 0)
    torch.testing.assert_close(result.actions, (weights.view(-1, 1, 1) * evaluated[0]).sum(0))


@pytest.mark.parametrize("optimizer", [random_shooting, cem, mppi, icem])
def test_non_finite_returns_never_win(optimizer):
    # Sequences starting above 0.5 diverge, to NaN or to +inf: neither may look best.
    def diverging(value):
        def objective(actions):
            returns = -actions[:, 0, 0].abs()
            returns[actions[:, 0, 0] > 0.5] = value
            return returns
        return objective

    for value in (math.nan, math.inf):
        result = optimizer(diverging(value), GaussianSequence.initial(3, LOW[:1], HIGH[:1]),
                           torch.Generator().manual_seed(2))
        assert result.actions[0, 0] <= 0.5 and result.best_return.isfinite()
    # Every sequence diverges (a bad model): still a finite plan inside the bounds.
    def all_nan(actions):
        return torch.full((len(actions),), math.nan)

    start = GaussianSequence.initial(3, LOW[:1], HIGH[:1])
    result = optimizer(all_nan, start, torch.Generator().manual_seed(2))
    assert result.actions.isfinite().all() and (result.actions.abs() <= 1).all()


def _icem_population(beta):
    """The first population the agent's iCEM draws (its config, MPC): a (30, 4) plan of mean 0."""
    evaluated = []

    def objective(actions):
        evaluated.append(actions)
        return torch.zeros(len(actions))

    config = PlannerConfig(optimizer="icem", population=2000, iterations=1, noise_beta=beta)
    mpc = MPC(gym.spaces.Box(-1, 1, (4,)), 30, "icem", config.optimizer_kwargs(),
              generator=torch.Generator().manual_seed(0))
    mpc.plan(objective)
    return evaluated[0][:2000]  # the plan's mean is appended after the samples


def test_icem_draws_coloured_noise_along_time_and_independent_actions():
    # Brown noise (beta 2) ties each step to the next, white (beta 0) does not, and neither ties one action
    # dimension to another (4 of them: the fewest on which noise coloured along that axis would correlate).
    for beta, low, high in ((2.0, 0.8, 1.0), (0.0, -0.03, 0.03)):
        x = _icem_population(beta)
        power = (x * x).mean()
        assert low < float((x[:, 1:] * x[:, :-1]).mean() / power) < high
        assert abs(float((x[..., 1:] * x[..., :-1]).mean() / power)) < 0.03


def test_colored_noise_is_correlated_in_time():
    white, brown = (colored_noise(b, (2000, 30), torch.Generator().manual_seed(0)) for b in (0.0, 2.0))

    def lag_one(x):
        return float((x[:, 1:] * x[:, :-1]).mean())

    assert abs(lag_one(white)) < 0.05 and lag_one(brown) > 0.7
    for noise in (white, brown):  # every step has unit variance over samples
        assert ((noise.var(0) - 1).abs() < 0.1).all()
    # White noise is white: a sequence's mean has std 1/sqrt(30). Brown noise keeps its slow drift, so whole
    # sequences move off the plan (a per-sample normalisation would pin every sequence's mean at zero).
    assert abs(float(white.mean(1).std()) - 30**-0.5) < 0.02 and float(brown.mean(1).std()) > 0.4
    # a one-step plan (iCEM, H = 1)
    one_step = colored_noise(2.0, (4000, 1), torch.Generator().manual_seed(0))
    assert one_step.isfinite().all() and abs(float(one_step.std()) - 1) < 0.05


def _constant_model(deltas, elites=None):
    """A deterministic ensemble whose member e always predicts the state delta deltas[e]; planners use only
    the `elites` (default: all members)."""
    elites = list(range(len(deltas))) if elites is None else elites
    model = DynamicsModel(ModelSpec(1, 1, ensemble_size=len(deltas), num_elites=len(elites), num_layers=0,
                                    probabilistic=False))
    with torch.no_grad():
        model.net.layers[0].weight.zero_()
        model.net.layers[0].bias.copy_(torch.tensor(deltas).view(-1, 1, 1))
        model.elites.copy_(torch.tensor(elites))
    return model


def _reward_is_position(obs, action, next_obs):
    return next_obs[..., 0]


@pytest.mark.parametrize(("propagation", "tolerance"), [("ts-inf", 3.0), ("ts1", 2.0), ("mean", 1e-5)])
def test_particles_average_over_members(propagation, tolerance):
    # Each particle earns the sum of its positions, 10 on the +1 member and 30 on the +3 one. Every sequence's
    # particles must be dealt across members (not sequence by sequence) to earn about the members' mean.
    model = _constant_model([1.0, 3.0])
    objective = ModelObjective(model, _reward_is_position, None, particles=300, propagation=propagation,
                               generator=torch.Generator().manual_seed(0))
    returns = objective(torch.zeros(1), torch.zeros(3, 4, 1))
    torch.testing.assert_close(returns, torch.full((3,), 20.0), atol=tolerance, rtol=0)


@pytest.mark.parametrize(("propagation", "expected", "tolerance"), [("ts-inf", 3.0, 1e-5), ("ts1", 3.5, 0.2)])
def test_member_dependent_termination_tells_ts_inf_from_ts1(propagation, expected, tolerance):
    # Terminate once the position passes 2.5, paying that step. The +3 member's particles end after one step
    # (return 3). TS-inf keeps the others on the +1 member (1 + 2); TS1 redeals them, and half reach 4 on the
    # +3 member: 1 + (2 + 4) / 2.
    model = _constant_model([1.0, 3.0])
    objective = ModelObjective(model, _reward_is_position, lambda o, a, n: n[..., 0] > 2.5, particles=400,
                               propagation=propagation, generator=torch.Generator().manual_seed(0))
    returns = objective(torch.zeros(1), torch.zeros(1, 2, 1))
    torch.testing.assert_close(returns, torch.tensor([expected]), atol=tolerance, rtol=0)


@pytest.mark.parametrize("propagation", ["ts-inf", "ts1", "mean"])
def test_planning_uses_only_the_elite_members(propagation):
    # Member 1 is wildly off and not an elite: the return is the elites' (+1 and +3) mean, 20, untouched by
    # it.
    model = _constant_model([1.0, 1000.0, 3.0], elites=[0, 2])
    objective = ModelObjective(model, _reward_is_position, None, particles=4, propagation=propagation,
                               generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(objective(torch.zeros(1), torch.zeros(1, 4, 1)), torch.tensor([20.0]))


def test_planning_without_any_reward_is_a_clear_error():
    model = _constant_model([1.0])
    with pytest.raises(ConfigError, match="no known reward function"):
        ModelObjective(model, None, None)
    with pytest.raises(ConfigError, match="no known reward"):
        modelrl.make_agent("pets", env="MountainCarContinuous-v0")


def test_a_terminated_particle_adds_nothing_even_if_not_finite():
    # The position moves +1 a step and the episode ends once past 1.5, at step 2. The reward log(3 - x) and
    # the terminal value are finite while it runs (log 2, log 1) and -inf or NaN only after it has ended.
    def reward(obs, action, next_obs):
        return torch.log(3 - next_obs[..., 0])

    def ended(obs, action, next_obs):
        return next_obs[..., 0] > 1.5

    def value(state):
        return torch.log(3 - state[..., 0])

    expected = torch.tensor([math.log(2)])
    learned = ModelObjective(_constant_model([1.0]), reward, ended, particles=2, terminal_value=value,
                             generator=torch.Generator().manual_seed(0))
    exact = SimulatorObjective(lambda s, a: s + 1, reward, ended, terminal_value=value)
    for objective in (learned, exact):
        torch.testing.assert_close(objective(torch.zeros(1), torch.zeros(1, 4, 1)), expected)


def _terminal_value(state):
    return 100 * state[..., 0]


def test_terminal_value_is_added_for_survivors():
    # Terminate once the position passes 2.5. Moving +3 a step ends at once (return 3, no value, though the
    # state moves on); moving +1 survives both steps and earns 1 + 2 plus the value of position 2.
    def terminated(obs, action, next_obs):
        return next_obs[..., 0] > 2.5

    learned = ModelObjective(_constant_model([1.0, 3.0]), _reward_is_position, terminated, particles=2,
                             terminal_value=_terminal_value, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(learned(torch.zeros(1), torch.zeros(1, 2, 1)), torch.tensor([(3.0 + 203) / 2]))
    exact = SimulatorObjective(lambda s, a: s + a, _reward_is_position, terminated,
                               terminal_value=_terminal_value)
    speeds = torch.tensor([1.0, 3.0]).view(2, 1, 1).expand(2, 2, 1)
    torch.testing.assert_close(exact(torch.zeros(1), speeds), torch.tensor([203.0, 3.0]))


def test_discounting_weights_rewards_and_the_terminal_value():
    # Positions 1, 2, 3 paid at discounts 1, 0.5, 0.25; the value of the final state comes one step later.
    expected = torch.tensor([1 + 0.5 * 2 + 0.25 * 3 + 0.125 * 300])
    learned = ModelObjective(_constant_model([1.0]), _reward_is_position, None, particles=1, gamma=0.5,
                             terminal_value=_terminal_value)
    exact = SimulatorObjective(lambda s, a: s + 1, _reward_is_position, None, gamma=0.5,
                               terminal_value=_terminal_value)
    for objective in (learned, exact):
        torch.testing.assert_close(objective(torch.zeros(1), torch.zeros(1, 3, 1)), expected)


@pytest.mark.mujoco
def test_simulator_copy_discounts_rewards():
    # Upright and unpushed, the pendulum stays up and earns 1 a step: 1 + 0.9 + ... + 0.9^4.
    from modelrl.planning.env_copy import EnvCopyObjective

    objective = EnvCopyObjective("InvertedPendulum-v5", gamma=0.9)
    torch.testing.assert_close(objective(torch.zeros(4), torch.zeros(1, 5, 1)),
                               torch.tensor([sum(0.9**t for t in range(5))]))


def test_mpc_warm_start_shifts_the_plan():
    space = modelrl.make_env("Pendulum-v1").action_space
    mpc = MPC(space, horizon=4, optimizer="cem", optimizer_kwargs={"iterations": 3, "population": 50},
              generator=torch.Generator().manual_seed(0))
    result = mpc.plan(lambda a: -((a - 1.5) ** 2).sum((1, 2)))
    torch.testing.assert_close(mpc.distribution.mean[:-1], result.distribution.mean[1:])
    assert float(mpc.distribution.mean[-1]) == 0.0
    mpc.reset()
    assert float(mpc.distribution.mean.abs().sum()) == 0.0


def test_mpc_carries_icem_elites_to_the_next_step_and_through_a_checkpoint(tmp_path):
    def make_mpc():
        return MPC(modelrl.make_env("Pendulum-v1").action_space, horizon=4, optimizer="icem",
                   optimizer_kwargs={"iterations": 2, "population": 40, "num_elites": 5},
                   generator=torch.Generator().manual_seed(0))

    def objective(actions):
        evaluated.append(actions)
        return -((actions - 1.5) ** 2).sum((1, 2))

    evaluated = []
    mpc = make_mpc()
    result = mpc.plan(objective)
    carried = mpc.carried_elites
    torch.testing.assert_close(carried[:, :-1], result.elites[:, 1:])
    tail = carried[:, -1]  # a fresh step drawn from the initial distribution, not the elites' last one
    assert (tail.abs() <= 2).all() and tail.unique().numel() == len(tail)
    assert not torch.equal(tail, result.elites[:, -1])
    evaluated.clear()
    mpc.plan(objective)
    kept = round(0.3 * 5)  # icem's default keep_elites share
    torch.testing.assert_close(evaluated[0][-kept:], carried[:kept])

    # A restored planner holds the same plan and elites and so plans exactly as the original does.
    save_checkpoint(tmp_path / "mpc.pt", {"planner": mpc.state_dict()})
    restored = make_mpc()
    restored.load_state_dict(load_checkpoint(tmp_path / "mpc.pt")["planner"])
    for planner in (mpc, restored):
        planner.generator.manual_seed(1)
    torch.testing.assert_close(restored.carried_elites, mpc.carried_elites)
    torch.testing.assert_close(restored.distribution.mean, mpc.distribution.mean)
    restored_plan, original_plan = restored.plan(objective), mpc.plan(objective)
    torch.testing.assert_close(restored_plan.actions, original_plan.actions)
    torch.testing.assert_close(restored_plan.distribution.mean, original_plan.distribution.mean)
    mpc.reset()
    assert mpc.carried_elites is None


def test_mpc_with_the_true_model_balances_the_cartpole():
    agent = modelrl.make_agent("mpc", env="ContinuousCartPole-v0", seed=0, population=100, iterations=3)
    result = agent.evaluate(episodes=1)
    assert result["eval_return"] == 200.0


def test_mpc_plans_discrete_actions_with_the_true_model():
    agent = modelrl.make_agent("mpc", env="CartPole-v1", seed=0, population=60, iterations=3, horizon=12)
    action = agent.act(np.array([0.0, 0.0, 0.15, 0.5], np.float32))
    assert action == 1  # the pole leans and falls right: only pushing right now saves it within the horizon
    assert agent.evaluate(episodes=1, max_steps=150)["eval_return"] == 150.0


def test_categorical_warm_start_keeps_exploring():
    # CEM leaves a discrete plan near one-hot; shifted as it is, the next step would sample one sequence only.
    initial = CategoricalSequence.initial(horizon=6, n_actions=2)
    plan = CategoricalSequence(torch.tensor([[1.0, 0.0], [0.0, 1.0]] * 3))
    shifted = plan.shift(initial)
    assert shifted.mode().tolist() == [1, 0, 1, 0, 1, 0]  # the plan, one step on (last step a tie)
    assert shifted.probs.max() < 0.8
    samples = shifted.sample(100, torch.Generator().manual_seed(0))
    assert len({tuple(row) for row in samples.tolist()}) > 10


def test_mpc_without_a_simulator_or_model_is_refused():
    with pytest.raises(IncompatibleEnvError, match="model_path"):
        modelrl.make_agent("mpc", env="Acrobot-v1")


# Rewards paid for forward speed use the mean of the step's first and last velocities (the position is not
# observed): close, not exact. Mean absolute errors seen on these 400 random steps: 0.146, 0.002, 0.008.
ESTIMATED_REWARD_ERROR = {"HalfCheetah-v5": 0.2, "Hopper-v5": 0.01, "Walker2d-v5": 0.02}


@pytest.mark.parametrize("env_id", sorted(KNOWN))
def test_known_functions_match_the_env_on_random_steps(env_id):
    env, known = modelrl.make_env(env_id), KNOWN[env_id]
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    steps = []
    for _ in range(400):
        action = env.action_space.sample()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        steps.append((obs, action, next_obs, reward, terminated))
        obs = env.reset()[0] if terminated or truncated else next_obs
    o, a, n, reward, terminated = (torch.as_tensor(np.array(column)) for column in zip(*steps))
    o, n = o.float(), n.float()
    a = a if a.dtype == torch.int64 else a.float()
    if known.termination is None:
        assert not terminated.any()
    else:
        assert terminated.any() and not terminated.all()  # the check sees both outcomes
        assert torch.equal(known.termination(o, a, n), terminated)
    if known.reward is not None:
        error = (known.reward(o, a, n) - reward).abs()
        assert error.mean() < ESTIMATED_REWARD_ERROR.get(env_id, 1e-4)
    if known.simulator is not None:
        torch.testing.assert_close(known.simulator(o, a), n, atol=1e-4, rtol=0)


@pytest.mark.mujoco
def test_mpc_with_a_copy_of_the_mujoco_simulator_balances_the_inverted_pendulum():
    agent = modelrl.make_agent("mpc", env="InvertedPendulum-v5", seed=0, population=20, iterations=2,
                               horizon=8)
    assert agent.evaluate(episodes=1, max_steps=40)["eval_return"] == 40.0


@pytest.mark.mujoco
def test_simulator_copy_scores_a_given_reward_on_the_states_it_visits():
    # The env's reward as a function of observations must reproduce the env's own, terminations included.
    from modelrl.envs.known import inverted_pendulum_reward
    from modelrl.planning.env_copy import EnvCopyObjective

    actions = torch.rand(30, 40, 1, generator=torch.Generator().manual_seed(0)) * 6 - 3
    obs = torch.tensor([0.0, 0.05, 0.0, 0.3])
    own = EnvCopyObjective("InvertedPendulum-v5")(obs, actions)
    given = EnvCopyObjective("InvertedPendulum-v5", reward_fn=inverted_pendulum_reward)(obs, actions)
    assert own.min() < 40 and own.max() > own.min()  # some sequences terminate, at different steps
    torch.testing.assert_close(given, own)
    agent = modelrl.make_agent("mpc", env="InvertedPendulum-v5", planning_reward="shaped")
    assert agent.objective.reward_fn is not None
