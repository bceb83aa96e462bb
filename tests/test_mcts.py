"""Batched MCTS (`modelrl.planning.mcts`) on the board games' rules (`modelrl.envs.games`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modelrl.envs.games import ConnectFour, TicTacToe, solve_tictactoe
from modelrl.planning.mcts import GameModel, MCTSConfig, search

X, O, _ = 1.0, -1.0, 0.0  # boards are seen by the player to move: X is the mover


def board(*cells) -> torch.Tensor:
    return torch.tensor([cells], dtype=torch.float32)


def test_tictactoe_rules_and_the_solver():
    game = TicTacToe()
    start = game.initial(2)
    assert game.legal(start).all()
    boards, won, over = game.play(board(X, X, _, O, O, _, _, _, _).expand(2, -1), torch.tensor([2, 5]))
    assert won.tolist() == [True, False] and over.tolist() == [True, False]
    assert boards[0].tolist() == [O, O, O, X, X, _, _, _, _]  # seen by the next player
    assert solve_tictactoe([0] * 9) == (0, list(range(9)))  # the empty board is a draw, any first move holds
    assert solve_tictactoe([X, X, _, O, O, _, _, _, _]) == (1, [2])
    assert solve_tictactoe([O, O, _, _, X, _, _, _, _]) == (0, [2])  # the one move that does not lose


def test_connect_four_drops_stones_and_sees_lines_every_way():
    game = ConnectFour()
    boards = game.initial(1)
    for column in (3, 3, 3):
        boards = -game.place(boards, torch.tensor([column]))  # alternate players on one column
    assert boards[0, 5, 3] == -boards[0, 4, 3] and boards[0, 3, 3] != 0 and boards[0, 2, 3] == 0
    lines = torch.zeros(4, 6, 7)
    lines[0, 5, 1:5] = 1  # a row
    lines[1, 2:6, 6] = 1  # a column
    lines[2, [2, 3, 4, 5], [0, 1, 2, 3]] = 1  # diagonals both ways
    lines[3, [0, 1, 2, 3], [6, 5, 4, 3]] = 1
    assert game.wins(lines).all()
    three = lines.clone()
    three[:, 2:4] = 0
    three[:, :, 3] = 0
    assert not game.wins(three).any()
    full = torch.ones(1, 6, 7)
    full[0, :, 2] = 0
    assert game.legal(full).tolist() == [[False, False, True, False, False, False, False]]


@pytest.mark.parametrize("position, move", [
    ((X, X, _, O, O, _, _, _, _), 2),  # win now
    ((O, O, _, _, X, _, _, _, _), 2),  # block the opponent's row, else lose
    ((X, O, X, _, O, _, _, _, _), 7),  # block the column
])
def test_search_with_the_rules_alone_wins_or_blocks(position, move):
    config = MCTSConfig(simulations=300, root_noise=0.0)
    root = board(*position)
    result = search(GameModel(TicTacToe()), root, TicTacToe().legal(root), config)
    assert int(result.visits.argmax()) == move, result.visits


class PerfectValue:
    """The solver's value of each board for the player to move, and a uniform prior."""

    def __call__(self, boards):
        values = [0.0 if not (b == 0).any() or TicTacToe().wins(-b[None]).item()
                  else float(solve_tictactoe(b.tolist())[0]) for b in boards]
        return torch.zeros(len(boards), 9), torch.tensor(values)


def test_with_a_perfect_value_the_visits_concentrate_on_the_optimal_moves():
    rng = np.random.default_rng(0)
    game, positions = TicTacToe(), []
    while len(positions) < 8:  # random positions of 2-4 stones, game not over
        boards = game.initial(1)
        for _ in range(rng.integers(2, 5)):
            legal = np.flatnonzero(game.legal(boards)[0].numpy())
            boards, _, over = game.play(boards, torch.tensor([rng.choice(legal)]))
            if over.item():
                break
        else:
            positions.append(boards[0])
    roots = torch.stack(positions)  # one batch of 8 trees
    result = search(GameModel(game, PerfectValue()), roots, game.legal(roots),
                    MCTSConfig(simulations=200, root_noise=0.0))
    for root, visits in zip(roots, result.visits, strict=True):
        optimal = solve_tictactoe(root.tolist())[1]
        assert int(visits.argmax()) in optimal
        assert visits[optimal].sum() / visits.sum() >= 0.5, (root, visits, optimal)


def test_root_noise_and_illegal_moves():
    game = TicTacToe()
    root = board(X, O, X, O, _, _, _, _, _)
    config = MCTSConfig(simulations=40, root_noise=0.25)
    result = search(GameModel(game), root, game.legal(root), config, np.random.default_rng(0))
    assert (result.visits[0, :4] == 0).all() and result.visits.sum() == 40
    assert torch.isclose(result.prior.sum(), torch.tensor(1.0)) and (result.prior[0, :4] == 0).all()


class Bandit:
    """One step from the root: action a pays `rewards[a]` and ends; a uniform prior, value 0."""

    def __init__(self, rewards):
        self.rewards = torch.tensor(rewards)

    def root(self, obs):
        return torch.zeros(len(obs), len(self.rewards)), torch.zeros(len(obs)), obs

    def step(self, state, action):
        batch, actions = len(state), len(self.rewards)
        return (self.rewards[action], torch.zeros(batch, actions), torch.zeros(batch), state,
                torch.ones(batch, dtype=torch.bool), torch.zeros(batch, actions, dtype=torch.bool))


def test_gumbel_search_with_two_simulations_improves_on_the_prior():
    rewards = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    config = MCTSConfig(simulations=2, two_player=False, gumbel=True, max_considered=2)
    roots = torch.zeros(2000, 1)  # 2,000 independent searches in one batch
    result = search(Bandit(rewards), roots, torch.ones(2000, 8, dtype=torch.bool), config,
                    np.random.default_rng(0))
    values = torch.tensor(rewards)
    prior_value = float(values.mean())  # 0.35
    chosen_value = float(values[result.action].mean())
    # the better of two actions drawn without replacement is worth 0.5 in expectation
    assert chosen_value > prior_value + 0.1, chosen_value
    assert float((result.improved_policy * values).sum(-1).mean()) > prior_value
    assert (result.visits.sum(-1) == 2).all() and ((result.visits > 0).sum(-1) == 2).all()


def test_sequential_halving_spends_the_simulations_evenly_then_on_the_better_half():
    from modelrl.planning.mcts import considered_visits

    assert considered_visits(4, 8) == [0, 0, 0, 0, 1, 1, 2, 2]
    assert considered_visits(2, 2) == [0, 0]
    assert considered_visits(1, 3) == [0, 1, 2]


@pytest.mark.parametrize("game", [TicTacToe(), ConnectFour()])
def test_board_symmetries_map_winning_moves_to_winning_moves(game):
    rng = np.random.default_rng(1)
    boards = game.initial(64)
    for _ in range(6):  # random positions, a few moves in
        moves = torch.as_tensor([rng.choice(np.flatnonzero(m)) for m in game.legal(boards).numpy()])
        boards, _, _ = game.play(boards, moves)
    for cells, actions in game.symmetries():
        turned = boards.flatten(1)[:, cells].view_as(boards)
        for move in range(game.actions):
            legal = game.legal(boards)[:, actions[move]]
            assert torch.equal(game.legal(turned)[:, move], legal)
            picked = torch.full((len(boards),), move)
            original = torch.full((len(boards),), int(actions[move]))
            won = game.wins(game.place(boards, original))[legal]
            assert torch.equal(game.wins(game.place(turned, picked))[legal], won)


class ConstantModel:
    """Two actions, a uniform prior, reward 1 on every step and value 10 everywhere: returns known by hand."""

    def root(self, obs):
        return torch.zeros(len(obs), 2), torch.full((len(obs),), 10.0), obs

    def step(self, state, action):
        batch = len(state)
        return (torch.ones(batch), torch.zeros(batch, 2), torch.full((batch,), 10.0), state + 1,
                torch.zeros(batch, dtype=torch.bool), torch.ones(batch, 2, dtype=torch.bool))


def test_backup_discounts_rewards_and_leaf_values_along_the_whole_path():
    config = MCTSConfig(simulations=2, discount=0.5, two_player=False, root_noise=0.0)
    result = search(ConstantModel(), torch.zeros(3, 1), torch.ones(3, 2, dtype=torch.bool), config)
    # simulation 1 expands action 0: 1 + 0.5 * 10 = 6; simulation 2 goes below it (q 6 beats the unvisited
    # action's exploration alone): its child's edge gets 6 and the root's edge 1 + 0.5 * 6 = 4
    assert result.visits.tolist() == [[2.0, 0.0]] * 3
    assert torch.allclose(result.q[:, 0], torch.tensor(5.0))
    assert torch.allclose(result.value, torch.tensor((10 + 6 + 4) / 3))
    # the results leave the search's inference mode: a loss may use them as targets
    logits = torch.zeros(3, 2, requires_grad=True)
    (logits.log_softmax(-1) * result.improved_policy).sum().backward()
    assert logits.grad is not None


@pytest.mark.slow  # compiles (about 20 s per batch size and path length on one core)
@pytest.mark.parametrize("gumbel", [False, True])
def test_the_compiled_search_keeps_the_eager_statistics(gumbel):
    game = TicTacToe()
    torch.manual_seed(0)
    layer = torch.nn.Linear(9, 10)

    def network(boards):
        out = layer(boards)
        return out[:, :9], out[:, 9].tanh()

    boards, generator = game.initial(8), torch.Generator().manual_seed(1)
    for _ in range(3):  # a few random moves, so the positions differ
        moves = torch.multinomial(game.legal(boards).float(), 1, generator=generator).squeeze(1)
        boards = game.play(boards, moves)[0]
    eager, compiled = (search(GameModel(game, network), boards, game.legal(boards),
                              MCTSConfig(simulations=60, gumbel=gumbel, compile=compiled),
                              np.random.default_rng(2))
                       for compiled in (False, True))
    assert torch.equal(eager.visits, compiled.visits) and torch.equal(eager.action, compiled.action)
    assert torch.allclose(eager.q, compiled.q, atol=1e-5)
    assert torch.allclose(eager.improved_policy, compiled.improved_policy, atol=1e-5)
    assert eager.visits.sum(-1).eq(60).all()


class ChainModel:
    """Single-agent: the prior all but certain of action 0, a reward of 1 on every step: the search goes
    down one line, a path as long as the simulations allow."""

    def root(self, obs):
        return torch.tensor([[10.0, -10.0]]).repeat(len(obs), 1), torch.zeros(len(obs)), obs

    def step(self, state, action):
        batch = len(state)
        return (torch.ones(batch), torch.tensor([[10.0, -10.0]]).repeat(batch, 1), torch.zeros(batch),
                state + 1, torch.zeros(batch, dtype=torch.bool), torch.ones(batch, 2, dtype=torch.bool))


@pytest.mark.slow  # compiles
def test_the_compiled_search_follows_a_path_as_deep_as_the_simulations():
    results = [search(ChainModel(), torch.zeros(3, 1), torch.ones(3, 2, dtype=torch.bool),
                      MCTSConfig(simulations=40, two_player=False, root_noise=0.0, compile=compiled))
               for compiled in (False, True)]
    # the line's k-th node holds the k steps' rewards below it: the root's q is the mean of 40..1
    for result in results:
        assert result.visits.tolist() == [[40.0, 0.0]] * 3
        assert torch.allclose(result.q[:, 0], torch.tensor(20.5))


@pytest.mark.parametrize("setting", [{"simulations": 0}, {"discount": 0.0}, {"discount": 1.5},
                                     {"root_noise": 1.2}, {"dirichlet_alpha": 0.0}, {"max_considered": 0},
                                     {"pb_c_base": -1.0}])
def test_a_search_setting_out_of_range_is_refused_by_name(setting):
    from modelrl.errors import ConfigError

    name = next(iter(setting))
    with pytest.raises(ConfigError, match=f"^{name} must be"):
        MCTSConfig(**setting)
