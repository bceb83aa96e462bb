from collections import Counter

import numpy as np
import pytest

import modelrl
from modelrl.errors import ConfigError, IncompatibleEnvError, TrainingDivergedError
from modelrl.models.tabular import Outcome, TabularModel

TABULAR = ["q-learning", "dyna-q", "dyna-q-plus", "prioritized-sweeping"]


def steps_until_greedy_optimal(agent, optimal: int, budget: int, tolerance: float = 1.0) -> int:
    """Real env steps until the greedy path is within `tolerance` x optimal (budget if never)."""
    while agent.env_steps < budget:
        agent.learn(1)
        length = agent.greedy_path_length()
        if length is not None and length <= optimal * tolerance:
            return agent.env_steps
    return budget


@pytest.mark.parametrize("agent_id", TABULAR)
def test_each_agent_learns_the_optimal_path_on_gridworld(agent_id):
    overrides = {"kappa": 1e-4} if agent_id == "dyna-q-plus" else {}
    agent = modelrl.make_agent(agent_id, env="GridWorld-v0", seed=1, **overrides)
    agent.learn(3000)
    assert agent.greedy_path_length() == 8
    assert agent.evaluate(1)["eval_return"] == pytest.approx(93.0)  # 7 x (-1) + 100


def test_prioritized_sweeping_needs_fewer_updates_than_dyna_q():
    def cost_to_near_optimal(agent_id, seed):
        agent = modelrl.make_agent(agent_id, env="DynaMaze-v0", seed=seed, planning_steps=5, lr=1.0)
        steps_until_greedy_optimal(agent, 14, 20_000, tolerance=1.2)
        assert agent.env_steps < 20_000
        return agent.updates, agent.env_steps

    dyna = np.array([cost_to_near_optimal("dyna-q", seed) for seed in range(5)])
    sweeping = np.array([cost_to_near_optimal("prioritized-sweeping", seed) for seed in range(5)])
    updates, real_steps = 0, 1
    assert np.median(sweeping[:, updates]) < 0.2 * np.median(dyna[:, updates]), (sweeping, dyna)
    # ... and not by taking more real steps: without the sweep through predecessors it would need several
    # times Dyna-Q's
    assert np.median(sweeping[:, real_steps]) < 1.5 * np.median(dyna[:, real_steps]), (sweeping, dyna)


def test_dyna_q_needs_fewer_real_steps_than_q_learning():
    seeds = range(5)
    q_learning = [
        steps_until_greedy_optimal(modelrl.make_agent("q-learning", env="GridWorld-v0", seed=s), 8, 5000)
        for s in seeds
    ]
    dyna = [
        steps_until_greedy_optimal(
            modelrl.make_agent("dyna-q", env="GridWorld-v0", seed=s, planning_steps=50), 8, 5000
        )
        for s in seeds
    ]
    assert max(dyna) < 5000
    assert all(d < q for d, q in zip(dyna, q_learning)), (dyna, q_learning)
    assert np.mean(dyna) < 0.5 * np.mean(q_learning)


def test_dyna_q_plus_finds_the_shortcut_that_dyna_q_misses():
    def reward_after_change(agent_id):
        total = 0.0
        for seed in range(3):
            agent = modelrl.make_agent(agent_id, env="ShortcutMaze-v0", seed=seed, planning_steps=50, lr=1.0)
            agent.learn(3000)
            before = sum(agent.episode_returns)
            agent.learn(3000)
            total += sum(agent.episode_returns) - before
        return total

    assert reward_after_change("dyna-q-plus") > 1.2 * reward_after_change("dyna-q")


@pytest.mark.parametrize("agent_id", TABULAR)
def test_every_tabular_agent_runs_on_frozen_lake(agent_id):
    agent = modelrl.make_agent(agent_id, env="FrozenLake-v1", seed=0, env_kwargs={"is_slippery": False})
    agent.learn(3000)
    assert agent.greedy_path_length() == 6


def test_slippery_frozen_lake_uses_a_sample_model_and_learns():
    agent = modelrl.make_agent("dyna-q", env="FrozenLake-v1", seed=0, planning_steps=20, gamma=0.99)
    assert agent.model.stochastic
    assert not modelrl.make_agent("dyna-q", env="DynaMaze-v0").model.stochastic
    agent.learn(20_000)
    success = agent.evaluate(episodes=300, max_steps=100)["eval_return"]
    assert success > 0.5  # a random policy succeeds about 1.5% of the time; the optimum is about 74%


def test_sample_model_draws_outcomes_in_proportion_to_counts(rng):
    model = TabularModel(stochastic=True)
    for next_state in [1, 1, 1, 2]:
        model.observe(0, 0, 0.0, next_state, False)
    draws = [model.sample(0, u).next_state for u in rng.random(4000)]
    assert np.mean(np.array(draws) == 1) == pytest.approx(0.75, abs=0.03)
    assert set(model.predecessors) == {1, 2}


def test_deterministic_model_keeps_the_latest_outcome_and_its_predecessor_link():
    model = TabularModel(stochastic=False)
    model.observe(0, 1, 0.0, 5, False)
    model.observe(0, 1, 1.0, 6, True)
    assert model.sample(0) == Outcome(1.0, 6, True)
    assert (0, 1) not in model.predecessors[5] and model.predecessors[6][(0, 1)] == (1.0, True)


def test_assumed_outcomes_are_replaced_when_really_tried():
    model = TabularModel(stochastic=True)
    model.assume(3, 0, Outcome(0.0, 3, False))
    model.observe(3, 0, 1.0, 4, False)
    assert [model.sample(0, u) for u in (0.0, 0.99)] == [Outcome(1.0, 4, False)] * 2
    assert (3, 0) not in model.predecessors[3] and model.predecessors[4] == {(3, 0): (1.0, False)}


def test_planning_draws_a_seen_state_then_an_action_tried_there():
    """The book's step (f): a state with three tried actions is drawn no more often than one with one."""
    model = TabularModel()
    for action in range(3):
        model.observe(0, action, 0.0, 1, False)
    model.observe(5, 2, 0.0, 1, False)
    grid = (np.arange(40) + 0.5) / 40
    drawn = [model.pairs[model.draw(u_state, u_action)] for u_state in grid for u_action in grid]
    assert Counter(state for state, _ in drawn) == {0: 800, 5: 800}
    assert Counter(drawn) == {(0, 0): 260, (0, 1): 280, (0, 2): 260, (5, 2): 800}  # 13, 14, 13 of 40 each


def test_dyna_q_plans_from_its_own_random_stream():
    """Example 8.1: with the same seed, the first episode on the Dyna maze is the same for every n (no
    planning update changes Q before the goal is first reached), and planning leaves acting's draws alone."""
    for seed in range(3):
        first_episodes = set()
        for n in (0, 5, 50):
            agent = modelrl.make_agent("dyna-q", env="DynaMaze-v0", seed=seed, planning_steps=n)
            agent.learn(episodes=1)
            first_episodes.add(agent.episode_lengths[0])
        assert len(first_episodes) == 1


def test_terminal_transitions_do_not_bootstrap_in_real_or_planned_updates():
    for agent_id in ("q-learning", "dyna-q"):
        agent = modelrl.make_agent(agent_id, env="GridWorld-v0", initial_q=10.0, lr=0.5, gamma=0.9)
        agent.observe(23, 1, 100.0, 24, True, False)  # into the goal
        expected = 10.0 + 0.5 * (100.0 - 10.0)
        if agent_id == "dyna-q":  # then the five planning steps replay the only modelled pair
            for _ in range(5):
                expected += 0.5 * (100.0 - expected)
        assert agent.q[23, 1] == pytest.approx(expected)


def test_a_truncated_episode_still_bootstraps():
    """A time limit is not a terminal state: the target keeps gamma max Q(s')."""
    agent = modelrl.make_agent("q-learning", env="GridWorld-v0", seed=0, initial_q=10.0,
                               env_kwargs={"max_episode_steps": 1})
    agent.learn(1)
    assert agent.episodes == 1
    assert agent.q.min() == pytest.approx(10.0 + 0.1 * (-1.0 + 0.95 * 10.0 - 10.0))


@pytest.mark.parametrize("agent_id", TABULAR)
def test_evaluating_leaves_training_as_it_was(agent_id):
    plain = modelrl.make_agent(agent_id, env="DynaMaze-v0", seed=4)
    plain.learn(600)
    evaluated = modelrl.make_agent(agent_id, env="DynaMaze-v0", seed=4)
    for _ in range(3):
        evaluated.learn(200)
        evaluated.evaluate(2, max_steps=50)
        evaluated.greedy_path_length()
    np.testing.assert_array_equal(plain.q, evaluated.q)
    assert plain.episode_lengths == evaluated.episode_lengths


def test_loaded_state_is_not_shared_with_its_source():
    source = modelrl.make_agent("dyna-q", env="DynaMaze-v0", seed=0)
    source.learn(100)
    copy = modelrl.make_agent("dyna-q", env="DynaMaze-v0", seed=0)
    copy.load_state_dict(source.state_dict())
    pairs = len(copy.model)
    source.learn(2000)
    assert len(copy.model) == pairs < len(source.model)


def test_learn_in_pieces_equals_learn_at_once():
    whole = modelrl.make_agent("dyna-q", env="DynaMaze-v0", seed=3, planning_steps=10)
    whole.learn(700)
    pieces = modelrl.make_agent("dyna-q", env="DynaMaze-v0", seed=3, planning_steps=10)
    for _ in range(7):
        pieces.learn(100)
    np.testing.assert_array_equal(whole.q, pieces.q)
    assert (whole.env_steps, whole.episodes) == (pieces.env_steps, pieces.episodes)


def test_evaluation_sees_the_maze_as_the_training_env_does():
    agent = modelrl.make_agent("dyna-q", env="BlockingMaze-v0", seed=0, env_kwargs={"change_at": 100})
    agent.learn(99)
    agent.evaluate(1, max_steps=50)  # an evaluation's own steps do not move the layout on
    assert agent.loop.eval_env.unwrapped.walls is agent.loop.eval_env.unwrapped._walls
    agent.learn(51)
    agent.evaluate(1)
    assert agent.loop.eval_env.unwrapped.walls is agent.loop.eval_env.unwrapped._changed_walls


def test_greedy_path_length_is_measured_in_the_training_layout():
    agent = modelrl.make_agent("dyna-q", env="BlockingMaze-v0", seed=1, planning_steps=50, lr=1.0,
                               env_kwargs={"change_at": 1000})  # a seed whose greedy path is optimal by then
    for _ in range(20):  # many measurements before the change must not bring it on
        agent.learn(40)
        agent.greedy_path_length()
        assert agent._path_env.walls is agent._path_env._walls
    assert agent.greedy_path_length() == 10  # the short path, right of the wall (Figure 8.4)
    agent.learn(199)
    agent.greedy_path_length()  # its own steps must not carry the layout past training's 999
    assert agent._path_env.walls is agent._path_env._walls
    agent.learn(1)  # at 1000 the wall blocks the right and opens on the left
    agent.greedy_path_length()
    assert agent._path_env.walls is agent._path_env._changed_walls


def test_learn_reports_one_row_per_evaluation():
    agent = modelrl.make_agent("q-learning", env="GridWorld-v0", seed=0)
    history = agent.learn(200, eval_every=50, eval_episodes=1)
    assert [row["env_steps"] for row in history] == [50, 100, 150, 200]
    assert {"env_steps", "episodes", "wall_time", "eval_return", "updates"} <= set(history[0])


def test_continuous_observation_env_is_rejected():
    with pytest.raises(IncompatibleEnvError,
                       match="needs a Discrete observation space starting at 0; CartPole-v1 has Box"):
        modelrl.make_agent("dyna-q", env="CartPole-v1")


def test_bad_config_is_rejected():
    with pytest.raises(ConfigError, match="unknown config key 'planing_steps'"):
        modelrl.make_agent("dyna-q", env="DynaMaze-v0", planing_steps=5)
    with pytest.raises(ConfigError, match="must be an integer"):
        modelrl.make_agent("dyna-q", env="DynaMaze-v0", planning_steps="many")
    with pytest.raises(ConfigError, match="lr must be in"):
        modelrl.make_agent("q-learning", env="DynaMaze-v0", lr=0.0)
    with pytest.raises(ConfigError, match="planning_steps must be >= 1"):
        modelrl.make_agent("prioritized-sweeping", env="DynaMaze-v0", planning_steps=0)
    for value in (float("nan"), float("inf"), -1.0):
        # nan and inf stop at the config's coercion, a negative value at the agent's own check
        with pytest.raises(ConfigError, match="theta'? must be (a )?finite"):
            modelrl.make_agent("prioritized-sweeping", env="DynaMaze-v0", theta=value)
        with pytest.raises(ConfigError, match="kappa'? must be (a )?finite"):
            modelrl.make_agent("dyna-q-plus", env="DynaMaze-v0", kappa=value)


@pytest.mark.filterwarnings("ignore:.*reward is a NaN")
def test_nan_in_training_raises():
    agent = modelrl.make_agent("q-learning", env="test/NaNReward-v0")
    with pytest.raises(TrainingDivergedError, match="NaN or infinite"):
        agent.learn(10)


def test_figure_8_2_planning_shortens_early_episodes():
    """Sutton & Barto Figure 8.2 in small: more planning steps, shorter episodes from the second on."""

    def mean_lengths(n):
        runs = []
        for seed in range(8):
            agent = modelrl.make_agent("dyna-q", env="DynaMaze-v0", seed=seed, planning_steps=n)
            agent.learn(episodes=10)
            runs.append(agent.episode_lengths)
        return np.mean(runs, axis=0)

    direct, five, fifty = mean_lengths(0), mean_lengths(5), mean_lengths(50)
    assert fifty[1] < five[1] < direct[1]
    assert fifty[2] < 25  # near the 14-step optimum by the third episode
    assert direct[2] > 100


@pytest.mark.slow
def test_prioritized_sweeping_gap_widens_with_maze_size():
    def median_updates(agent_id, scale):
        updates = []
        for seed in range(5):
            agent = modelrl.make_agent(agent_id, env="DynaMaze-v0", seed=seed, planning_steps=5, lr=1.0,
                                       env_kwargs={"scale": scale})
            shortest = agent.env.unwrapped.shortest_path_length()
            steps_until_greedy_optimal(agent, shortest, 200_000, tolerance=1.2)
            updates.append(agent.updates)
        return np.median(updates)

    small = median_updates("dyna-q", 1) - median_updates("prioritized-sweeping", 1)
    large = median_updates("dyna-q", 2) - median_updates("prioritized-sweeping", 2)
    assert large > small > 0


def test_no_two_runs_evaluate_from_the_same_initial_states():
    """Seed s's eleventh evaluation once reset with seed s + 1's first evaluation's seeds."""
    seen = []
    for seed in (0, 1):
        agent = modelrl.make_agent("q-learning", env="FrozenLake-v1", seed=seed)
        # the env evaluate() would make, recording seeds
        agent.loop.eval_env = modelrl.envs.make_env("FrozenLake-v1")
        reset = agent.loop.eval_env.reset
        agent.loop.eval_env.reset = (
            lambda seed=None, reset=reset, **kw: (seen.append(seed), reset(seed=seed, **kw))[1])
        for _ in range(12):
            agent.evaluate(2, max_steps=5)
    assert len(seen) == 48 and len(set(seen)) == 48
