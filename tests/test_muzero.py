"""MuZero: its value transform, its unrolled losses, checkpoints and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import modelrl
from modelrl.cli import main
from modelrl.errors import ConfigError, IncompatibleEnvError
from modelrl.models.distributions import TwoHot, muzero_squash, muzero_unsquash
from modelrl.planning.mcts import MCTSConfig, search

SMALL = {"simulations": 8, "learning_starts": 40, "batch_size": 16, "hidden_size": 32, "latent_size": 16,
         "unroll_steps": 3, "td_steps": 5}


def test_the_value_transform_and_its_support_round_trip():
    x = torch.tensor([-300.0, -3.3, 0.0, 0.5, 7.0, 130.0])
    torch.testing.assert_close(muzero_unsquash(muzero_squash(x)), x, rtol=1e-4, atol=1e-4)
    support = TwoHot(41, -20, 20, squash="muzero")
    torch.testing.assert_close(support.mean(torch.log(support.encode(x) + 1e-12)), x, rtol=1e-3, atol=1e-3)


def prediction_errors(agent, batch) -> list[float]:
    """Mean absolute error of the predicted value at k = 0 and of the reward and value at k = 1."""
    network, support = agent.network, agent.network.support
    with torch.no_grad():
        latent = network.initial(batch["obs"])
        value0 = support.mean(network.predict(latent)[1])
        latent, reward = network.recurrent(latent, batch["action"][:, 0])
        value1 = support.mean(network.predict(latent)[1])
    return [float((value0 - batch["value"][:, 0]).abs().mean()),
            float((support.mean(reward) - batch["reward"][:, 1]).abs().mean()),
            float((value1 - batch["value"][:, 1]).abs().mean())]


@pytest.mark.parametrize("reward_head", ["dynamics", "per_action"])
def test_unrolled_losses_fall_on_a_fixed_batch(reward_head):
    agent = modelrl.make_agent("muzero", env="CartPole-v1", seed=0, reward_head=reward_head, **SMALL)
    agent.learn(120)
    batch = agent.sample()
    assert batch["action"].shape == (16, 3) and batch["value"].shape == (16, 4)
    with torch.no_grad():
        losses = {key: float(value) for key, value in agent.losses(batch).items() if key != "first_value"}
    errors = prediction_errors(agent, batch)
    for _ in range(600):
        agent.update(batch)
    with torch.no_grad():
        after = agent.losses(batch)
    assert all(float(after[key]) < before for key, before in losses.items()), (losses, after)
    # two-hot cross-entropies stop at their targets' entropy: the predictions themselves must come close
    # (seed 0: the errors fell to 0.08, 0.07 and 0.14 of their first values, per_action 0.25, 0.02, 0.25)
    assert all(b < 0.6 * a for a, b in zip(errors, prediction_errors(agent, batch), strict=True)), errors


def test_value_targets_are_n_step_returns_that_stop_at_the_episode_end():
    agent = modelrl.make_agent("muzero", env="CartPole-v1", seed=0, **{**SMALL, "td_steps": 2,
                                                                       "discount": 0.5})
    game = {"obs": np.zeros((3, 4), np.float32), "action": np.array([0, 1, 0]),
            "reward": np.array([1.0, 2.0, 4.0]), "policy": np.full((3, 2), 0.5),
            "root_value": np.array([10.0, 20.0, 40.0])}
    # t = 0: 1 + 0.5 * 2 + 0.25 * v(2) = 12; t = 1: 2 + 0.5 * 4 = 4 (the episode ends); t = 2: 4
    assert agent.value_targets(game).tolist() == [12.0, 4.0, 4.0]


def test_replay_draws_positions_by_priority_and_updates_them():
    agent = modelrl.make_agent("muzero", env="CartPole-v1", seed=0, **SMALL, priority_exponent=1.0)
    agent.learn(100)
    for game in agent.games:  # one position gets nearly all the priority
        game["priority"][:] = 1e-6
    agent.games[0]["priority"][1] = 1.0
    batch = agent.sample()
    assert (batch["game"] == 0).float().mean() > 0.9 and (batch["position"][batch["game"] == 0] == 1).all()
    weights, likely = batch["weight"], batch["game"] == 0
    assert weights.max() == 1.0 and weights[likely].max() == weights.min()  # the likeliest weighs least
    agent.update(batch)
    assert agent.games[0]["priority"][1] != 1.0  # replaced by the new error


def test_muzero_resumes_exactly_and_refuses_continuous_actions(tmp_path):
    first = modelrl.make_agent("muzero", env="CartPole-v1", seed=1, **SMALL)
    first.learn(60)
    first.save(tmp_path / "mz.pt")
    first.learn(30)
    resumed = modelrl.load(tmp_path / "mz.pt")
    resumed.learn(30)
    assert first.updates == resumed.updates > 0
    for a, b in zip(first.network.parameters(), resumed.network.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(IncompatibleEnvError, match="Discrete actions"):
        modelrl.make_agent("muzero", env="Pendulum-v1")


def test_reanalyse_replaces_stored_policies_and_values_with_a_fresh_search():
    agent = modelrl.make_agent("muzero", env="CartPole-v1", seed=0, **SMALL)
    agent.learn(60)
    before = [(game["policy"].copy(), game["root_value"].copy()) for game in agent.games]
    agent.reanalyse(200)  # more draws than positions: nearly every one is searched again
    changed = sum(int((game["policy"] != policy).any(1).sum())
                  for game, (policy, _) in zip(agent.games, before, strict=True))
    assert changed > 0.5 * sum(len(game["action"]) for game in agent.games)
    # a position searched again holds what a fresh search of it gives now
    g, t = next((g, t) for g, (policy, _) in enumerate(before)
                for t in range(len(policy)) if (agent.games[g]["policy"][t] != policy[t]).any())
    game = agent.games[g]
    fresh = search(agent.network, torch.as_tensor(game["obs"][t:t + 1]), torch.ones(1, 2, dtype=torch.bool),
                   MCTSConfig(simulations=SMALL["simulations"], discount=agent.config.discount,
                              two_player=False, root_noise=0.0))
    assert np.allclose(game["policy"][t], fresh.improved_policy[0].numpy())
    assert np.isclose(game["root_value"][t], float(fresh.value[0]))


def test_reanalyse_searches_a_whole_batch_once_that_many_positions_are_owed():
    agent = modelrl.make_agent("muzero", env="CartPole-v1", seed=0, reanalyse_per_update=6, **SMALL)
    calls, search_again = [], agent.reanalyse
    agent.reanalyse = lambda count: (calls.append((agent.updates, count)), search_again(count))
    agent.learn(120)
    assert agent.updates >= 20
    # 6 an update in batches of 16: after updates 3, 6, 8, 11, ... (16 * floor(6u / 16) owed by update u)
    assert calls == [(u, 16) for u in range(1, agent.updates + 1) if 6 * u // 16 > 6 * (u - 1) // 16]


@pytest.mark.parametrize("backend", ["processes", "ray"])
def test_muzero_actors_play_episodes_that_the_learner_learns_from(backend):
    if backend == "ray":
        pytest.importorskip("ray")
    agent = modelrl.make_agent("muzero", env="CartPole-v1", seed=0, actors=2, backend=backend,
                               **SMALL)
    before = [p.clone() for p in agent.network.parameters()]
    history = agent.learn(150, eval_every=150, eval_episodes=1)
    assert agent.env_steps >= 150 and agent.episodes == len(agent.games) >= 2
    assert all(len(game["priority"]) == len(game["action"]) for game in agent.games)
    assert agent.env_steps == sum(len(game["action"]) for game in agent.games)
    assert agent.updates > 0 and agent.workers is None  # the actors stop with the call
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.network.parameters(), strict=True))
    assert history[-1]["episode_return"] > 0


def test_on_a_board_game_value_targets_alternate_with_the_player_to_move():
    agent = modelrl.make_agent("muzero", env="TicTacToe-v0", seed=0, td_steps=9, discount=1.0)
    # five moves, the last (the first player's third) winning: each position's outcome for its mover
    game = {"reward": np.array([0, 0, 0, 0, 1.0]), "root_value": np.zeros(5)}
    np.testing.assert_array_equal(agent.value_targets(game), [1, -1, 1, -1, 1])
    assert agent.game_stats({"reward": game["reward"], "action": np.zeros(5)}) == (1.0, 5)
    assert agent.game_stats({"reward": np.array([0, 0, 0, 0, 0, 1.0]), "action": np.zeros(6)}) == (-1.0, 6)
    agent.config.td_steps = 2  # bootstrapped: r1 - r2 + v(t + 2), v for the same mover as t
    game["root_value"] = np.array([0, 0, 0.5, 0.25, 0])
    np.testing.assert_allclose(agent.value_targets(game), [0.5, 0.25, 0, -1, 1])


def test_muzero_plays_itself_at_tictactoe_and_resumes_exactly(tmp_path):
    small = {**SMALL, "parallel_games": 8, "learning_starts": 64}
    first = modelrl.make_agent("muzero", env="TicTacToe-v0", seed=0, **small)
    first.learn(80)
    assert first.env_steps == 80 and first.episodes == len(first.games) > 0 and first.updates > 0
    game = first.games[0]
    moves = len(game["action"])
    assert game["obs"].shape == (moves, 9) and 5 <= moves <= 9
    assert (game["reward"][:-1] == 0).all() and game["reward"][-1] in (0.0, 1.0)
    # each position is seen by its mover: the stones of both sides balance before the first player moves
    assert all(abs(board.sum()) <= 1 for board in game["obs"])
    first.save(tmp_path / "mz.pt")
    first.learn(40)
    resumed = modelrl.load(tmp_path / "mz.pt")
    resumed.learn(40)
    for a, b in zip(first.network.parameters(), resumed.network.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ConfigError, match="actors play single-agent envs"):
        modelrl.make_agent("muzero", env="TicTacToe-v0", actors=2)


@pytest.mark.slow
def test_muzero_learns_tictactoe_against_a_random_player():
    agent = modelrl.make_agent("muzero", env="TicTacToe-v0", seed=1, simulations=16, parallel_games=16,
                               learning_starts=200)
    first = agent.evaluate(50)["eval_return"]
    history = agent.learn(3000, eval_every=1000, eval_episodes=50)
    assert max(row["eval_return"] for row in history) >= first + 0.3, (first, history)


def test_on_a_board_game_muzero_moves_only_where_the_rules_allow(tmp_path, capsys):
    agent = modelrl.make_agent("muzero", env="TicTacToe-v0", seed=0, simulations=8)
    rng = np.random.default_rng(0)
    for _ in range(20):  # untrained: its prior favours no cell, yet taken cells are never chosen
        board = np.zeros(9, np.float32)
        taken = rng.choice(9, size=rng.integers(1, 8), replace=False)
        board[taken] = rng.choice([-1.0, 1.0], size=len(taken))
        assert agent.act(board, deterministic=True) not in taken
    single = modelrl.make_agent("muzero", env="CartPole-v1", **SMALL)
    single.save(tmp_path / "run" / "checkpoints" / "last.pt")
    assert main(["play", str(tmp_path / "run")]) == 2
    assert "play needs an agent of a board game" in capsys.readouterr().err


def test_on_a_board_game_an_unroll_is_augmented_by_one_symmetry_throughout():
    agent = modelrl.make_agent("muzero", env="TicTacToe-v0", seed=0, **{**SMALL, "parallel_games": 8})
    agent.learn(80)
    state = agent.rng.bit_generator.state
    agent.config.augment = False
    plain = agent.sample()
    agent.rng.bit_generator.state = state
    agent.config.augment = True
    seen = agent.sample()
    cells, moves, inverse = agent.symmetry_cells, agent.symmetry_actions, agent.symmetry_inverse
    changed = 0
    for b in range(len(plain["obs"])):
        fits = [s for s in range(len(cells))
                if torch.equal(seen["obs"][b], plain["obs"][b][cells[s]])
                and torch.equal(seen["action"][b], torch.as_tensor(inverse[s])[plain["action"][b]])
                and torch.equal(seen["policy"][b], plain["policy"][b][:, moves[s]])]
        assert fits, b  # board, actions and policies under one symmetry
        changed += not torch.equal(seen["obs"][b], plain["obs"][b])
    assert changed > 0 and torch.equal(seen["value"], plain["value"]) and torch.equal(seen["reward"],
                                                                                     plain["reward"])


def test_the_training_temperature_halves_at_the_given_steps_and_bad_schedules_are_refused(monkeypatch):
    import modelrl.agents.muzero as muzero_module

    agent = modelrl.make_agent("muzero", env="CartPole-v1", seed=0, temperature_halvings="30,60", **SMALL)
    assert [agent.config.temperature_at(steps) for steps in (0, 29, 30, 59, 60, 1000)] == [
        1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    used, search_action = [], muzero_module.search_action

    def spy(*args, **kwargs):
        used.append(kwargs["temperature"])
        return search_action(*args, **kwargs)

    monkeypatch.setattr(muzero_module, "search_action", spy)
    agent.learn(70)
    assert used[:30] == [1.0] * 30 and used[30:60] == [0.5] * 30 and used[60:] == [0.25] * 10
    for bad in ("60,30", "ten", "-5"):
        with pytest.raises(ConfigError, match="temperature_halvings must be env steps in increasing order"):
            modelrl.make_agent("muzero", env="CartPole-v1", temperature_halvings=bad)
    with pytest.raises(ConfigError, match="actors do not see"):
        modelrl.make_agent("muzero", env="CartPole-v1", temperature_halvings="100", actors=2)


def test_the_per_action_reward_head_reads_the_taken_actions_reward_from_the_current_latent():
    agent = modelrl.make_agent("muzero", env="CartPole-v1", seed=0, reward_head="per_action", **SMALL)
    network = agent.network
    latent = network.initial(torch.randn(5, 4))
    actions = torch.tensor([0, 1, 1, 0, 1])
    every_action = network.reward(latent).view(5, 2, -1)
    torch.testing.assert_close(network.recurrent(latent, actions)[1], every_action[torch.arange(5), actions])
    with pytest.raises(ConfigError, match="reward_head must be 'dynamics' or 'per_action'"):
        modelrl.make_agent("muzero", env="CartPole-v1", reward_head="latent")


def test_the_learning_rate_falls_tenfold_every_lr_decay_steps_updates_and_resumes_on_schedule(tmp_path):
    agent = modelrl.make_agent("muzero", env="CartPole-v1", seed=0, lr=1e-3, lr_decay_steps=4, **SMALL)
    agent.learn(60)
    batch = agent.sample()
    start = agent.updates
    for _ in range(8):
        agent.update(batch)
    # the last of the 8 updates stepped at the rate of its own count, start + 7
    assert agent.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.1 ** ((start + 7) / 4))
    agent.save(tmp_path / "decay.pt")
    resumed = modelrl.load(tmp_path / "decay.pt")
    resumed.update(batch)
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.1 ** ((start + 8) / 4))
    constant = modelrl.make_agent("muzero", env="CartPole-v1", seed=0, lr=1e-3, **SMALL)
    constant.learn(60)
    assert constant.optimizer.param_groups[0]["lr"] == 1e-3
    with pytest.raises(ConfigError, match="lr_decay_steps"):
        modelrl.make_agent("muzero", env="CartPole-v1", lr_decay_steps=-1)
