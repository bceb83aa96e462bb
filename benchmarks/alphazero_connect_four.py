"""(32b) AlphaZero on Connect Four against OpenSpiel's MCTS bot: after `--moves` self-play moves, `--games`
games alternating colours against OpenSpiel 2.0.2's `MCTSBot` with random rollouts at `--opponent-simulations`
per move (benchmarks/anchors/openspiel_connect_four.sh, a venv of its own, spoken to as JSON lines), our side
searching `--simulations` per move (no noise, the most visited move, or Gumbel's choice). Target: a win rate
>= 90% with at most 200 simulations per move on our side, against 1,000 on the bot's. Along the way, every
`--eval-every` moves, the mean score against a random player (the env's built-in opponent, 20 games), and
every `--bot-every` moves the win rate in `--bot-games` games against the bot: how it grows with training.

    python benchmarks/alphazero_connect_four.py --moves 200000 --games 100
    python benchmarks/alphazero_connect_four.py --quick      # 2,000 moves, 4 games, a 100-simulation bot

`--checkpoint runs/c4.pt` saves the agent and its curve after every evaluation, and the same command run
again continues from there: a run of a million moves can span sessions.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from common import RESULTS, fail, results_name, value_check, write_results

import modelrl
from modelrl.config import parse_assignments

ANCHOR = Path(__file__).resolve().parent / "anchors" / "openspiel_connect_four.sh"
# Gumbel roots with few simulations train fastest on this CPU (docs/agents.md); a small conv net
DEFAULTS = {"network": "conv", "hidden_size": 64, "num_layers": 4, "gumbel": True, "simulations": 32,
            "parallel_games": 32}


class OpenSpielBot:
    def __init__(self, simulations: int):
        self.process = subprocess.Popen(["bash", str(ANCHOR), "--simulations", str(simulations)], text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.info = json.loads(self.process.stdout.readline())
        self.seconds: list[float] = []

    def move(self, moves: list[int], seed: int) -> int:
        self.process.stdin.write(json.dumps({"moves": moves, "seed": seed}) + "\n")
        self.process.stdin.flush()
        reply = json.loads(self.process.stdout.readline())
        self.seconds.append(reply["seconds"])
        return reply["move"]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


def play_bot(agent, bot: OpenSpielBot, agent_first: bool, seed: int) -> float:
    """One game; +1 if the agent wins, -1 if the bot does, 0 a draw."""
    game = agent.game
    board, moves = game.initial(1, agent.device), []
    agent_to_move = agent_first
    while True:
        if agent_to_move:
            action = agent.act(board[0].cpu().numpy(), deterministic=True,
                               legal=game.legal(board)[0].cpu().numpy())
        else:
            action = bot.move(moves, (seed * 1000 + len(moves)) % 2**32)
        moves.append(int(action))
        board, won, over = game.play(board, torch.tensor([action], device=agent.device))
        if over.item():
            return (1.0 if agent_to_move else -1.0) if won.item() else 0.0
        agent_to_move = not agent_to_move


def play_match(agent, bot: OpenSpielBot, games: int, seed: int, simulations: int) -> list[dict]:
    """`games` games against the bot, colours alternating, our search at `simulations` a move."""
    training_simulations, agent.config.simulations = agent.config.simulations, simulations
    outcomes = []
    try:
        for game in range(games):
            outcomes.append({"agent_first": game % 2 == 0,
                             "score": play_bot(agent, bot, game % 2 == 0, seed * 100_000 + game)})
    finally:
        agent.config.simulations = training_simulations
    return outcomes


def win_rate(outcomes: list[dict]) -> float:
    return float(np.mean([o["score"] > 0 for o in outcomes]))


def curve_file(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name + ".curve.json")


def start_or_continue(args, overrides: dict) -> tuple:
    """A new agent, or the one `--checkpoint` holds with its curve so far and the seconds it took."""
    if args.checkpoint is None or not args.checkpoint.exists():
        agent = modelrl.make_agent("alphazero", env="ConnectFour-v0", seed=args.seed, **overrides)
        return agent, [], 0.0
    try:
        agent = modelrl.load(args.checkpoint)
        saved = json.loads(curve_file(args.checkpoint).read_text())
    except (modelrl.ModelRLError, OSError, ValueError) as error:
        fail(f"cannot continue from {args.checkpoint}: {error}")
    print(f"continuing {args.checkpoint} from {agent.env_steps} moves", flush=True)
    return agent, saved["history"], saved["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--moves", type=int, default=200_000, help="self-play moves")
    parser.add_argument("--eval-every", type=int, default=20_000)
    parser.add_argument("--games", type=int, default=100, help="games against the bot, colours alternating")
    parser.add_argument("--simulations", type=int, default=200, help="our search per move against the bot")
    parser.add_argument("--opponent-simulations", type=int, default=1000)
    parser.add_argument("--bot-every", type=int, default=0,
                        help="also play --bot-games games against the bot at the first evaluation past every "
                             "this many moves (0: only at the end)")
    parser.add_argument("--bot-games", type=int, default=20)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--name", type=results_name, default="alphazero_connect_four")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--checkpoint", type=Path,
                        help="save the agent and its curve here after every evaluation; when the file "
                             "exists, continue from it up to --moves (a long run over several sessions)")
    args = parser.parse_args()
    if args.quick:
        args.moves, args.eval_every, args.games, args.opponent_simulations = 2000, 1000, 4, 100
        args.name = f"{args.name}_quick"
        args.bot_every, args.bot_games = args.bot_every and 1000, 2
    if args.bot_every < 0 or args.bot_games < 1:
        parser.error(f"--bot-every must be >= 0, --bot-games >= 1 (got {args.bot_every}, {args.bot_games})")
    torch.set_num_threads(1)
    overrides = {**DEFAULTS, **parse_assignments(args.set)}
    agent, history, earlier_seconds = start_or_continue(args, overrides)
    continued_from = agent.env_steps if history else None
    started, match_seconds = time.perf_counter(), 0.0
    bot = OpenSpielBot(args.opponent_simulations)

    def self_play_seconds() -> float:
        return earlier_seconds + time.perf_counter() - started - match_seconds

    next_match = (agent.env_steps // args.bot_every + 1) * args.bot_every if args.bot_every else None

    def evaluated(row: dict) -> None:
        nonlocal match_seconds, next_match
        if next_match is not None and row["env_steps"] >= next_match:
            next_match += args.bot_every
            matched = time.perf_counter()
            outcomes = play_match(agent, bot, args.bot_games, args.seed + row["env_steps"], args.simulations)
            row["win_rate_vs_bot"], row["bot_games"] = win_rate(outcomes), len(outcomes)
            match_seconds += time.perf_counter() - matched
            print(f"{row['env_steps']} moves: win rate {row['win_rate_vs_bot']:.2f} against the bot "
                  f"({time.perf_counter() - matched:.0f} s)", flush=True)
        history.append(row)
        if args.checkpoint is not None:
            agent.save(args.checkpoint)
            curve_file(args.checkpoint).write_text(json.dumps(
                {"history": history, "seconds": self_play_seconds()}))

    try:
        agent.learn(max(args.moves - agent.env_steps, 0), eval_every=args.eval_every, eval_episodes=20,
                    callback=evaluated)
        trained = self_play_seconds()
        outcomes = play_match(agent, bot, args.games, args.seed, args.simulations)
    finally:
        bot.close()
    training_config = {**vars(agent.config)}
    scores = np.array([o["score"] for o in outcomes])
    record = {
        "config": training_config, "self_play_moves": agent.env_steps,
        "self_play_games": agent.episodes,
        "updates": agent.updates, "train_wall_s": trained, "our_simulations": args.simulations,
        "opponent": {"bot": "open_spiel 2.0.2 MCTSBot, RandomRolloutEvaluator(1), uct_c 2, solve",
                     "simulations": args.opponent_simulations, **bot.info,
                     "seconds_per_move": float(np.mean(bot.seconds)) if bot.seconds else None},
        "games": len(outcomes), "wins": int((scores > 0).sum()), "draws": int((scores == 0).sum()),
        "losses": int((scores < 0).sum()), "win_rate": float((scores > 0).mean()),
        "win_rate_as_first": float((scores[0::2] > 0).mean()),
        "win_rate_as_second": float((scores[1::2] > 0).mean()) if len(scores) > 1 else None,
        "target": "win rate >= 0.9 with <= 200 simulations a move against the bot's 1,000",
        "met": float((scores > 0).mean()) >= 0.9 and args.simulations <= 200
        and args.opponent_simulations >= 1000,
        "curve": [{"moves": row["env_steps"], "score_vs_random": row["eval_return"],
                   **value_check(row),
                   **({"win_rate_vs_bot": row["win_rate_vs_bot"], "bot_games": row["bot_games"]}
                      if "win_rate_vs_bot" in row else {})} for row in history],
        "continued_from": continued_from,
        "outcomes": outcomes,
    }
    write_results(args.name, record)
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    curve = record["curve"]
    axes[0].plot([p["moves"] for p in curve], [p["score_vs_random"] for p in curve], "o-",
                 label="mean score vs a random player (20 games)")
    against_bot = [p for p in curve if "win_rate_vs_bot" in p]
    if against_bot:
        axes[0].plot([p["moves"] for p in against_bot], [p["win_rate_vs_bot"] for p in against_bot], "s-",
                     label=f"win rate vs the bot ({against_bot[-1]['bot_games']} games)")
    axes[0].axhline(0.9, color="C3", ls=":", lw=1)
    axes[0].set(xlabel="self-play moves", title="AlphaZero Connect Four: training")
    axes[0].legend(fontsize=8)
    # the value's error on new games against its replay's: a gap means it learns its replay by heart
    for key, label in (("value_mse_new", "new games, before learning from them"),
                       ("value_mse_replay", "replayed positions")):
        points = [p for p in curve if key in p]
        axes[1].plot([p["moves"] for p in points], [p[key] for p in points], "o-", label=label)
    axes[1].set(xlabel="self-play moves", ylabel="squared error of the value", title="The value's error")
    axes[1].legend(fontsize=8)
    axes[2].bar(["wins", "draws", "losses"], [record["wins"], record["draws"], record["losses"]],
                color=["C2", "C7", "C3"])
    axes[2].set(title=f"vs OpenSpiel MCTS ({args.opponent_simulations} sims), ours {args.simulations}",
                ylabel="games")
    fig.tight_layout()
    fig.savefig(RESULTS / f"{args.name}.png", dpi=110)
    print(f"win rate {record['win_rate']:.2f} ({record['wins']}/{record['draws']}/{record['losses']}), "
          f"{trained:.0f} s of self-play")


if __name__ == "__main__":
    main()
