"""`modelrl play RUN_DIR`: a person plays a trained board-game agent (alphazero, muzero) in the terminal.

The board is shown with the first player's stones as X; the person types a move's number (TicTacToe: the
cell, 0-8 row by row; Connect Four: the column, 0-6). A move that is not a number, or not legal, gets a
one-line message naming the legal moves and a new prompt; an empty line or end of input ends the game.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


def show(board: np.ndarray, first_to_move: bool, columns: int) -> str:
    """The board as text, X the first player's stones, given the board seen by the player to move."""
    signed = board if first_to_move else -board  # +1: X
    marks = {1.0: "X", -1.0: "O", 0.0: "."}
    rows = signed.reshape(-1, columns)
    return "\n".join(" ".join(marks[float(v)] for v in row) for row in rows)


def play(agent, person_first: bool = True, read: Callable[[str], str] = input,
         write: Callable[[str], None] = print) -> str:
    """One game between a person and `agent`; returns "win", "loss", "draw" (for the person) or "quit"."""
    game = agent.game
    columns = game.board_shape[-1] if len(game.board_shape) > 1 else 3
    board = game.initial(1, agent.device)
    person_to_move, first_to_move = person_first, True
    write(f"You are {'X (first)' if person_first else 'O (second)'}. Moves: "
          + ("the cell 0-8, row by row" if game.name == "TicTacToe" else f"a column 0-{game.actions - 1}"))
    while True:
        write(show(board[0].cpu().numpy(), first_to_move, columns))
        legal = np.flatnonzero(game.legal(board)[0].cpu().numpy())
        if person_to_move:
            try:
                answer = read("your move: ").strip()
            except EOFError:
                answer = ""
            if not answer:
                write("game ended")
                return "quit"
            if not answer.isdigit() or int(answer) not in legal:
                write(f"illegal move {answer!r}: the legal moves are {', '.join(str(a) for a in legal)}")
                continue
            action = int(answer)
        else:
            legal_mask = game.legal(board)[0].cpu().numpy()
            action = agent.act(board[0].cpu().numpy(), deterministic=True, legal=legal_mask)
            write(f"the agent plays {action}")
        board, won, over = game.play(board, torch.tensor([action], device=agent.device))
        first_to_move = not first_to_move
        if over.item():
            write(show(board[0].cpu().numpy(), first_to_move, columns))
            if not won.item():
                write("a draw")
                return "draw"
            write("you win" if person_to_move else "the agent wins")
            return "win" if person_to_move else "loss"
        person_to_move = not person_to_move
