"""Every deep agent learns, at a tiny configuration that runs in seconds: the return of its greedy policy
rises from a random policy's to well above it, held over two consecutive evaluations (one lucky evaluation
is not learning). ContinuousCartPole-v0 and CartPole-v1 pay +1 a step for up to 200 and 500 steps; a
random policy balances for 10-40."""

import pytest

import modelrl

# Small networks and few updates, so each run takes seconds on one thread.
SMALL_SAC = {"hidden_size": 64, "batch_size": 64, "learning_starts": 200}
SMALL_DQN = {"hidden_size": 64, "learning_starts": 1000, "train_freq": 16, "gradient_steps": 16,
             "exploration_steps": 5000, "target_update_interval": 200, "lr": 1e-3, "buffer_size": 20_000}
SMALL_MODEL = {"ensemble_size": 4, "num_elites": 3, "model_hidden_size": 64, "model_layers": 2}


def held(history: list[dict], evaluations: int = 2) -> float:
    """The best mean eval return held over `evaluations` consecutive evaluations."""
    returns = [row["eval_return"] for row in history]
    return max(sum(returns[i : i + evaluations]) / evaluations for i in range(len(returns) - evaluations + 1))


def learns(agent_id: str, env: str, steps: int, eval_every: int, **config) -> tuple[float, float]:
    agent = modelrl.make_agent(agent_id, env=env, seed=0, **config)
    history = agent.learn(steps, eval_every=eval_every, eval_episodes=10)
    return history[0]["eval_return"], held(history)


def test_sac_learns_to_balance_the_continuous_cartpole():
    first, best = learns("sac", "ContinuousCartPole-v0", 5000, 500, **SMALL_SAC)
    assert first < 80 and best >= 150, (first, best)


def test_mbpo_learns_the_continuous_cartpole_in_a_fraction_of_sacs_steps():
    first, best = learns("mbpo", "ContinuousCartPole-v0", 1000, 250, **SMALL_SAC, **SMALL_MODEL,
                         updates_per_step=5, model_max_epochs=50, model_train_every=100, rollouts_per_step=20,
                         epoch_length=100)
    assert first < 80 and best >= 100, (first, best)


def test_dqn_learns_to_balance_the_cartpole():
    first, best = learns("dqn", "CartPole-v1", 12_000, 1000, **SMALL_DQN)
    assert first < 40 and best >= 150, (first, best)


def test_deep_dyna_q_learns_to_balance_the_cartpole():
    first, best = learns("deep-dyna-q", "CartPole-v1", 8000, 1000, **SMALL_DQN, **SMALL_MODEL,
                         planning_steps=2, model_max_epochs=20, model_train_every=1000)
    assert first < 40 and best >= 80, (first, best)


@pytest.mark.slow
def test_sac_learns_pendulum_at_its_paper_defaults():
    agent = modelrl.make_agent("sac", env="Pendulum-v1", seed=0)
    history = agent.learn(total_steps=5000, eval_every=1000, eval_episodes=10)
    assert history[0]["eval_return"] < -900 and held(history) > -300


@pytest.mark.slow
def test_dqn_learns_cartpole_at_its_default_config():
    agent = modelrl.make_agent("dqn", env="CartPole-v1", seed=0)
    history = agent.learn(total_steps=40_000, eval_every=2000, eval_episodes=10)
    assert history[0]["eval_return"] < 300 and held(history) >= 475
