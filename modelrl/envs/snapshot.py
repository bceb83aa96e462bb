"""The env in progress as plain data, so that a checkpoint can continue an episode without pickling the env.

`save_env_state` walks the wrapper chain (each wrapper, then the env itself) and keeps each layer's
attributes of plain types (numbers, strings, NumPy arrays and scalars, and lists, tuples and dicts of them)
and the states of its random generators, its spaces' included. What `make_env` builds again the same (the
wrapped env, the spec, MuJoCo's model and renderer, pygame's window) is left out. A MuJoCo env's simulator is
saved as its full integration state, so its episode continues bit for bit. `restore_env` puts all of it
onto a fresh env made from the same id and arguments.

A layer holding state of other types can save it itself: a class defining `get_plain_state()` (returning
plain data) and `set_plain_state(state)` has that saved beside its plain attributes, and its other
attributes are left to it (the DeepMind Control Suite's envs, `modelrl.envs.dmc`, do so).
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec

from modelrl.checkpoint import NUMPY_DTYPE_CLASSES

_SCALARS = (type(None), bool, int, float, str, bytes)
# By name, so that a state read from a file can only ever make one of these.
_BIT_GENERATORS = {cls.__name__: cls for cls in (np.random.PCG64, np.random.PCG64DXSM, np.random.MT19937,
                                                 np.random.Philox, np.random.SFC64)}


def save_env_state(env: gym.Env) -> dict[str, Any] | None:
    """Plain data that puts a fresh env exactly where `env` stands (`restore_env`), or None for an env holding
    state this cannot represent (an attribute of some other type): its episode then restarts."""
    core = env.unwrapped
    simulator = (core.model, core.data, core.mujoco_renderer) if _is_mujoco(core) else ()
    layers = []
    for layer in _layers(env):
        saved = {"class": _class_name(layer), "values": {}, "generators": {}, "spaces": {}}
        saves_itself = _saves_its_own_state(layer)
        for name, value in vars(layer).items():
            if (name == "env" and isinstance(layer, gym.Wrapper)) or _rebuilt_by_make_env(value, simulator):
                continue
            if isinstance(value, np.random.Generator):
                saved["generators"][name] = value.bit_generator.state
            elif isinstance(value, gym.spaces.Space):
                saved["spaces"][name] = [_rng_state(space._np_random) for space in _spaces(value)]
            elif is_plain(value):
                saved["values"][name] = value
            elif not saves_itself:
                return None
        if saves_itself:
            saved["own"] = layer.get_plain_state()
            if not is_plain(saved["own"]):
                return None
        layers.append(saved)
    state = {"layers": layers}
    if simulator:
        state["mujoco"] = _mujoco_state(core)
    return state


def restore_env(env: gym.Env, state: dict[str, Any] | bytes) -> bool:
    """Put a fresh `env` (made from the saved env's id and arguments) where `save_env_state` found that one;
    False, with a warning, where it cannot (its episode in progress then restarts)."""
    if isinstance(state, bytes) or isinstance(state.get("env"), bytes):  # format 1: the env pickled
        warnings.warn("this checkpoint, from an older modelrl, holds its env as a pickle, which is not "
                      "loaded because unpickling it could run code; the env starts afresh, and with it the "
                      "episode in progress", stacklevel=2)
        return False
    layers = _layers(env)
    saved_classes = [saved["class"] for saved in state["layers"]]
    if saved_classes != [_class_name(layer) for layer in layers]:
        warnings.warn(f"the env was saved as {' > '.join(saved_classes)}, which this one is not; it starts "
                      "afresh, and with it the episode in progress", stacklevel=2)
        return False
    for layer, saved in zip(layers, state["layers"]):
        vars(layer).update(copy.deepcopy(saved["values"]))
        for name, rng_state in saved["generators"].items():
            vars(layer)[name] = _generator(rng_state)
        for name, rng_states in saved["spaces"].items():
            for space, rng_state in zip(_spaces(vars(layer)[name]), rng_states, strict=True):
                space._np_random = None if rng_state is None else _generator(rng_state)
        if "own" in saved:
            layer.set_plain_state(copy.deepcopy(saved["own"]))
    if "mujoco" in state:
        _set_mujoco_state(env.unwrapped, state["mujoco"])
    return True


def _layers(env: gym.Env) -> list[gym.Env]:
    layers = [env]
    while isinstance(layers[-1], gym.Wrapper):
        layers.append(layers[-1].env)
    return layers


def _saves_its_own_state(layer: gym.Env) -> bool:
    """Looked up on the class: a wrapper does not forward these methods from the env it wraps."""
    return all(callable(getattr(type(layer), name, None)) for name in ("get_plain_state", "set_plain_state"))


def _class_name(layer: gym.Env) -> str:
    return f"{type(layer).__module__}.{type(layer).__qualname__}"


def _rebuilt_by_make_env(value, simulator: tuple) -> bool:
    """The spec, a MuJoCo env's `simulator` parts (model, data, renderer: its state is saved apart), pygame's
    window and clock: made again the same by `make_env`, or used only for rendering."""
    if isinstance(value, EnvSpec) or any(value is part for part in simulator):
        return True
    return type(value).__module__.partition(".")[0] == "pygame"


def is_plain(value) -> bool:
    """Data a checkpoint may hold as it is. Exact types: a subclass (a namedtuple, an enum) pickles as a
    class, which loading refuses."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind is np.ndarray or isinstance(value, np.generic):
        return type(value.dtype) in NUMPY_DTYPE_CLASSES
    if kind is list or kind is tuple:
        return all(is_plain(item) for item in value)
    if kind is dict:
        return all(is_plain(key) and is_plain(item) for key, item in value.items())
    return False


def _spaces(space: gym.spaces.Space) -> list[gym.spaces.Space]:
    """A space and the spaces inside it (Tuple, Dict), each of which draws from a generator of its own."""
    inner = getattr(space, "spaces", ())
    inner = inner.values() if isinstance(inner, dict) else inner
    return [space, *(nested for sub in inner for nested in _spaces(sub))]


def _rng_state(rng: np.random.Generator | None) -> dict[str, Any] | None:
    return None if rng is None else rng.bit_generator.state  # None: not seeded yet


def _generator(state: dict[str, Any]) -> np.random.Generator:
    rng = np.random.Generator(_BIT_GENERATORS[state["bit_generator"]]())
    rng.bit_generator.state = state
    return rng


def _is_mujoco(core: gym.Env) -> bool:
    try:
        from gymnasium.envs.mujoco import MujocoEnv
    except (ImportError, gym.error.DependencyNotInstalled):  # MuJoCo not installed: no env can be one
        return False
    return isinstance(core, MujocoEnv)


def _mujoco_state(core) -> np.ndarray:
    """Time, positions, velocities, actuator states, controls, applied forces, the solver's warm start:
    everything the next step depends on."""
    import mujoco

    kind = mujoco.mjtState.mjSTATE_INTEGRATION
    state = np.empty(mujoco.mj_stateSize(core.model, kind))
    mujoco.mj_getState(core.model, core.data, state, kind)
    return state


def _set_mujoco_state(core, state: np.ndarray) -> None:
    import mujoco

    mujoco.mj_setState(core.model, core.data, np.asarray(state, np.float64),
                       mujoco.mjtState.mjSTATE_INTEGRATION)
    mujoco.mj_forward(core.model, core.data)  # the quantities computed from the state (positions of bodies)
