import importlib.util

import gymnasium as gym
import numpy as np
import pytest

from modelrl.checkpoint import load_checkpoint, save_checkpoint
from modelrl.cli import main
from modelrl.envs import make_env, resolve_env_id, restore_env, save_env_state
from modelrl.envs.pixels import PixelObservation, resize_frame
from modelrl.errors import UnknownEnvError

FRAME = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)


def test_a_pixel_id_resolves_once_and_gymnasium_then_makes_it():
    assert resolve_env_id("pixels/DynaMaze-v0") == "pixels/DynaMaze-v0"
    env = gym.make("pixels/DynaMaze-v0")
    assert env.observation_space == FRAME and env.action_space == gym.spaces.Discrete(4)
    first, _ = env.reset(seed=0)
    assert first.shape == (64, 64, 3) and first.dtype == np.uint8 and FRAME.contains(first)
    moved, reward, terminated, truncated, _ = env.step(0)  # up, from the start cell two rows below the top
    assert not np.array_equal(moved, first) and reward == 0.0 and not terminated and not truncated
    assert make_env("pixels/DynaMaze-v0", size=32).reset(seed=0)[0].shape == (32, 32, 3)


def test_a_pixel_env_keeps_its_base_envs_time_limit():
    resolve_env_id("pixels/GridWorld-v0")
    assert gym.spec("pixels/GridWorld-v0").max_episode_steps is None  # as GridWorld's own
    env = make_env("pixels/GridWorld-v0", max_episode_steps=3)
    env.reset(seed=0)
    assert [env.step(3)[3] for _ in range(3)] == [False, False, True]


@pytest.mark.skipif(importlib.util.find_spec("pygame") is None,
                    reason="Pendulum-v1 renders with pygame: pip install 'gymnasium[classic-control]'")
def test_pendulum_through_its_frames():
    assert resolve_env_id("pixels/Pendulum-v1") == "pixels/Pendulum-v1"
    env = gym.make("pixels/Pendulum-v1")
    assert env.spec.max_episode_steps == 200 and env.observation_space == FRAME
    first, _ = env.reset(seed=0)
    assert first.shape == (64, 64, 3) and first.dtype == np.uint8
    for _ in range(5):
        frame, *_ = env.step(np.array([2.0], np.float32))
    assert not np.array_equal(frame, first)


def test_unknown_or_unrenderable_base_envs_are_one_line_errors(capsys):
    with pytest.raises(UnknownEnvError, match=r"^unknown environment 'NoSuchEnv-v0'"):
        resolve_env_id("pixels/NoSuchEnv-v0")
    assert "pixels/NoSuchEnv-v0" not in gym.registry
    capsys.readouterr()
    assert main(["train", "dqn", "--env", "pixels/NoSuchEnv-v0", "--steps", "10"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("modelrl: error: unknown environment 'NoSuchEnv-v0'")
    with pytest.raises(UnknownEnvError, match="pixels/ takes an id without a namespace"):
        resolve_env_id("pixels/modelrl/DynaMaze-v0")
    with pytest.raises(UnknownEnvError, match="ContinuousCartPole has no render modes"):
        make_env("pixels/ContinuousCartPole-v0")


def test_the_wrapper_needs_an_env_rendering_rgb_frames():
    with pytest.raises(ValueError, match="render_mode='rgb_array'"):
        PixelObservation(gym.make("modelrl/DynaMaze-v0", render_mode="ansi"))


def test_an_episode_through_the_frames_is_restored_from_its_plain_snapshot(tmp_path):
    env = make_env("pixels/BlockingMaze-v0", change_at=40)
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(30):
        env.step(env.action_space.sample())
    save_checkpoint(tmp_path / "env.pt", {"env": save_env_state(env)})
    restored = make_env("pixels/BlockingMaze-v0", change_at=40)
    assert restore_env(restored, load_checkpoint(tmp_path / "env.pt")["env"])
    for _ in range(30):  # past the change of walls at 40 lifetime steps
        ahead, behind = env.step(env.action_space.sample()), restored.step(restored.action_space.sample())
        for x, y in zip(ahead, behind, strict=True):
            np.testing.assert_array_equal(x, y)


def test_frames_shrink_by_averaging():
    frame = np.zeros((500, 300, 4), np.uint8)  # RGBA, not square
    frame[:, 150, :] = 255  # a line one pixel wide
    small = resize_frame(frame, 64)
    assert small.shape == (64, 64, 3) and small.dtype == np.uint8
    assert 0 < small[:, 32, 0].min() < 255  # seen, at a fraction of its brightness
    same = np.arange(64 * 64 * 3, dtype=np.uint8).reshape(64, 64, 3)
    np.testing.assert_array_equal(resize_frame(same, 64), same)
