"""(32a, 32d) AlphaZero (the rules as its model) or MuZero (a learned model, `--agent muzero`) on TicTacToe
against the exact solver: after `--moves` self-play moves, 100 games as the first player and 100 as the
second against `modelrl/TicTacToe-v0`'s solver opponent (a random one of its best moves), searching without
root noise and playing the most visited move. Targets: AlphaZero no loss; MuZero a draw or a win in >= 95%
of the games. Along the way, every `--eval-every` moves, the mean score (+1 a win, -1 a loss) over 20 games
against the solver. Reports the self-play games, moves and wall time each seed took.

    python benchmarks/alphazero_tictactoe.py --seeds 0 1 2 --moves 30000
    python benchmarks/alphazero_tictactoe.py --agent muzero --seeds 0 1 2 --moves 60000
    python benchmarks/alphazero_tictactoe.py --quick      # one seed, 2,000 moves, 10 games a side
    python benchmarks/alphazero_tictactoe.py --merge NAME_seed0 NAME_seed1 --name NAME  # seeds run apart

`--eval-simulations 25 100` plays the final games once per simulation count (the first is the headline).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from common import (
    RESULTS,
    merged_runs,
    read_results,
    results_name,
    shared_settings,
    value_check,
    write_results,
)

import modelrl
from modelrl.config import parse_assignments


def final_games(agent, first: bool, games: int, seed: int) -> dict:
    env = modelrl.make_env("TicTacToe-v0", opponent="solver", agent_first=first)
    counts = {"wins": 0, "draws": 0, "losses": 0}
    for game in range(games):
        obs, info = env.reset(seed=10_000 * seed + game)
        agent.on_reset(evaluation=True)
        done = False
        while not done:
            action, _ = agent.policy(obs, None, info, deterministic=True)
            obs, reward, done, _, info = env.step(action)
        counts["wins" if reward > 0 else "losses" if reward < 0 else "draws"] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", choices=["alphazero", "muzero"], default="alphazero")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--moves", type=int, default=30_000, help="self-play moves per seed")
    parser.add_argument("--eval-every", type=int, default=5000)
    parser.add_argument("--games", type=int, default=100, help="final games per side")
    parser.add_argument("--eval-simulations", type=int, nargs="+", metavar="N",
                        help="play the final games searching N simulations a move, each N in turn (the first "
                             "N's games are the headline); default: the training config's")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--name", type=results_name, help="results file name (default AGENT_tictactoe)")
    parser.add_argument("--save-dir", type=Path, help="save each seed's trained agent here (NAME-seedK.pt)")
    parser.add_argument("--merge", nargs="+", type=results_name, metavar="NAME",
                        help="combine the seeds of earlier results of the same settings into --name")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.eval_simulations and min(args.eval_simulations) < 1:
        parser.error(f"--eval-simulations must be at least 1, got {args.eval_simulations}")
    if args.quick:
        args.seeds, args.moves, args.eval_every, args.games = args.seeds[:1], 2000, 1000, 10
    name = args.name or f"{args.agent}_tictactoe"
    name = f"{name}_quick" if args.quick else name
    if args.merge:
        parts, merged_from = read_results(args.merge, into=name)
        settings = shared_settings(parts, args.merge,
                                   ("agent", "config", "eval_simulations", "games_per_side"))
        runs = merged_runs(parts, args.merge, "runs")
        write_results(name, {**settings, **outcome(settings["agent"], runs, settings["games_per_side"]),
                             "runs": runs, "merged_from": merged_from})
        plot(runs, name, "AlphaZero" if settings["agent"] == "alphazero" else "MuZero")
        return
    overrides = parse_assignments(args.set)
    torch.set_num_threads(1)
    runs = []
    for seed in args.seeds:
        agent = modelrl.make_agent(args.agent, env="TicTacToe-v0", seed=seed,
                                   env_kwargs={"opponent": "solver"}, **overrides)
        started = time.perf_counter()
        history = agent.learn(args.moves, eval_every=args.eval_every, eval_episodes=20)
        trained = time.perf_counter() - started
        if args.save_dir is not None:
            agent.save(args.save_dir / f"{Path(name).name}-seed{seed}.pt")
        trained_config, by_simulations = agent.config, {}
        for simulations in args.eval_simulations or [trained_config.simulations]:
            agent.config = dataclasses.replace(trained_config, simulations=simulations)
            by_simulations[simulations] = {side: final_games(agent, side == "first", args.games, seed)
                                           for side in ("first", "second")}
            print(f"seed {seed}, {simulations} simulations: {by_simulations[simulations]}", flush=True)
        agent.config = trained_config
        result = next(iter(by_simulations.values()))
        runs.append({"seed": seed, "self_play_moves": agent.env_steps, "self_play_games": agent.episodes,
                     "updates": agent.updates, "wall_time_s": trained,
                     "curve": [{"moves": row["env_steps"], "score_vs_solver": row["eval_return"],
                                **value_check(row)}
                               for row in history], **result,
                     "final_by_simulations": {str(n): games for n, games in by_simulations.items()}})
        print(f"seed {seed}: {agent.episodes} games, {trained:.0f} s; as first {result['first']}, as second "
              f"{result['second']}", flush=True)
        write_results(name, {"agent": args.agent, "config": {**vars(agent.config)},
                             "eval_simulations": args.eval_simulations or [agent.config.simulations],
                             "games_per_side": args.games, **outcome(args.agent, runs, args.games),
                             "runs": runs})
        plot(runs, name, "AlphaZero" if args.agent == "alphazero" else "MuZero")


def outcome(agent: str, runs: list[dict], games_per_side: int) -> dict:
    """The headline games of every seed against the target: AlphaZero no loss, MuZero >= 95% drawn or won."""
    losses = sum(run[side]["losses"] for run in runs for side in ("first", "second"))
    games = 2 * games_per_side * len(runs)
    target = ("no loss against the exact solver" if agent == "alphazero"
              else "a draw or a win in >= 95% of the games against the exact solver")
    met = losses == 0 if agent == "alphazero" else (games - losses) >= 0.95 * games
    return {"target": target, "losses": losses, "games": games, "draw_or_win_share": (games - losses) / games,
            "met": met}


def plot(runs: list[dict], name: str, agent: str) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        axes[0].plot([p["moves"] for p in run["curve"]], [p["score_vs_solver"] for p in run["curve"]], "o-",
                     label=f"seed {run['seed']}")
    axes[0].axhline(0, color="grey", linestyle=":", label="draw (the best possible)")
    axes[0].set(xlabel="self-play moves", ylabel="mean score vs the solver (20 games)",
                title=f"{agent} TicTacToe: training")
    axes[0].legend(fontsize=8)
    labels = []
    for i, run in enumerate(runs):
        for j, side in enumerate(("first", "second")):
            x = 2 * i + j
            counts = run[side]
            bottom = 0
            for key, color in (("wins", "C2"), ("draws", "C7"), ("losses", "C3")):
                axes[1].bar(x, counts[key], bottom=bottom, color=color, label=key if x == 0 else None)
                bottom += counts[key]
            labels.append(f"s{run['seed']} {side}")
    axes[1].set_xticks(range(len(labels)), labels, rotation=45, fontsize=7)
    axes[1].set(ylabel="games", title="Final games against the solver")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
