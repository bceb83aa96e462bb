"""The DeepMind Control Suite (Tassa et al. 2018) as Gymnasium envs, observed as joint states or as pixels.

`dmc/<domain>-<task>-v0` observes the task's observation dict flattened into one float32 vector (its arrays
in the order the task lists them, as dm_control's own `flatten_observation` orders them);
`dmc/<domain>-<task>-pixels-v0` observes a 64x64 RGB frame (uint8, height x width x channel) from a camera
fixed to the scene, the observation of PlaNet and Dreamer. The `_` of dm_control's names is written `-`
(`ball_in_cup catch` is `dmc/ball-in-cup-catch-v0`). Every task of dm_control's BENCHMARKING list is
registered, and the quadruped's walk and run, which DreamerV3's and TD-MPC2's DMC studies add to it.

Each action is repeated `action_repeat` times (2 by default, as in DreamerV3 and TD-MPC2) and its reward
is the sum over the repeats. The suite ends its episodes by a time limit of 1000 control steps, which is a
truncation, not a terminal state: an env step past it stops inside its repeat, so an episode is
ceil(1000 / action_repeat) env steps (500 by default). The registered specs have no `max_episode_steps`,
since the count depends on `action_repeat`; modelrl's evaluation cap of 1000 steps never cuts one short.

dm_control is an optional extra (`pip install 'modelrl[dmc]'`), imported only when an env is made, so
registering the ids costs nothing. Frames render off screen with EGL unless `MUJOCO_GL` says otherwise.
"""

from __future__ import annotations

import math
import os
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from modelrl.envs.snapshot import is_plain
from modelrl.errors import UnknownEnvError

# dm_control 1.0.50's suite.BENCHMARKING, written out so that registering the ids does not import dm_control.
BENCHMARKING_TASKS = (
    ("acrobot", "swingup"), ("acrobot", "swingup_sparse"), ("ball_in_cup", "catch"),
    ("cartpole", "balance"), ("cartpole", "balance_sparse"), ("cartpole", "swingup"),
    ("cartpole", "swingup_sparse"), ("cheetah", "run"), ("finger", "spin"), ("finger", "turn_easy"),
    ("finger", "turn_hard"), ("fish", "upright"), ("fish", "swim"), ("hopper", "stand"), ("hopper", "hop"),
    ("humanoid", "stand"), ("humanoid", "walk"), ("humanoid", "run"), ("manipulator", "bring_ball"),
    ("pendulum", "swingup"), ("point_mass", "easy"), ("reacher", "easy"), ("reacher", "hard"),
    ("swimmer", "swimmer6"), ("swimmer", "swimmer15"), ("walker", "stand"), ("walker", "walk"),
    ("walker", "run"),
)
REGISTERED_TASKS = (*BENCHMARKING_TASKS, ("quadruped", "walk"), ("quadruped", "run"))

DEFAULT_ACTION_REPEAT = 2
DEFAULT_SIZE = 64
# Camera 0 frames the body in every domain but the quadruped's, where it is a distant overview; its camera 2
# follows the body from the side (DreamerV2's and DreamerV3's choice).
DEFAULT_CAMERA = {"quadruped": 2}

# Model fields the suite's tasks set when an episode starts (a reacher's target, a finger's goal, the
# manipulator's ball and cup): part of the episode in progress, so a snapshot holds them.
_EPISODE_MODEL_FIELDS = ("body_pos", "body_quat", "geom_pos", "geom_size", "geom_rgba", "site_pos",
                         "site_size", "site_rgba", "light_pos", "wrap_prm", "dof_damping")


def dmc_env_id(domain: str, task: str, pixels: bool = False) -> str:
    """The registered id of a suite task: `dmc/cartpole-swingup-v0`, `dmc/ball-in-cup-catch-pixels-v0`."""
    name = f"{domain}-{task}".replace("_", "-")
    return f"dmc/{name}-pixels-v0" if pixels else f"dmc/{name}-v0"


def registered_dmc_envs() -> dict[str, dict[str, Any]]:
    """Each registered id and the keyword arguments its entry point (`DMCEnv`) is made with."""
    return {dmc_env_id(domain, task, pixels): {"domain": domain, "task": task, "pixels": pixels}
            for domain, task in REGISTERED_TASKS for pixels in (False, True)}


def _import_suite(env_id: str):
    # dm_control picks its OpenGL backend when first imported: EGL renders without a display.
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        from dm_control import suite
    except Exception as error:  # noqa: BLE001  (missing, or failing against an unsupported MuJoCo version)
        cause = f"{error.__class__.__name__}: {error}".replace("\n", " ")
        raise UnknownEnvError(f"environment '{env_id}' needs dm_control, an optional part of modelrl: "
                              f"pip install 'modelrl[dmc]' ({cause})") from None
    return suite


def _task_random(seed: int) -> np.random.RandomState:
    """Below 2**32 the stream of dm_control's own seeding (`suite.load(..., task_kwargs={"random": seed})`),
    so that both start the same episodes; Gymnasium takes larger seeds too, which that cannot."""
    if seed < 2**32:
        return np.random.RandomState(seed)
    return np.random.RandomState(np.random.MT19937(seed))


class DMCEnv(gym.Env):
    """One task of the suite (`domain`, `task` as dm_control names them) as a Gymnasium env.

    `pixels`: observe `size` x `size` RGB frames from camera `camera_id` (None: the domain's default) instead
    of the joint states. `render_mode="rgb_array"`: `render()` returns a `render_size` x `render_size` frame
    from the same camera (by default as large as `size`). Actions are in [-1, 1]; a task whose actuators
    take other bounds gets them scaled linearly. `reset(seed=s)` draws the initial state (and the task's
    targets) from a fresh stream seeded with `s`; `reset()` continues the stream.
    """

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"]}

    def __init__(self, domain: str, task: str, *, pixels: bool = False,
                 action_repeat: int = DEFAULT_ACTION_REPEAT, size: int = DEFAULT_SIZE,
                 camera_id: int | None = None, render_mode: str | None = None,
                 render_size: int | None = None):
        env_id = dmc_env_id(domain, task, pixels)
        for name, value in (("action_repeat", action_repeat), ("size", size), ("render_size", render_size)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        suite = _import_suite(env_id)
        if (domain, task) not in suite.ALL_TASKS:
            raise ValueError(f"dm_control's suite has no task '{task}' in a domain '{domain}'")
        self._dmc = suite.load(domain, task)
        self.domain, self.task, self.pixels = domain, task, pixels
        self.action_repeat = action_repeat
        self.size = size
        self.camera_id = DEFAULT_CAMERA.get(domain, 0) if camera_id is None else camera_id
        self.render_mode = render_mode
        self.render_size = size if render_size is None else render_size

        action_spec = self._dmc.action_spec()
        self._action_low, self._action_high = action_spec.minimum, action_spec.maximum
        self._unit_actions = bool(np.all(self._action_low == -1.0) and np.all(self._action_high == 1.0))
        self.action_space = spaces.Box(-1.0, 1.0, action_spec.shape, dtype=np.float32)
        if pixels:
            self.observation_space = spaces.Box(0, 255, (size, size, 3), dtype=np.uint8)
        else:
            dims = sum(math.prod(spec.shape) for spec in self._dmc.observation_spec().values())
            self.observation_space = spaces.Box(-np.inf, np.inf, (dims,), dtype=np.float32)
        control_steps_per_second = 1.0 / (self._dmc.control_timestep() * action_repeat)
        self.metadata = {**self.metadata, "render_fps": control_steps_per_second}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:  # a fresh stream for the task, which draws all its randomness from it
            self._dmc.task._random = _task_random(seed)
        time_step = self._dmc.reset()
        return self._observe(time_step.observation), {}

    def step(self, action):
        if self._dmc._reset_next_step:
            raise gym.error.ResetNeeded("the episode has ended: call reset() before step()")
        action = np.asarray(action, dtype=np.float64).reshape(self.action_space.shape)
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action must be finite, got {action}")
        action = self.to_control(action)
        reward = 0.0
        for _ in range(self.action_repeat):
            time_step = self._dmc.step(action)
            reward += time_step.reward or 0.0
            if time_step.last():
                break
        # The suite's time limit ends an episode with discount 1 (the state is not terminal); a task's own
        # end (none of the benchmark tasks has one) with discount 0.
        terminated = bool(time_step.last() and time_step.discount == 0.0)
        truncated = bool(time_step.last() and not terminated)
        return self._observe(time_step.observation), float(reward), terminated, truncated, {}

    def to_control(self, action: np.ndarray) -> np.ndarray:
        """Actions (any leading dims) clipped to [-1, 1] and scaled linearly to the actuators' bounds."""
        action = np.clip(action, -1.0, 1.0)
        if self._unit_actions:
            return action
        return self._action_low + (action + 1.0) * 0.5 * (self._action_high - self._action_low)

    @property
    def episode_steps(self) -> int:
        """Env steps in an episode: the suite's time limit over the action repeat."""
        return math.ceil(self._dmc._step_limit / self.action_repeat)

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return self._dmc.physics.render(self.render_size, self.render_size, camera_id=self.camera_id)

    def _observe(self, observation: dict[str, Any]) -> np.ndarray:
        if self.pixels:
            return self._dmc.physics.render(self.size, self.size, camera_id=self.camera_id)
        return np.concatenate([np.asarray(value, dtype=np.float32).ravel() for value in observation.values()])

    # --- the episode in progress as plain data (modelrl.envs.snapshot) ---------------------------------
    def get_plain_state(self) -> dict[str, Any]:
        """The simulator's full integration state, the model fields the task set for this episode, the step
        count, the task's attributes and its random stream: what the rest of the episode, and the next
        episode's start, depend on."""
        import mujoco

        physics, task = self._dmc.physics, self._dmc.task
        kind, keys, position, has_gauss, cached_gauss = task.random.get_state()
        return {
            "physics": physics.get_state(sig=mujoco.mjtState.mjSTATE_INTEGRATION),
            "model": {field: getattr(physics.model, field).copy() for field in _EPISODE_MODEL_FIELDS},
            "step_count": int(self._dmc._step_count),
            "reset_next_step": bool(self._dmc._reset_next_step),
            "task": {name: value for name, value in vars(task).items() if is_plain(value)},
            "task_random": [str(kind), keys.copy(), int(position), int(has_gauss), float(cached_gauss)],
        }

    def set_plain_state(self, state: dict[str, Any]) -> None:
        import mujoco

        physics, task = self._dmc.physics, self._dmc.task
        for field, value in state["model"].items():
            getattr(physics.model, field)[...] = value
        physics.set_state(np.asarray(state["physics"], np.float64), sig=mujoco.mjtState.mjSTATE_INTEGRATION)
        physics.forward()  # the quantities computed from the state (positions of bodies, sensors)
        self._dmc._step_count = state["step_count"]
        self._dmc._reset_next_step = state["reset_next_step"]
        vars(task).update(state["task"])
        random = np.random.RandomState()
        random.set_state(tuple(state["task_random"]))
        task._random = random


# --- the exact model of a task, batched (modelrl.planning.env_copy.RolloutObjective) ----------------------
def _tolerance(x: np.ndarray, margin: float, value_at_margin: float = 0.1,
               sigmoid: str = "gaussian") -> np.ndarray:
    """The suite's `rewards.tolerance` with bounds (0, 0): 1 at zero, `value_at_margin` at `margin`."""
    distance = np.abs(x) / margin
    if sigmoid == "gaussian":
        value = np.exp(-0.5 * (distance * np.sqrt(-2 * np.log(value_at_margin))) ** 2)
    else:  # quadratic
        scaled = distance * np.sqrt(1 - value_at_margin)
        value = np.where(scaled < 1, 1 - scaled**2, 0.0)
    return np.where(x == 0, 1.0, value)


def _cartpole_state(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """qpos (cart, hinge angle) and qvel from an observation (cart position, cos, sin, velocities)."""
    return np.stack([obs[..., 0], np.arctan2(obs[..., 2], obs[..., 1])], -1), obs[..., 3:5]


def _cartpole_smooth_reward(qpos: np.ndarray, qvel: np.ndarray, control: np.ndarray) -> np.ndarray:
    """The suite's smooth cart-pole reward (swingup and balance) of one physics step."""
    upright = (np.cos(qpos[..., 1]) + 1) / 2
    centred = (1 + _tolerance(qpos[..., 0], margin=2)) / 2
    small_control = (4 + _tolerance(control[..., 0], margin=1, value_at_margin=0, sigmoid="quadratic")) / 5
    small_velocity = (1 + _tolerance(qvel[..., 1], margin=5)) / 2
    return upright * small_control * small_velocity * centred


# Tasks whose exact model is written here: their state from an observation, and their reward from the state
# and control of each physics step. Other tasks' observations do not determine their simulator state.
TRUE_MODELS = {("cartpole", "swingup"): (_cartpole_state, _cartpole_smooth_reward),
               ("cartpole", "balance"): (_cartpole_state, _cartpole_smooth_reward)}
