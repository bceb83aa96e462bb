"""DrQ: SAC from stacked, randomly shifted frames."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import modelrl
from modelrl.agents.drq import DrQConfig, DrQLearner, stack_pixels
from modelrl.buffers import EpisodeStreams
from modelrl.errors import ConfigError, IncompatibleEnvError

# A small DrQ for CPU tests: Dreamer's encoder at depth 4, narrow MLPs, one shifted copy each side.
SMALL_DRQ = {"depth": 4, "features": 16, "hidden_size": 64, "batch_size": 32, "augment_q": 1,
             "augment_target": 1, "learning_starts": 100, "device": "cpu"}


class BarReaching(gym.Env):
    """A target in [-1, 1] shown as a white vertical bar at its column of a 64 x 64 frame; an action pays
    1 - |action - target|. Episodes of 20 steps: a random policy earns about 7, always acting 0 earns 10,
    reading the bar's place earns 20."""

    def __init__(self):
        self.observation_space = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def _show(self):
        self.target = float(self.np_random.uniform(-1, 1))
        frame = np.zeros((64, 64, 3), np.uint8)
        column = round((self.target + 1) / 2 * 55) + 4
        frame[:, column - 2 : column + 2] = 255
        return frame

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.steps = 0
        return self._show(), {}

    def step(self, action):
        reward = 1.0 - abs(float(np.asarray(action)[0]) - self.target)
        self.steps += 1
        return self._show(), reward, False, self.steps >= 20, {}


def frame(value: int) -> np.ndarray:
    return np.full((64, 64, 3), value, np.uint8)


def test_stacks_are_the_last_frames_of_their_own_episode():
    """Frames numbered by step: a stack holds its step's last 3 frames, an episode's first repeated where
    it has fewer, and never a frame of the episode before; next_obs is the stack one step on."""
    streams = EpisodeStreams(1, 100, (64, 64, 3), 1, np.uint8)
    value = 0
    for length in (5, 2):  # two episodes: frames 0-5, then 6-8
        for step in range(length):
            streams.add(0, frame(value), np.array([0.1 * value], np.float32), float(value), frame(value + 1),
                        False, step == length - 1)
            value += 1
        value += 1
    batch = streams.buffers[0].sample_stacked(200, 3, np.random.default_rng(0))
    stacks = {tuple(obs[:, 0, 0, 0]) + tuple(nxt[:, 0, 0, 0])
              for obs, nxt in zip(batch["obs"], batch["next_obs"], strict=True)}
    assert stacks == {(0, 0, 0, 0, 0, 1), (0, 0, 1, 0, 1, 2), (0, 1, 2, 1, 2, 3), (1, 2, 3, 2, 3, 4),
                      (2, 3, 4, 3, 4, 5), (6, 6, 6, 6, 6, 7), (6, 6, 7, 6, 7, 8)}
    # the action, reward and end of each transition are those of the step into next_obs's newest frame
    newest = batch["next_obs"][:, -1, 0, 0, 0]
    np.testing.assert_allclose(batch["reward"], newest - 1)
    np.testing.assert_allclose(batch["action"][:, 0], 0.1 * (newest - 1), rtol=1e-6)
    assert not batch["terminated"].any()


def test_shifts_move_the_whole_stack_by_at_most_the_pad_and_replicate_edges():
    config = DrQConfig(**{**SMALL_DRQ, "image_pad": 4})
    learner = DrQLearner(2, 1, config, torch.device("cpu"), torch.Generator().manual_seed(0))
    stacks = torch.zeros(50, 2, 64, 64, 3, dtype=torch.uint8)
    stacks[:, :, 30, 20] = 255  # one white pixel, in both frames
    stacks[:, :, :, 0] = 100  # a grey left edge
    shifted = learner.shifted(stacks, copies=2)
    assert shifted.shape == (100, 6, 64, 64)
    white = (shifted > 0.4).nonzero()
    rows, cols = white[:, 2].view(100, 6), white[:, 3].view(100, 6)  # one white pixel per channel
    assert (rows == rows[:, :1]).all() and (cols == cols[:, :1]).all()  # both frames moved alike
    assert (rows - 30).abs().max() <= 4 and (cols - 20).abs().max() <= 4
    assert len({(int(r), int(c)) for r, c in zip(rows[:, 0], cols[:, 0], strict=True)}) > 20
    # content moved right: the grey edge column is repeated into the columns it left; moved left: it is gone
    grey = ((shifted > -0.2) & (shifted < 0.4)).all(2).all(1)  # (N, 64): columns grey in every row, channel
    for moved, edge in zip((cols[:, 0] - 20).tolist(), grey, strict=True):
        grey_columns = max(moved, 0) + 1
        assert edge[:grey_columns].all() == (moved >= 0) and not edge[grey_columns:].any()
    unshifted = DrQLearner(2, 1, DrQConfig(**{**SMALL_DRQ, "image_pad": 0}), torch.device("cpu"),
                           torch.Generator().manual_seed(0))
    assert torch.equal(unshifted.shifted(stacks, copies=1), stack_pixels(stacks))


def test_drq_learns_to_read_a_target_from_pixels():
    """The encoder, trained by the critics' loss on shifted stacks, finds the bar: from the untrained
    policy's return (evaluated before the first update) to near the best, 20."""
    agent = modelrl.make_agent("drq", env=BarReaching(), seed=0, **{**SMALL_DRQ, "learning_starts": 200},
                               gamma=0.5)
    history = agent.learn(750, eval_every=150, eval_episodes=10)
    returns = [row["eval_return"] for row in history]
    # seed 0 (2026-12-06): 10.1 and 10.3 at 150 and 300 steps, then 18.2 / 19.1 / 18.6 at 450-750
    assert returns[0] < 13 and min(returns[-2:]) >= 17, returns


def test_drq_resumes_exactly_frame_stack_included(tmp_path):
    agent = modelrl.make_agent("drq", env="pixels/Pendulum-v1", seed=1, **{**SMALL_DRQ, "learning_starts": 30,
                                                                           "batch_size": 8})
    agent.learn(45)
    assert agent.learner.updates > 0 and agent.loop.slots[0].state is not None  # mid-episode, a stack held
    agent.save(tmp_path / "drq.pt")
    resumed = modelrl.load(tmp_path / "drq.pt")
    first = agent.learn(total_steps=20, eval_every=10, eval_episodes=1)
    second = resumed.learn(total_steps=20, eval_every=10, eval_episodes=1)
    assert first == [{**row, "wall_time": first[i]["wall_time"]} for i, row in enumerate(second)]


def test_drq_refuses_what_it_cannot_read_or_run():
    with pytest.raises(IncompatibleEnvError, match="64 x 64 RGB frames"):
        modelrl.make_agent("drq", env="Pendulum-v1")
    with pytest.raises(ConfigError, match="compile=True is not supported"):
        modelrl.make_agent("drq", env=BarReaching(), compile=True)
    with pytest.raises(ConfigError, match="frame_stack"):
        modelrl.make_agent("drq", env=BarReaching(), frame_stack=0)
