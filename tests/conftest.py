import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import modelrl  # registers modelrl's envs

# One thread: tests run one at a time on small machines, where torch's default of one per core was ten times
# slower on a loaded 2-core machine.
modelrl.set_threads(1)


class NaNRewardEnv(gym.Env):
    """A two-state chain whose reward is NaN: a tabular agent's table must be caught going bad."""

    observation_space = spaces.Discrete(2)
    action_space = spaces.Discrete(2)

    def __init__(self, render_mode=None):
        self.render_mode = render_mode

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return 0, {}

    def step(self, action):
        return 1, float("nan"), True, False, {}


if "test/NaNReward-v0" not in gym.registry:
    gym.register(id="test/NaNReward-v0", entry_point=NaNRewardEnv)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
