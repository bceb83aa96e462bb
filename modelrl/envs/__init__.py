"""Environments: `make_env` with clear errors, and modelrl's own envs registered with Gymnasium.

Importing modelrl registers `modelrl/GridWorld-v0`, `modelrl/DynaMaze-v0`, `modelrl/BlockingMaze-v0`,
`modelrl/ShortcutMaze-v0` and `modelrl/ContinuousCartPole-v0`, so `gymnasium.make("modelrl/DynaMaze-v0")` works after `import modelrl`.
"""

from __future__ import annotations

import difflib
import pickle

import gymnasium as gym

from modelrl.errors import UnknownEnvError

_OWN_ENVS = {
    "modelrl/GridWorld-v0": "modelrl.envs.grid:make_grid_world",
    "modelrl/DynaMaze-v0": "modelrl.envs.grid:make_dyna_maze",
    "modelrl/BlockingMaze-v0": "modelrl.envs.grid:make_blocking_maze",
    "modelrl/ShortcutMaze-v0": "modelrl.envs.grid:make_shortcut_maze",
    "modelrl/ContinuousCartPole-v0": "modelrl.envs.cartpole:ContinuousCartPoleEnv",
}
# The mazes have no time limit (the book's studies count whole episodes however long they run);
# PETS's cart-pole trials are 200 steps.
_MAX_EPISODE_STEPS = {"modelrl/ContinuousCartPole-v0": 200}

for _env_id, _entry_point in _OWN_ENVS.items():
    if _env_id not in gym.registry:
        gym.register(id=_env_id, entry_point=_entry_point, max_episode_steps=_MAX_EPISODE_STEPS.get(_env_id))


def resolve_env_id(env_id: str) -> str:
    """Accept modelrl's own envs without their namespace ('DynaMaze-v0'); raise on an unknown id."""
    if env_id in gym.registry:
        return env_id
    if f"modelrl/{env_id}" in gym.registry:
        return f"modelrl/{env_id}"
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `modelrl list` shows the registered ids"
    raise UnknownEnvError(f"unknown environment '{env_id}'{hint}")


def make_env(env_id: str, *, render_mode: str | None = None, **kwargs) -> gym.Env:
    """`gymnasium.make` with modelrl's ids resolved and failures turned into one-line errors."""
    env_id = resolve_env_id(env_id)
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    try:
        return gym.make(env_id, **kwargs)
    except (TypeError, ValueError) as error:  # an unknown argument, or a known one's bad value
        raise UnknownEnvError(f"environment '{env_id}' rejected its arguments {kwargs}: {error}") from None
    except (gym.error.Error, ImportError) as error:
        raise UnknownEnvError(f"environment '{env_id}' could not be made: {error}") from None


def save_env_state(env: gym.Env) -> dict[str, bytes] | None:
    """Bytes that continue `env` exactly where it stands (`restore_env`), or None for an env that cannot be
    saved (it then restarts). Gymnasium's MuJoCo envs pickle only their constructor's arguments, so their
    simulator data and both random streams (the env's and its action space's) are saved beside the pickle."""
    try:
        state = {"env": pickle.dumps(env)}
        core = env.unwrapped
        if _is_mujoco(core):
            state["mujoco"] = pickle.dumps((core.data, core.np_random, core.action_space))
    except Exception:  # noqa: BLE001  (any env may refuse pickling)
        return None
    return state


def restore_env(state: dict[str, bytes] | bytes) -> gym.Env:
    """The env `save_env_state` saved (checkpoints written before MuJoCo state was saved hold bare bytes)."""
    if isinstance(state, bytes):
        return pickle.loads(state)
    env = pickle.loads(state["env"])
    if "mujoco" in state:
        core = env.unwrapped
        core.data, core._np_random, core.action_space = pickle.loads(state["mujoco"])
        if getattr(core, "mujoco_renderer", None) is not None:
            core.mujoco_renderer.data = core.data
    return env


def _is_mujoco(core: gym.Env) -> bool:
    try:
        from gymnasium.envs.mujoco import MujocoEnv
    except ImportError:  # mujoco not installed: no env can be one
        return False
    return isinstance(core, MujocoEnv)


def is_deterministic(env: gym.Env) -> bool:
    """True for envs that declare deterministic dynamics (modelrl's grids); unknown envs count as stochastic."""
    return bool(env.unwrapped.metadata.get("deterministic", False))
