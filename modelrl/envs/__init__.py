"""Environments: `make_env` with clear errors, and modelrl's own envs registered with Gymnasium.

Importing modelrl registers `modelrl/GridWorld-v0`, `modelrl/DynaMaze-v0`, `modelrl/BlockingMaze-v0`,
`modelrl/ShortcutMaze-v0`, `modelrl/ContinuousCartPole-v0`, and the board games against a built-in opponent
`modelrl/TicTacToe-v0` and `modelrl/ConnectFour-v0`, so `gymnasium.make("modelrl/DynaMaze-v0")`
works after `import modelrl`; and the DeepMind Control Suite's tasks, `dmc/<domain>-<task>-v0` and
`dmc/<domain>-<task>-pixels-v0` (`modelrl.envs.dmc`; made only with the `dmc` extra installed).

`pixels/<id>` is any env observed through its rendered frames (`modelrl.envs.pixels`): `resolve_env_id`
registers it on first use, after which `gymnasium.make` takes it too.
"""

from __future__ import annotations

import difflib
import importlib
import sys

import gymnasium as gym
import numpy as np

from modelrl.envs.dmc import registered_dmc_envs
from modelrl.envs.snapshot import restore_env, save_env_state  # noqa: F401  (re-exported)
from modelrl.errors import UnknownEnvError

_OWN_ENVS = {
    "modelrl/GridWorld-v0": "modelrl.envs.grid:make_grid_world",
    "modelrl/DynaMaze-v0": "modelrl.envs.grid:make_dyna_maze",
    "modelrl/BlockingMaze-v0": "modelrl.envs.grid:make_blocking_maze",
    "modelrl/ShortcutMaze-v0": "modelrl.envs.grid:make_shortcut_maze",
    "modelrl/ContinuousCartPole-v0": "modelrl.envs.cartpole:ContinuousCartPoleEnv",
    "modelrl/TicTacToe-v0": "modelrl.envs.games:BoardGameEnv",
    "modelrl/ConnectFour-v0": "modelrl.envs.games:BoardGameEnv",
}
_KWARGS = {"modelrl/ConnectFour-v0": {"game": "ConnectFour"}}
# The mazes have no time limit (the book's studies count whole episodes however long they run);
# PETS's cart-pole trials are 200 steps.
_MAX_EPISODE_STEPS = {"modelrl/ContinuousCartPole-v0": 200}

for _env_id, _entry_point in _OWN_ENVS.items():
    if _env_id not in gym.registry:
        gym.register(id=_env_id, entry_point=_entry_point, max_episode_steps=_MAX_EPISODE_STEPS.get(_env_id),
                     kwargs=_KWARGS.get(_env_id, {}))
# No max_episode_steps: the suite ends its episodes itself, after a count that depends on `action_repeat`.
for _env_id, _kwargs in registered_dmc_envs().items():
    if _env_id not in gym.registry:
        gym.register(id=_env_id, entry_point="modelrl.envs.dmc:DMCEnv", kwargs=_kwargs)

PIXELS_PREFIX = "pixels/"


def require_env_module_imported(env_id: str, source: str) -> None:
    """Loading a file never imports code: an env id naming a module (`module:EnvId`) read from `source` is
    accepted only once that module is imported (by `--import`, or the user's own `import`)."""
    module, colon, _ = env_id.rpartition(":")
    if colon and module not in sys.modules:
        raise UnknownEnvError(f"{source} names the env '{env_id}', whose module '{module}' is not imported, "
                              "and loading a file never imports code: import it first "
                              f"(CLI: --import {module})")


def import_modules(modules: list[str] | None) -> None:
    """The CLI's --import: modules the user asks for, e.g. the one registering the env of a run to resume."""
    for module in modules or []:
        try:
            importlib.import_module(module)
        except Exception as error:  # noqa: BLE001  (a user's module may raise anything on import)
            raise UnknownEnvError(f"--import {module}: it cannot be imported "
                                  f"({error.__class__.__name__}: {error})") from None


def resolve_env_id(env_id: str) -> str:
    """Accept modelrl's own envs without their namespace ('DynaMaze-v0') and Gymnasium's `module:EnvId`
    form (the module is imported, registering its envs, and the id keeps the module so that a resumed run
    imports it again), and `pixels/<id>` (registered here on first use); raise on an unknown id."""
    if env_id.startswith(PIXELS_PREFIX) and ":" in env_id:  # the module goes first: module:pixels/EnvId
        module, _, name = env_id.removeprefix(PIXELS_PREFIX).rpartition(":")
        env_id = f"{module}:{PIXELS_PREFIX}{name}"
    module, colon, name = env_id.rpartition(":")
    if colon:
        try:
            importlib.import_module(module)
        except Exception as error:  # noqa: BLE001  (a user's module may raise anything on import)
            raise UnknownEnvError(f"environment '{env_id}': its module '{module}' cannot be imported "
                                  f"({error.__class__.__name__}: {error})") from None
        return f"{module}:{resolve_env_id(name)}"
    if env_id in gym.registry:
        return env_id
    if env_id.startswith(PIXELS_PREFIX):
        return _register_pixel_env(env_id)
    if f"modelrl/{env_id}" in gym.registry:
        return f"modelrl/{env_id}"
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `modelrl list` shows the registered ids"
    raise UnknownEnvError(f"unknown environment '{env_id}'{hint}")


def _register_pixel_env(env_id: str) -> str:
    """Register `pixels/<id>` as the env `<id>` made to render RGB frames and observed through them, with
    its time limit, and return it."""
    base_id = env_id.removeprefix(PIXELS_PREFIX)
    if "/" in base_id:  # Gymnasium's ids have at most one namespace
        raise UnknownEnvError(f"environment '{env_id}': pixels/ takes an id without a namespace "
                              "(modelrl's own envs by their short names; the DeepMind Control Suite's have "
                              "ids of their own, dmc/<domain>-<task>-pixels-v0)")
    base_id = resolve_env_id(base_id)
    gym.register(id=env_id, entry_point="modelrl.envs.pixels:make_pixel_env", kwargs={"env_id": base_id},
                 max_episode_steps=gym.spec(base_id).max_episode_steps)
    return env_id


def make_env(env_id: str, *, render_mode: str | None = None, **kwargs) -> gym.Env:
    """`gymnasium.make` with modelrl's ids resolved and failures turned into one-line errors.

    An env built with arguments is first tried for one step on a copy of its own: many envs take any value
    at construction and fail, or turn NaN, only when it is used."""
    env_id = resolve_env_id(env_id)
    if kwargs:
        _try_first_step(env_id, kwargs)
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    return _make(env_id, kwargs)


def _make(env_id: str, kwargs: dict) -> gym.Env:
    try:
        return gym.make(env_id, **kwargs)
    except (TypeError, ValueError) as error:  # an unknown argument, or a known one's bad value
        raise UnknownEnvError(f"environment '{env_id}' rejected its arguments {kwargs}: {error}") from None
    except gym.error.DependencyNotInstalled as error:
        if "mujoco" in str(error).lower():
            raise UnknownEnvError(f"environment '{env_id}' needs MuJoCo, an optional part of modelrl: "
                                  "pip install 'modelrl[mujoco]'") from None
        raise UnknownEnvError(f"environment '{env_id}' could not be made: {error}") from None
    except (gym.error.Error, ImportError) as error:
        raise UnknownEnvError(f"environment '{env_id}' could not be made: {error}") from None


def _try_first_step(env_id: str, kwargs: dict) -> None:
    env = _make(env_id, dict(kwargs))
    try:
        obs, info = env.reset(seed=0)
        env.action_space.seed(0)
        mask = info.get("action_mask")  # games: a legal move
        action = env.action_space.sample(None if mask is None else np.asarray(mask, np.int8))
        next_obs, reward, *_ = env.step(action)
    except Exception as error:  # noqa: BLE001  (a bad argument can fail anywhere inside the env)
        raise UnknownEnvError(f"environment '{env_id}' with arguments {kwargs} failed its first step: "
                              f"{error.__class__.__name__}: {error}") from None
    finally:
        env.close()
    if not all(_finite(x) for x in (obs, next_obs, reward)):
        raise UnknownEnvError(f"environment '{env_id}' with arguments {kwargs} gives NaN or infinite "
                              "observations or rewards")


def _finite(value) -> bool:
    """False only for numbers (or arrays of them) holding NaN or infinity; other observations pass."""
    try:
        return bool(np.isfinite(np.asarray(value, dtype=np.float64)).all())
    except (TypeError, ValueError):
        return True


def is_deterministic(env: gym.Env) -> bool:
    """True for envs that declare deterministic dynamics (modelrl's grids); unknown envs count as
    stochastic."""
    return bool(env.unwrapped.metadata.get("deterministic", False))
