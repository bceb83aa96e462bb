"""The loop that owns the envs: several envs stepped together, env instances, info and recurrent state."""

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import modelrl
from modelrl.agents.base import Agent
from modelrl.errors import CheckpointError, ConfigError


def test_several_envs_are_stepped_together_and_learn():
    agent = modelrl.make_agent("q-learning", env="GridWorld-v0", seed=0, num_envs=3)
    history = agent.learn(1500, eval_every=300, eval_episodes=1)
    # One step of each env per loop step, except an env resetting after its episode: the loop stops at the
    # first loop step reaching 1,500, up to num_envs - 1 past it.
    assert 1500 <= agent.env_steps < 1503 and len(history) == 5
    assert agent.episodes >= 6 and history[-1]["eval_return"] == 93  # the optimal return
    lengths = [slot.episode_length for slot in agent.loop.slots]
    assert len(set(lengths)) > 1  # each env keeps its own episode


def test_a_vector_run_resumes_as_if_never_stopped(tmp_path):
    whole = modelrl.make_agent("dyna-q", env="FrozenLake-v1", seed=2, num_envs=2)
    whole.learn(600)
    first = modelrl.make_agent("dyna-q", env="FrozenLake-v1", seed=2, num_envs=2)
    first.learn(301)
    assert any(slot.obs is not None for slot in first.loop.slots)  # episodes in progress go in the checkpoint
    resumed = modelrl.load(first.save(tmp_path / "vector.pt"))
    assert resumed.num_envs == 2 and resumed.env_steps == first.env_steps
    resumed.learn(600 - resumed.env_steps)
    assert resumed.env_steps == whole.env_steps
    np.testing.assert_array_equal(whole.q, resumed.q)
    assert whole.episode_lengths == resumed.episode_lengths


def test_dqn_learns_with_several_envs():
    agent = modelrl.make_agent("dqn", env="CartPole-v1", seed=0, num_envs=4, learning_starts=200,
                               train_freq=16, gradient_steps=4, hidden_size=32)
    agent.learn(1000)
    assert 1000 <= agent.env_steps < 1004
    assert agent.learner.updates == 4 * len(range(208, agent.env_steps + 1, 16))  # bursts at every 16th step
    assert len(agent.buffer) == agent.env_steps


def test_planners_learn_with_one_env_at_a_time():
    with pytest.raises(ConfigError, match="mpc keeps per-episode state of its own.*num_envs must be 1"):
        modelrl.make_agent("mpc", env="Pendulum-v1", num_envs=2)


def test_an_env_instance_trains_evaluates_on_a_copy_and_must_be_given_again_to_load(tmp_path):
    env = gym.make("FrozenLake-v1", is_slippery=False)
    agent = modelrl.make_agent("q-learning", env=env, seed=0)
    assert agent.env is env and agent.env_id == "FrozenLake-v1"
    agent.learn(2000, eval_every=1000, eval_episodes=2)
    assert agent.loop.eval_env is not env and agent.evaluate(2)["eval_return"] == 1.0

    from gymnasium.envs.toy_text import FrozenLakeEnv

    unnamed = FrozenLakeEnv(is_slippery=False)  # not made from the registry: no id to save
    path = modelrl.make_agent("q-learning", env=unnamed, seed=0).save(tmp_path / "instance.pt")
    with pytest.raises(CheckpointError, match=r"trained on an env instance.*modelrl.load\(path, env=...\)"):
        modelrl.load(path)
    assert modelrl.load(path, env=FrozenLakeEnv(is_slippery=False)).env_steps == 0


class MaskedChain(gym.Env):
    """Four states in a row, the last one terminal; info says which actions are legal (not left at 0)."""

    observation_space = spaces.Discrete(4)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = 0
        return self.state, {"legal": np.array([False, True])}

    def step(self, action):
        self.state = min(3, self.state + 1) if action == 1 else max(0, self.state - 1)
        done = self.state == 3
        return self.state, float(done), done, False, {"legal": np.array([self.state > 0, True])}


@dataclass
class CountingConfig:
    lr: float = 0.1  # unused


class StepCounter(Agent):
    """A stateful agent: its state counts the steps of the episode; it records what it was given."""

    agent_id = "test-step-counter"
    config_class = CountingConfig

    def __init__(self, *args, **kwargs):
        self.seen = []
        super().__init__(*args, **kwargs)

    def act(self, obs, deterministic=False):
        raise AssertionError("a stateful agent acts through policy()")

    def initial_state(self):
        return 0

    def policy(self, obs, state, info, deterministic=False):
        self.seen.append((deterministic, int(obs), state, info["legal"].tolist()))
        return 1, state + 1  # always right: legal everywhere

    def observe(self, obs, action, reward, next_obs, terminated, truncated, info=None):
        assert "legal" in info

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def test_info_and_the_recurrent_state_reach_the_policy_and_restart_with_each_episode():
    agent = StepCounter(MaskedChain(), seed=0)
    agent.learn(6, eval_every=6, eval_episodes=1)
    training = [seen for seen in agent.seen if not seen[0]]
    evaluation = [seen for seen in agent.seen if seen[0]]
    # two episodes of three steps: the state counts 0, 1, 2 and restarts; info comes from reset, then steps
    assert [(obs, state) for _, obs, state, _ in training] == [(0, 0), (1, 1), (2, 2)] * 2
    assert [legal for *_, legal in training[:3]] == [[False, True], [True, True], [True, True]]
    assert [(obs, state) for _, obs, state, _ in evaluation] == [(0, 0), (1, 1), (2, 2)]


class Frames(gym.Env):
    """Image observations (8 x 8 RGB frames, uint8) that show the step count; 5-step episodes."""

    observation_space = spaces.Box(0, 255, (8, 8, 3), np.uint8)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros((8, 8, 3), np.uint8), {}

    def step(self, action):
        self.t += 1
        return np.full((8, 8, 3), self.t, np.uint8), 1.0, self.t == 5, False, {}


class FrameCounter(StepCounter):
    agent_id = "test-frame-counter"

    def policy(self, obs, state, info, deterministic=False):
        self.seen.append((obs.shape, obs.dtype, int(obs[0, 0, 0]), state))
        return 0, state + 1

    def observe(self, obs, action, reward, next_obs, terminated, truncated, info=None):
        pass


def test_image_observations_pass_through_and_resume_mid_episode(tmp_path):
    agent = FrameCounter(Frames(), seed=0)
    agent.learn(7)
    assert agent.seen[0] == ((8, 8, 3), np.uint8, 0, 0) and agent.seen[-1][2:] == (1, 1)
    assert agent.loop.slots[0].obs.dtype == np.uint8 and agent.loop.slots[0].state == 2
    resumed = FrameCounter.load(agent.save(tmp_path / "frames.pt"), env=Frames())
    resumed.learn(1)
    assert resumed.seen == [((8, 8, 3), np.uint8, 2, 2)]  # the frame and the state it stopped at
