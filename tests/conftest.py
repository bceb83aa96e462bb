import importlib.util

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import modelrl  # registers modelrl's envs

# One thread: `make test` runs one test process per core, and torch's default of one thread per core in each
# was ten times slower on a loaded 2-core machine.
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


MUJOCO_ENVS = ("InvertedPendulum", "Hopper", "HalfCheetah", "Walker2d", "Reacher", "Ant-", "Humanoid")


def _mujoco_installed() -> bool:
    try:
        import mujoco  # noqa: F401
    except ImportError:
        return False
    return True


def _dm_control_installed() -> bool:
    # Found, not imported: importing dm_control picks its OpenGL backend, which the DMC envs choose.
    return importlib.util.find_spec("dm_control") is not None


def pytest_collection_modifyitems(config, items):
    """MuJoCo and the DeepMind Control Suite are optional extras: without them, the tests that need them are
    skipped, not failed."""
    if not _mujoco_installed():
        skip = pytest.mark.skip(reason="needs MuJoCo: pip install 'modelrl[mujoco]'")
        for item in items:
            if item.get_closest_marker("mujoco") or any(env in item.nodeid for env in MUJOCO_ENVS):
                item.add_marker(skip)
    if not _dm_control_installed():
        skip = pytest.mark.skip(reason="needs dm_control: pip install 'modelrl[dmc]'")
        for item in items:
            if item.get_closest_marker("dmc"):
                item.add_marker(skip)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
