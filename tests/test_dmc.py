import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stepping import run

import modelrl
from modelrl.checkpoint import load_checkpoint, save_checkpoint
from modelrl.cli import main
from modelrl.envs import make_env, restore_env, save_env_state
from modelrl.envs.dmc import BENCHMARKING_TASKS, REGISTERED_TASKS, dmc_env_id
from modelrl.errors import UnknownEnvError

dmc = pytest.mark.dmc


@dmc
def test_the_registered_tasks_are_dm_controls_benchmarking_list_and_the_quadrupeds():
    make_env("dmc/cartpole-swingup-v0")  # first, so that dm_control is imported as the envs import it
    from dm_control import suite

    assert BENCHMARKING_TASKS == tuple(suite.BENCHMARKING)
    assert set(REGISTERED_TASKS) - set(BENCHMARKING_TASKS) == {("quadruped", "walk"), ("quadruped", "run")}
    for domain, task in REGISTERED_TASKS:
        for pixels in (False, True):
            assert gym.spec(dmc_env_id(domain, task, pixels)).max_episode_steps is None  # the suite ends them
    assert dmc_env_id("ball_in_cup", "catch") == "dmc/ball-in-cup-catch-v0"
    assert dmc_env_id("cartpole", "swingup", pixels=True) == "dmc/cartpole-swingup-pixels-v0"


def test_importing_modelrl_registers_the_ids_without_importing_dm_control():
    check = ("import sys, gymnasium, modelrl; assert 'dmc/walker-walk-pixels-v0' in gymnasium.registry; "
             "assert 'dm_control' not in sys.modules, 'imported'")
    subprocess.run([sys.executable, "-c", check], check=True)


@dmc
@pytest.mark.filterwarnings("ignore:.*Box observation space m.*infinity")  # as joint velocities have
def test_joint_state_observations_and_actions():
    env = make_env("dmc/walker-walk-v0")
    check_env(env.unwrapped, skip_render_check=True)  # spaces, and seeded resets that repeat
    assert env.observation_space == gym.spaces.Box(-np.inf, np.inf, (24,), np.float32)  # 14 + 1 + 9
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (6,), np.float32)
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.float32 and env.observation_space.contains(obs) and info == {}
    obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
    assert obs.shape == (24,) and isinstance(reward, float) and 0.0 <= reward <= 2.0
    assert terminated is False and truncated is False


@dmc
def test_pixel_observations_are_frames_that_follow_the_state():
    env = make_env("dmc/cartpole-swingup-pixels-v0", render_mode="rgb_array")
    assert env.observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    first, _ = env.reset(seed=0)
    assert first.shape == (64, 64, 3) and first.dtype == np.uint8 and env.observation_space.contains(first)
    np.testing.assert_array_equal(env.render(), first)  # the same camera, the same size by default
    frame = first
    for _ in range(10):
        frame, *_ = env.step(np.ones(1, np.float32))  # the cart runs right
    assert np.abs(frame.astype(int) - first).sum() > 64 * 64  # many pixels changed, not a few
    small = make_env("dmc/cartpole-swingup-pixels-v0", size=32)
    assert small.reset(seed=0)[0].shape == (32, 32, 3) and small.observation_space.shape == (32, 32, 3)


@dmc
def test_seeded_resets_repeat_and_unseeded_ones_continue_the_stream():
    env = make_env("dmc/cartpole-swingup-v0")
    first = env.reset(seed=3)[0]
    second = env.reset()[0]
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(env.reset(seed=3)[0], first)
    np.testing.assert_array_equal(env.reset()[0], second)
    assert not np.array_equal(make_env("dmc/cartpole-swingup-v0").reset(seed=4)[0], first)
    assert env.reset(seed=2**40)[0].shape == (5,)  # Gymnasium's seeds may be larger than NumPy's legacy ones
    from dm_control import suite  # below 2**32, the episodes dm_control's own seeding starts

    own = suite.load("cartpole", "swingup", task_kwargs={"random": 3}).reset().observation
    np.testing.assert_array_equal(first, np.concatenate([own["position"], own["velocity"]], dtype=np.float32))
    pixels = make_env("dmc/reacher-easy-pixels-v0")  # the target's place is drawn from the seed too
    frames = [pixels.reset(seed=seed)[0] for seed in (0, 0, 1)]
    np.testing.assert_array_equal(frames[0], frames[1])
    assert not np.array_equal(frames[0], frames[2])


@dmc
def test_an_action_repeated_twice_earns_the_two_steps_rewards():
    once, twice = make_env("dmc/walker-walk-v0", action_repeat=1), make_env("dmc/walker-walk-v0")
    np.testing.assert_array_equal(once.reset(seed=0)[0], twice.reset(seed=0)[0])
    rng = np.random.default_rng(0)
    for _ in range(5):
        action = rng.uniform(-1, 1, 6).astype(np.float32)
        first, second = once.step(action), once.step(action)
        repeated = twice.step(action)
        np.testing.assert_array_equal(repeated[0], second[0])
        assert repeated[1] == first[1] + second[1] and repeated[1] > 0


@dmc
@pytest.mark.parametrize("action_repeat, length", [(2, 500), (3, 334), (8, 125)])
def test_an_episode_is_the_suites_1000_steps_and_ends_truncated(action_repeat, length):
    env = make_env("dmc/cartpole-balance-v0", action_repeat=action_repeat)
    env.reset(seed=0)
    ends = []
    for _ in range(length):
        _, _, terminated, truncated, _ = env.step(np.zeros(1, np.float32))
        ends.append((terminated, truncated))
    assert ends[-1] == (False, True) and set(ends[:-1]) == {(False, False)}  # 1000 / 3: 333 steps and 1
    with pytest.raises(gym.error.ResetNeeded):
        env.step(np.zeros(1, np.float32))


@dmc
def test_an_evaluation_episode_runs_to_the_suites_end():
    agent = modelrl.make_agent("sac", env="dmc/cartpole-balance-v0", seed=0)
    assert agent.evaluate(episodes=1)["eval_length"] == 500


@dmc
def test_the_quadrupeds_actions_are_scaled_to_its_actuators_and_it_is_filmed_from_its_camera_2():
    env = make_env("dmc/quadruped-walk-v0")
    core = env.unwrapped
    assert core.camera_id == 2 and env.action_space == gym.spaces.Box(-1.0, 1.0, (12,), np.float32)
    env.reset(seed=0)
    env.step(np.ones(12, np.float32))
    np.testing.assert_allclose(core._dmc.physics.data.ctrl, core._dmc.action_spec().maximum)
    assert core._dmc.action_spec().maximum.max() > 1.0  # not [-1, 1], or this checks nothing


# After 37 random steps the snapshot is taken; the rest covers the episode's end and the next one's start.
# The reacher's target is placed in the model at each reset; the walker's feet touch the floor.
@dmc
@pytest.mark.parametrize("env_id, env_kwargs", [("dmc/reacher-easy-v0", {"action_repeat": 4}),
                                                ("dmc/walker-walk-v0", {"action_repeat": 8})])
def test_an_episode_restored_from_its_plain_snapshot_continues_exactly(tmp_path, env_id, env_kwargs):
    env = make_env(env_id, **env_kwargs)
    env.reset(seed=0)
    env.action_space.seed(0)
    run(env, 37)
    save_checkpoint(tmp_path / "env.pt", {"env": save_env_state(env)})
    restored = make_env(env_id, **env_kwargs)
    assert restore_env(restored, load_checkpoint(tmp_path / "env.pt")["env"])
    steps = 1000 // env_kwargs["action_repeat"] - 37 + 20
    ahead, behind = run(env, steps), run(restored, steps)  # actions drawn from each env's own action space
    assert [done for *_, done in ahead].count(True) == 1
    for a, b in zip(ahead, behind, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


@dmc
def test_a_pixel_episode_restored_from_its_snapshot_shows_the_same_frames():
    env = make_env("dmc/finger-turn-easy-pixels-v0")  # the goal is drawn in the model at each reset
    env.reset(seed=0)
    env.action_space.seed(0)
    run(env, 5)
    restored = make_env("dmc/finger-turn-easy-pixels-v0")
    restored.reset(seed=1)
    assert restore_env(restored, save_env_state(env))
    for a, b in zip(run(env, 5), run(restored, 5), strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


def test_without_dm_control_a_dmc_env_is_a_one_line_error_naming_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "dm_control", None)  # as if not installed: importing it fails
    with pytest.raises(UnknownEnvError, match=r"needs dm_control.*pip install 'modelrl\[dmc\]'"):
        make_env("dmc/cartpole-swingup-v0")
    capsys.readouterr()
    assert main(["train", "sac", "--env", "dmc/cartpole-swingup-v0", "--steps", "10",
                 "--run-dir", str(tmp_path / "run")]) == 2
    assert not (tmp_path / "run").exists()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "modelrl: error: environment 'dmc/cartpole-swingup-v0' needs dm_control, an optional part of "
        "modelrl: pip install 'modelrl[dmc]' ("), lines


@dmc
@pytest.mark.parametrize("task, action_repeat", [("swingup", 2), ("balance", 3)])
def test_the_batched_exact_model_returns_what_the_env_pays_for_each_sequence(task, action_repeat):
    import torch

    from modelrl.planning.env_copy import RolloutObjective

    env_id = f"dmc/cartpole-{task}-v0"
    env = make_env(env_id, action_repeat=action_repeat)
    obs, _ = env.reset(seed=4)
    rng = np.random.default_rng(0)
    for _ in range(30):  # away from the initial state, the pole swinging
        obs, *_ = env.step(rng.uniform(-1, 1, 1))
    sequences = rng.uniform(-1.2, 1.2, (6, 8, 1))  # outside the bounds too: the env clips them
    snapshot = env.unwrapped.get_plain_state()
    paid = []
    for sequence in sequences:
        env.unwrapped.set_plain_state(snapshot)
        paid.append(sum(env.step(action)[1] * 0.9**t for t, action in enumerate(sequence)))
    objective = RolloutObjective(env_id, {"action_repeat": action_repeat}, gamma=0.9)
    returns = objective(torch.as_tensor(obs), torch.as_tensor(sequences, dtype=torch.float32))
    np.testing.assert_allclose(returns.numpy(), paid, rtol=1e-5)
    assert np.ptp(paid) > 0.05 * np.max(paid) > 0  # the sequences differ in what they earn


@dmc
def test_mpc_plans_a_dmc_task_with_its_batched_exact_model_and_refuses_one_without():
    agent = modelrl.make_agent("mpc", env="dmc/cartpole-swingup-v0", population=50, iterations=2, horizon=10)
    assert type(agent.objective).__name__ == "RolloutObjective"
    # 150 env steps from the pole hanging down: random actions earn 2-7 (seeds 0-2), this planner 81
    assert agent.evaluate(1, max_steps=150)["eval_return"] > 40
    with pytest.raises(modelrl.errors.IncompatibleEnvError, match="no exact batched model is written for "
                                                                  "dmc/walker-walk-v0"):
        modelrl.make_agent("mpc", env="dmc/walker-walk-v0")
