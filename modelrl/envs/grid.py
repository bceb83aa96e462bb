"""Deterministic grid worlds: the 5x5 GridWorld and the mazes of Sutton & Barto, chapter 8.

States are cell indices `row * cols + col`; actions are 0 up, 1 down, 2 left, 3 right. A move into a
wall or off the grid leaves the agent where it is. Entering the goal pays `goal_reward` and ends the
episode; every other step pays `step_reward`.

The changing mazes (Examples 8.2, 8.3) swap their wall layout after `change_at` steps counted over the
env's whole life, across episodes, as in the book: `reset()` restarts the episode, not the clock.
"""

from __future__ import annotations

from collections import deque
from typing import ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))  # up, down, left, right

Cell = tuple[int, int]

# Layouts: '#' wall, 'S' start, 'G' goal, '.' free. The maze figures of Sutton & Barto (2018), chapter 8.
DYNA_MAZE = (  # Example 8.1, Figure 8.2
    ".......#G",
    "..#....#.",
    "S.#....#.",
    "..#......",
    ".....#...",
    ".........",
)


def _walled_maze(wall_row: str) -> tuple[str, ...]:
    """The 6x9 maze of Examples 8.2 and 8.3: start at the bottom, goal top right, one wall across row 3."""
    return ("........G", ".........", ".........", wall_row, ".........", "...S.....")


# Example 8.2, Figure 8.4: the gap on the right closes and one opens on the left.
BLOCKING_MAZE = (_walled_maze("########."), _walled_maze(".########"))
# Example 8.3, Figure 8.5: a shorter gap opens on the right.
SHORTCUT_MAZE = (_walled_maze(".########"), _walled_maze(".#######."))

GRID_WORLD = (  # 5x5, start (0,0), goal (4,4), obstacles at (2,2), (2,3), (3,2)
    "S....",
    ".....",
    "..##.",
    "..#..",
    "....G",
)


def parse_layout(rows: tuple[str, ...], scale: int = 1) -> tuple[np.ndarray, Cell, Cell]:
    """Return (walls bool array, start, goal); `scale` replaces each cell by a scale x scale block."""
    if len({len(r) for r in rows}) != 1:
        raise ValueError("every layout row must have the same length")
    chars = np.array([list(r) for r in rows])
    bad = set(np.unique(chars)) - set(".#SG")
    if bad:
        raise ValueError(f"unknown layout characters {sorted(bad)}; use '.', '#', 'S', 'G'")
    if (chars == "S").sum() != 1 or (chars == "G").sum() != 1:
        raise ValueError("a layout needs exactly one 'S' and one 'G'")
    walls = np.kron(chars == "#", np.ones((scale, scale), dtype=bool))
    start = tuple(int(x) * scale for x in np.argwhere(chars == "S")[0])
    goal = tuple(int(x) * scale for x in np.argwhere(chars == "G")[0])
    return walls, start, goal


class GridMazeEnv(gym.Env):
    """A grid maze whose wall layout may change once, after `change_at` lifetime steps."""

    metadata: ClassVar[dict] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 8, "deterministic": True}
    cell_pixels = 16

    def __init__(
        self,
        layout: tuple[str, ...] = GRID_WORLD,
        *,
        changed_layout: tuple[str, ...] | None = None,
        change_at: int | None = None,
        scale: int = 1,
        step_reward: float = 0.0,
        goal_reward: float = 1.0,
        render_mode: str | None = None,
    ):
        if scale < 1:
            raise ValueError(f"scale must be >= 1, got {scale}")
        if (changed_layout is None) != (change_at is None):
            raise ValueError("changed_layout and change_at go together")
        if change_at is not None and (isinstance(change_at, bool)
                                      or not isinstance(change_at, (int, np.integer)) or change_at < 0):
            raise ValueError(f"change_at must be an integer >= 0, got {change_at!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, "
                             f"got {render_mode!r}")
        self._walls, self.start, self.goal = parse_layout(layout, scale)
        self._changed_walls = None
        if changed_layout is not None:
            self._changed_walls, start, goal = parse_layout(changed_layout, scale)
            if self._changed_walls.shape != self._walls.shape or (start, goal) != (self.start, self.goal):
                raise ValueError("the changed layout must keep the size, start and goal")
        self.change_at = change_at
        self.rows, self.cols = self._walls.shape
        self.step_reward = float(step_reward)
        self.goal_reward = float(goal_reward)
        self.render_mode = render_mode
        self.observation_space = spaces.Discrete(self.rows * self.cols)
        self.action_space = spaces.Discrete(len(MOVES))
        self.lifetime_steps = 0
        self.position = self.start

    @property
    def walls(self) -> np.ndarray:
        """The wall layout in force now."""
        if self._changed_walls is not None and self.lifetime_steps >= self.change_at:
            return self._changed_walls
        return self._walls

    def state_of(self, cell: Cell) -> int:
        return cell[0] * self.cols + cell[1]

    def cell_of(self, state: int) -> Cell:
        return divmod(int(state), self.cols)

    def next_cell(self, cell: Cell, action: int) -> Cell:
        dr, dc = MOVES[action]
        r, c = cell[0] + dr, cell[1] + dc
        if 0 <= r < self.rows and 0 <= c < self.cols and not self.walls[r, c]:
            return r, c
        return cell

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.position = self.start
        return self.state_of(self.position), {"position": self.position}

    def step(self, action):
        # A plain range check: Discrete.contains costs more than the whole step.
        if not (isinstance(action, (int, np.integer)) and not isinstance(action, bool)
                and 0 <= action < len(MOVES)):
            raise ValueError(f"action must be an integer in [0, {len(MOVES)}), got {action!r}")
        self.position = self.next_cell(self.position, int(action))
        self.lifetime_steps += 1
        terminated = self.position == self.goal
        reward = self.goal_reward if terminated else self.step_reward
        return self.state_of(self.position), reward, terminated, False, {"position": self.position}

    def shortest_path_length(self) -> int | None:
        """Fewest steps from start to goal under the current walls (breadth-first search), None if cut off."""
        distance = {self.start: 0}
        frontier = deque([self.start])
        while frontier:
            cell = frontier.popleft()
            if cell == self.goal:
                return distance[cell]
            for action in range(len(MOVES)):
                nxt = self.next_cell(cell, action)
                if nxt not in distance:
                    distance[nxt] = distance[cell] + 1
                    frontier.append(nxt)
        return None

    def render(self):
        if self.render_mode == "ansi":
            return self._render_text()
        if self.render_mode == "rgb_array":
            return self._render_image()
        return None

    def _render_text(self) -> str:
        grid = np.where(self.walls, "#", ".").astype("<U1")
        grid[self.goal] = "G"
        grid[self.position] = "A"
        return "\n".join("".join(row) for row in grid) + "\n"

    def _render_image(self) -> np.ndarray:
        colours = np.full((self.rows, self.cols, 3), 255, dtype=np.uint8)
        colours[self.walls] = (60, 60, 60)
        colours[self.start] = (200, 200, 255)
        colours[self.goal] = (80, 200, 80)
        colours[self.position] = (40, 90, 230)
        px = self.cell_pixels
        return np.repeat(np.repeat(colours, px, axis=0), px, axis=1)


def make_grid_world(**kwargs) -> GridMazeEnv:
    """The 5x5 GridWorld: -1 per step, +100 on reaching the goal."""
    kwargs = {"step_reward": -1.0, "goal_reward": 100.0, **kwargs}
    return GridMazeEnv(GRID_WORLD, **kwargs)


def make_dyna_maze(**kwargs) -> GridMazeEnv:
    """Sutton & Barto Example 8.1: 6x9 maze, reward 0 except +1 on reaching the goal. `scale` enlarges it."""
    return GridMazeEnv(DYNA_MAZE, **kwargs)


def make_blocking_maze(change_at: int = 1000, **kwargs) -> GridMazeEnv:
    """Sutton & Barto Example 8.2: the short path is blocked after `change_at` steps."""
    return GridMazeEnv(BLOCKING_MAZE[0], changed_layout=BLOCKING_MAZE[1], change_at=change_at, **kwargs)


def make_shortcut_maze(change_at: int = 3000, **kwargs) -> GridMazeEnv:
    """Sutton & Barto Example 8.3: a shortcut opens after `change_at` steps."""
    return GridMazeEnv(SHORTCUT_MAZE[0], changed_layout=SHORTCUT_MAZE[1], change_at=change_at, **kwargs)
