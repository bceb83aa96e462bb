"""Two-player board games as batched rules in torch: the known model AlphaZero searches with.

A state is the board seen by the player to move: +1 their stones, -1 the opponent's, 0 empty. `play`
places the mover's stone, tells whether that move won and whether the game is over, and returns the board
seen by the next player (negated), so a search never needs to know whose turn it is: every value is the
value for the player to move (negamax). Every function takes a batch of boards, `(B, *board_shape)`.

- `TicTacToe`: 3 x 3, actions 0..8 row by row.
- `ConnectFour`: 6 rows x 7 columns, row 0 at the top; an action is a column, the stone falls to its lowest
  empty cell; four in a row in any direction wins.
`solve_tictactoe` is the exact negamax referee (every position, memoised). `BoardGameEnv` is a game against
a built-in opponent as a Gymnasium env (`modelrl/TicTacToe-v0`, `modelrl/ConnectFour-v0`).
"""

from __future__ import annotations

import functools
from typing import ClassVar

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces


class BoardGame:
    name: str
    actions: int
    board_shape: tuple[int, ...]
    grid: tuple[int, int]  # the board as rows x columns (for convolutions and display)

    def symmetries(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The board's symmetries as (cell permutation, action permutation) pairs, identity first: a board's
        transform is `board.flatten(1)[:, cells]`, a policy's `policy[:, actions]`."""
        rows, columns = self.grid
        grid = torch.arange(rows * columns).view(rows, columns)
        views = [grid, grid.flip(1)]
        if rows == columns:  # the square's eight: four rotations, each also mirrored
            views = [torch.rot90(view, k) for view in (grid, grid.flip(1)) for k in range(4)]
        pairs = []
        for view in views:
            cells = view.flatten()
            actions = cells if self.actions == rows * columns else view[0]  # a column game acts on columns
            pairs.append((cells, actions))
        return pairs

    def initial(self, batch: int = 1, device: str | torch.device = "cpu") -> torch.Tensor:
        return torch.zeros(batch, *self.board_shape, device=device)

    def legal(self, boards: torch.Tensor) -> torch.Tensor:
        """`(B, actions)` bool: the moves the player to move may make (none once the board is full)."""
        raise NotImplementedError

    def place(self, boards: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The boards with the mover's stone (+1) placed by `actions`, still seen by the mover."""
        raise NotImplementedError

    def wins(self, boards: torch.Tensor) -> torch.Tensor:
        """`(B,)` bool: the mover's stones (+1) make a winning line."""
        raise NotImplementedError

    def play(self, boards: torch.Tensor, actions: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The mover plays `actions` (legal ones): the board seen by the next player, whether the mover won,
        and whether the game is over (a win or a full board)."""
        placed = self.place(boards, actions)
        won = self.wins(placed)
        over = won | ~self.legal(placed).any(-1)
        return -placed, won, over


class TicTacToe(BoardGame):
    name, actions, board_shape, grid = "TicTacToe", 9, (9,), (3, 3)
    LINES = torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 8], [0, 3, 6], [1, 4, 7], [2, 5, 8], [0, 4, 8],
                          [2, 4, 6]])

    def legal(self, boards: torch.Tensor) -> torch.Tensor:
        return boards == 0

    def place(self, boards: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return boards.scatter(1, actions.view(-1, 1), 1.0)

    def wins(self, boards: torch.Tensor) -> torch.Tensor:
        return (boards[:, self.LINES.to(boards.device)] == 1).all(-1).any(-1)


class ConnectFour(BoardGame):
    name, actions, board_shape, grid = "ConnectFour", 7, (6, 7), (6, 7)

    def __init__(self):
        kernels = torch.zeros(4, 1, 4, 4)
        kernels[0, 0, 0, :] = 1  # a row
        kernels[1, 0, :, 0] = 1  # a column
        kernels[2, 0] = torch.eye(4)  # a diagonal down to the right
        kernels[3, 0] = torch.eye(4).flip(1)  # and down to the left
        self.kernels = kernels

    def legal(self, boards: torch.Tensor) -> torch.Tensor:
        return boards[:, 0, :] == 0

    def place(self, boards: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        rows = (boards == 0).sum(1).gather(1, actions.view(-1, 1)).squeeze(1) - 1  # the lowest empty cell
        placed = boards.clone()
        placed[torch.arange(len(boards), device=boards.device), rows, actions] = 1.0
        return placed

    def wins(self, boards: torch.Tensor) -> torch.Tensor:
        mine = (boards == 1).float().unsqueeze(1)
        # Padded on the right and bottom, so a line may start anywhere; one conv finds every line of four.
        counts = F.conv2d(F.pad(mine, (0, 3, 0, 3)), self.kernels.to(boards.device))
        return (counts >= 4).flatten(1).any(-1)


GAMES = {"TicTacToe": TicTacToe, "ConnectFour": ConnectFour}


@functools.cache
def _negamax(board: tuple[int, ...]) -> int:
    """The value of a TicTacToe board (+1 the mover's, -1 the opponent's) for the player to move."""
    best = -2
    for action in range(9):
        if board[action]:
            continue
        placed = board[:action] + (1,) + board[action + 1:]
        if any(all(placed[i] == 1 for i in line) for line in TicTacToe.LINES.tolist()):
            return 1  # nothing beats winning now
        value = 0 if all(placed) else -_negamax(tuple(-x for x in placed))
        best = max(best, value)
    return best


def solve_tictactoe(board) -> tuple[int, list[int]]:
    """The exact value of a TicTacToe position for the player to move (1 win, 0 draw, -1 loss) and the moves
    that keep it. `board`: 9 numbers, the mover's stones +1."""
    board = tuple(int(x) for x in board)
    if not 0 in board:
        raise ValueError("the board is full: there is no move to make")
    values = {}
    for action in (a for a in range(9) if board[a] == 0):
        placed = board[:action] + (1,) + board[action + 1:]
        won = any(all(placed[i] == 1 for i in line) for line in TicTacToe.LINES.tolist())
        values[action] = 1 if won else 0 if all(placed) else -_negamax(tuple(-x for x in placed))
    best = max(values.values())
    return best, [action for action, value in values.items() if value == best]


class BoardGameEnv(gym.Env):
    """A board game against a built-in opponent, as a single-agent Gymnasium env: the observation is the
    board seen by the agent (+1 its stones), `info["action_mask"]` its legal moves; the reward is +1 for a
    win, -1 for a loss, 0 otherwise. The opponent (`"random"`: uniform over legal moves; `"solver"`: the exact
    TicTacToe player, a random one of its best moves) replies inside `step`. Who starts is drawn at each reset
    (`agent_first=None`), or fixed. An illegal move is a ValueError that names the legal ones."""

    metadata: ClassVar[dict] = {"render_modes": ["ansi"]}

    def __init__(self, game: str = "TicTacToe", opponent: str = "random", agent_first: bool | None = None,
                 render_mode: str | None = None):
        if game not in GAMES:
            raise ValueError(f"game must be one of {', '.join(GAMES)}, got {game!r}")
        if opponent not in ("random", "solver"):
            raise ValueError(f"opponent must be 'random' or 'solver', got {opponent!r}")
        if opponent == "solver" and game != "TicTacToe":
            raise ValueError("the exact solver plays TicTacToe only")
        self.game, self.opponent, self.agent_first = GAMES[game](), opponent, agent_first
        self.render_mode = render_mode
        shape = self.game.board_shape
        self.observation_space = spaces.Box(-1.0, 1.0, shape, np.float32)
        self.action_space = spaces.Discrete(self.game.actions)
        self.board = self.game.initial(1)

    def _observe(self) -> tuple[np.ndarray, dict]:
        legal = self.game.legal(self.board)[0].numpy()
        return self.board[0].numpy().astype(np.float32), {"action_mask": legal}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.board = self.game.initial(1)
        first = self.agent_first if self.agent_first is not None else bool(self.np_random.integers(2))
        if not first:
            self.board, _, _ = self.game.play(self.board, torch.tensor([self._opponent_move()]))
        return self._observe()

    def _opponent_move(self) -> int:
        legal = np.flatnonzero(self.game.legal(self.board)[0].numpy())
        if self.opponent == "solver":
            legal = solve_tictactoe(self.board[0].tolist())[1]
        return int(self.np_random.choice(legal))

    def step(self, action):
        legal = self.game.legal(self.board)[0]
        action = int(action)
        if not (0 <= action < self.game.actions and legal[action]):
            raise ValueError(f"illegal move {action}: the legal moves are "
                             f"{', '.join(str(a) for a in np.flatnonzero(legal.numpy()))}")
        self.board, won, over = self.game.play(self.board, torch.tensor([action]))
        if over.item():
            self.board = -self.board  # shown from the agent's side
            obs, info = self._observe()
            return obs, 1.0 if won.item() else 0.0, True, False, info
        self.board, won, over = self.game.play(self.board, torch.tensor([self._opponent_move()]))
        obs, info = self._observe()
        return obs, -1.0 if won.item() else 0.0, bool(over.item()), False, info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        marks = {1.0: "X", -1.0: "O", 0.0: "."}
        rows = self.board[0].view(-1, self.game.board_shape[-1] if len(self.game.board_shape) > 1 else 3)
        return "\n".join(" ".join(marks[float(v)] for v in row) for row in rows) + "\n"
