"""An env whose process dies once, for the sweep's fault tests: `faulty_env:DieOnce-v0`.

It is GridWorld-v0, except that the first process to reach `die_at` env steps (over all its DieOnce envs,
training and evaluation) while `marker` does not exist creates the marker and exits at once (os._exit, as a
killed worker would), leaving no chance to clean up.
"""

import os
from pathlib import Path

import gymnasium as gym

import modelrl  # noqa: F401  registers GridWorld-v0


class DieOnce(gym.Wrapper):
    steps_in_process = 0

    def __init__(self, env, marker: str, die_at: int):
        super().__init__(env)
        self.marker, self.die_at = marker, die_at  # plain data, so a checkpoint keeps the episode

    def step(self, action):
        DieOnce.steps_in_process += 1
        if DieOnce.steps_in_process == self.die_at and not os.path.exists(self.marker):
            Path(self.marker).touch()
            os._exit(1)
        return self.env.step(action)


def make(marker: str = "", die_at: int = 0, render_mode=None):
    return DieOnce(gym.make("modelrl/GridWorld-v0", render_mode=render_mode), marker, die_at)


if "DieOnce-v0" not in gym.registry:
    gym.register(id="DieOnce-v0", entry_point=make)
