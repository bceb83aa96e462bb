"""OpenSpiel's MCTS bot (random rollouts) as a Connect Four opponent, served as JSON lines.

Each request on stdin is one line {"moves": [column, ...], "seed": N}: the game so far (columns 0-6, the
first player's move first). The reply on stdout is {"move": column, "seconds": s}: the bot's move for the
player to move, searched from scratch (`MCTSBot` with `RandomRolloutEvaluator`, one rollout per leaf, UCT
constant 2, `--simulations` per move, seeded by the request). Run through openspiel_connect_four.sh, in a
venv of its own.
"""

import argparse
import json
import sys
import time

import numpy as np
import pyspiel
from open_spiel.python.algorithms import mcts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulations", type=int, default=1000)
    parser.add_argument("--uct-c", type=float, default=2.0)
    args = parser.parse_args()
    game = pyspiel.load_game("connect_four")
    ready = {"ready": True, "open_spiel_game": str(game), "simulations": args.simulations}
    print(json.dumps(ready), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        state = game.new_initial_state()
        for move in request["moves"]:
            state.apply_action(int(move))
        rng = np.random.RandomState(request.get("seed", 0))
        bot = mcts.MCTSBot(game, args.uct_c, args.simulations, mcts.RandomRolloutEvaluator(1, rng),
                           random_state=rng, solve=True)
        started = time.perf_counter()
        move = bot.step(state)
        print(json.dumps({"move": int(move), "seconds": time.perf_counter() - started}), flush=True)


if __name__ == "__main__":
    main()
