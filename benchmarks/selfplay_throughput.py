"""(33d) Self-play throughput: finished games per second that 1, 2 and 4 AlphaZero actors deliver to one
learner, as Ray actors and as local processes (shared memory), in alternating rounds.

Each measurement starts the actors (`modelrl.actors.start_actors`, what `alphazero` with `actors=N` runs),
waits for their first games (start-up, reported apart), then collects for `--seconds`, publishing the
learner's network after every collection as the agent does. TicTacToe, `--simulations` per move,
`parallel_games` games per actor; no updates, so the rate is self-play's alone. On a machine with fewer
cores than actors the actors share them.

    OMP_NUM_THREADS=1 python benchmarks/selfplay_throughput.py [--rounds 2] [--seconds 20]
"""

from __future__ import annotations

import argparse
import time

import matplotlib.pyplot as plt
import numpy as np
from common import RESULTS, results_name, spread, write_results

import modelrl
from modelrl.actors import start_actors

BACKENDS = ("processes", "ray")


def measure(agent, backend: str, actors: int, seconds: float) -> dict:
    started = time.perf_counter()
    workers = start_actors(agent.player_factory(), actors, agent.network, backend)
    try:
        workers.collect()
        workers.publish(agent.network)
        ready = time.perf_counter()
        games = moves = 0
        while time.perf_counter() - ready < seconds:
            finished = workers.collect()
            workers.publish(agent.network)
            games += len(finished)
            moves += sum(len(game["outcome"]) for game in finished)
        elapsed = time.perf_counter() - ready
    finally:
        workers.close()
    return {"games_per_s": games / elapsed, "moves_per_s": moves / elapsed, "start_s": ready - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0, help="collection time per measurement")
    parser.add_argument("--simulations", type=int, default=25)
    parser.add_argument("--parallel-games", type=int, default=16)
    parser.add_argument("--name", type=results_name, default="selfplay_throughput")
    parser.add_argument("--quick", action="store_true", help="one round of 3 s measurements")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.name = 1, 3.0, f"{args.name}_quick"
    agent = modelrl.make_agent("alphazero", env="TicTacToe-v0", seed=0, simulations=args.simulations,
                               parallel_games=args.parallel_games)
    rates: dict[str, dict[int, list[dict]]] = {b: {n: [] for n in args.actors} for b in BACKENDS}
    for r in range(args.rounds):
        for backend in BACKENDS if r % 2 == 0 else BACKENDS[::-1]:
            for actors in args.actors:
                result = measure(agent, backend, actors, args.seconds)
                rates[backend][actors].append(result)
                print(f"round {r} {backend} x{actors}: {result['games_per_s']:.1f} games/s "
                      f"(start {result['start_s']:.1f} s)", flush=True)
    summary = {backend: {str(n): {key: spread([m[key] for m in rates[backend][n]])
                                  for key in ("games_per_s", "moves_per_s", "start_s")}
                         for n in args.actors} for backend in BACKENDS}
    ratio = {str(n): spread([ray["games_per_s"] / pool["games_per_s"]
                             for ray, pool in zip(rates["ray"][n], rates["processes"][n], strict=True)])
             for n in args.actors}
    write_results(args.name, {"settings": vars(args), "games_per_s": summary, "ray_over_processes": ratio,
                              "rounds": {b: {str(n): rates[b][n] for n in args.actors} for b in BACKENDS}})
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for backend in BACKENDS:
        medians = [summary[backend][str(n)]["games_per_s"]["median"] for n in args.actors]
        ax.plot(args.actors, medians, marker="o", label="Ray actors" if backend == "ray" else "processes")
    ax.set_xticks(args.actors)
    ax.set_xlabel("self-play actors")
    ax.set_ylabel("finished games per second (median of rounds)")
    ax.set_title(f"AlphaZero TicTacToe self-play, {args.simulations} simulations a move")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / f"{args.name}.png", dpi=120)
    print(np.round([[summary[b][str(n)]["games_per_s"]["median"] for n in args.actors] for b in BACKENDS], 1))


if __name__ == "__main__":
    main()
