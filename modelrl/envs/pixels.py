"""Any env observed through its rendered frames: what a world model that learns from images (PlaNet,
Dreamer) needs of envs that give it states.

`pixels/<id>` (resolved by `modelrl.envs.resolve_env_id`, after which `gymnasium.make` takes it) makes the
env `<id>` with `render_mode="rgb_array"` and observes each frame it renders after a reset or a step,
resized to `size` x `size` (64 by default) uint8 RGB, height x width x channel. Frames that are not square
are stretched to the square. The env keeps its own time limit, rewards and ends.
"""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from PIL import Image

from modelrl.errors import UnknownEnvError

DEFAULT_SIZE = 64


def resize_frame(frame: np.ndarray, size: int) -> np.ndarray:
    """An RGB frame resized to `size` x `size`; bilinear, which averages over the pixels each output pixel
    covers when shrinking, so thin lines do not flicker in and out as they move."""
    frame = np.ascontiguousarray(frame[..., :3], dtype=np.uint8)
    if frame.shape[:2] == (size, size):
        return frame
    return np.asarray(Image.fromarray(frame).resize((size, size), Image.Resampling.BILINEAR))


class PixelObservation(gym.ObservationWrapper):
    """Replaces `env`'s observations by its rendered frames; `env` renders with `render_mode="rgb_array"`."""

    def __init__(self, env: gym.Env, size: int = DEFAULT_SIZE):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a whole number >= 1, got {size!r}")
        if env.render_mode != "rgb_array":
            raise ValueError("pixel observations need an env rendering RGB frames "
                             f"(render_mode='rgb_array'), not render_mode={env.render_mode!r}")
        super().__init__(env)
        self.size = size
        self.observation_space = spaces.Box(0, 255, (size, size, 3), dtype=np.uint8)

    def observation(self, observation) -> np.ndarray:
        return resize_frame(self.env.render(), self.size)


def make_pixel_env(env_id: str, *, size: int = DEFAULT_SIZE, render_mode: str | None = None,
                   **kwargs) -> gym.Env:
    """The entry point of `pixels/<env_id>`: `kwargs` go to the env `env_id`, whose time limit the
    registration of `pixels/<env_id>` applies outside the frames. `render()` gives its full-size frames."""
    if render_mode not in (None, "rgb_array"):
        raise ValueError(f"pixels/{env_id} renders only 'rgb_array' frames, not render_mode={render_mode!r}")
    # pygame's classic-control envs draw off screen; without a display, SDL would complain on stderr
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    env = gym.make(env_id, render_mode="rgb_array", max_episode_steps=-1, disable_env_checker=True, **kwargs)
    if env.render_mode != "rgb_array":
        env.close()
        raise UnknownEnvError(f"environment 'pixels/{env_id}' observes the frames '{env_id}' renders, "
                              "and it renders none (no render_mode 'rgb_array')")
    return PixelObservation(env, size)
