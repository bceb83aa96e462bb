import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from modelrl.envs import make_env
from modelrl.envs.grid import GridMazeEnv, parse_layout
from modelrl.errors import UnknownEnvError

GRID_IDS = ["modelrl/GridWorld-v0", "modelrl/DynaMaze-v0", "modelrl/BlockingMaze-v0",
            "modelrl/ShortcutMaze-v0"]


@pytest.mark.parametrize("env_id", GRID_IDS)
def test_registered_envs_pass_gymnasium_checker(env_id):
    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    obs, reward, terminated, truncated, _info = env.step(0)
    assert isinstance(reward, float) and terminated is False and truncated is False


def test_shortest_paths_match_the_book():
    assert make_env("DynaMaze-v0").unwrapped.shortest_path_length() == 14  # Figure 8.2's optimal path
    assert make_env("GridWorld-v0").unwrapped.shortest_path_length() == 8
    assert make_env("DynaMaze-v0", scale=2).unwrapped.shortest_path_length() == 28


def test_maze_layouts_match_the_book():
    """Figures 8.2, 8.4 and 8.5: wall cells (row, col) from the top left, before and after the change."""
    def walls(env):
        return {(int(r), int(c)) for r, c in np.argwhere(env.walls)}

    dyna = make_env("DynaMaze-v0").unwrapped
    assert walls(dyna) == {(1, 2), (2, 2), (3, 2), (4, 5), (0, 7), (1, 7), (2, 7)}
    assert (dyna.start, dyna.goal) == ((2, 0), (0, 8))
    for env_id, before, after in [("BlockingMaze-v0", range(8), range(1, 9)),
                                  ("ShortcutMaze-v0", range(1, 9), range(1, 8))]:
        env = make_env(env_id).unwrapped
        assert (env.start, env.goal, walls(env)) == ((5, 3), (0, 8), {(3, c) for c in before})
        env.lifetime_steps = env.change_at
        assert walls(env) == {(3, c) for c in after}


def test_gridworld_rewards_and_termination():
    env = make_env("GridWorld-v0").unwrapped
    env.reset(seed=0)
    # right x4, down x4 reaches (4, 4): seven steps of -1, then +100 on entering the goal
    rewards = [env.step(a)[1] for a in [3, 3, 3, 3, 1, 1, 1]]
    assert rewards == [-1.0] * 7
    obs, reward, terminated, _, info = env.step(1)
    assert (reward, terminated, info["position"], obs) == (100.0, True, (4, 4), 24)


def test_walls_and_edges_leave_the_agent_in_place():
    env = make_env("DynaMaze-v0").unwrapped
    obs, _ = env.reset()
    assert env.step(2)[0] == obs  # left edge
    env.step(3)  # to (2, 1); (2, 2) is a wall
    assert env.step(3)[2] is False and env.position == (2, 1)


@pytest.mark.parametrize("env_id,change_at", [("BlockingMaze-v0", 1000), ("ShortcutMaze-v0", 3000)])
def test_changing_mazes_switch_walls_after_lifetime_steps(env_id, change_at):
    env = make_env(env_id, change_at=5).unwrapped
    before = env.shortest_path_length()
    env.reset()
    for _ in range(4):
        env.step(0)
    assert env.walls is env._walls  # still the first layout after change_at - 1 steps
    env.step(0)
    env.reset()  # a reset does not restart the clock
    after = env.shortest_path_length()
    assert (before, after) == ((10, 16) if env_id == "BlockingMaze-v0" else (16, 10))
    assert make_env(env_id).unwrapped.change_at == change_at


def test_render_modes():
    env = make_env("DynaMaze-v0", render_mode="ansi")
    env.reset()
    text = env.render()
    assert text.splitlines()[2].startswith("A") and "G" in text.splitlines()[0]
    env = make_env("DynaMaze-v0", render_mode="rgb_array")
    env.reset()
    image = env.render()
    assert image.shape == (6 * 16, 9 * 16, 3) and image.dtype == np.uint8


def test_bad_env_input_raises_clear_errors():
    with pytest.raises(UnknownEnvError, match="unknown environment 'DynaMze-v0'; did you mean"):
        make_env("DynaMze-v0")
    with pytest.raises(UnknownEnvError, match="rejected its arguments"):
        make_env("DynaMaze-v0", no_such_argument=1)
    for change_at in (-5, 2.5, True):
        with pytest.raises(UnknownEnvError, match="change_at must be an integer >= 0"):
            make_env("BlockingMaze-v0", change_at=change_at)
    env = make_env("DynaMaze-v0").unwrapped
    env.reset()
    with pytest.raises(ValueError, match="action must be an integer"):
        env.step(True)
    with pytest.raises(ValueError, match="exactly one 'S'"):
        parse_layout(("..G",))
    with pytest.raises(ValueError, match="render_mode"):
        GridMazeEnv(render_mode="human")
