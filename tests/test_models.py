import math

import pytest
import torch

from modelrl.checkpoint import save_checkpoint
from modelrl.errors import CheckpointError
from modelrl.models.dynamics import DynamicsModel, ModelSpec
from modelrl.models.ensemble import EnsembleLinear, EnsembleMLP
from modelrl.models.linear import fit_linear, linear_model
from modelrl.models.training import Transitions, fit


def _sine_data(n=600, noise=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    obs = torch.rand(n, 1, generator=g) * 4 - 2
    action = torch.rand(n, 1, generator=g) * 2 - 1
    next_obs = obs + torch.sin(2 * obs) + 0.5 * action + noise * torch.randn(n, 1, generator=g)
    return Transitions(obs, action, next_obs, reward=-(obs[:, 0] ** 2), terminated=obs[:, 0] > 1.5)


def _fit(spec, data, epochs=150, seed=0):
    torch.manual_seed(seed)
    model = DynamicsModel(spec)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    result = fit(model, data, optimizer, generator=torch.Generator().manual_seed(seed), batch_size=64,
                 max_epochs=epochs, patience=15, holdout_ratio=0.15)
    return model, result


@pytest.mark.parametrize("layer_norm", [False, True])
def test_batched_ensemble_equals_each_member_alone(layer_norm):
    torch.manual_seed(0)
    net = EnsembleMLP(3, 2, ensemble_size=4, hidden_size=16, num_layers=2, probabilistic=False,
                      layer_norm=layer_norm)
    if layer_norm:  # gains and shifts away from 1 and 0, so a member mix-up would show
        for norm in net.norms:
            torch.nn.init.normal_(norm.weight)
            torch.nn.init.normal_(norm.bias)
    x = torch.randn(4, 7, 3)
    out, _ = net(x)
    for e in range(4):
        h = x[e]
        for i, layer in enumerate(net.layers):
            h = h @ layer.weight[e] + layer.bias[e]
            if i < len(net.layers) - 1:
                if layer_norm:
                    norm = net.norms[i]
                    h = torch.nn.functional.layer_norm(h, (16,), norm.weight[e, 0], norm.bias[e, 0])
                h = torch.nn.functional.silu(h)
        torch.testing.assert_close(out[e], h)
    with torch.no_grad():  # the blocked inference path gives the same numbers
        torch.testing.assert_close(net(x)[0], out)
    members = torch.tensor([2, 0])  # and so does picking members per row
    torch.testing.assert_close(net(x[members], members)[0], out[members])


def test_layer_norm_bounds_ensemble_outputs_whatever_the_input_scale():
    torch.manual_seed(0)
    net = EnsembleMLP(3, 1, ensemble_size=2, hidden_size=32, num_layers=2, probabilistic=False,
                      activation="relu", layer_norm=True)
    plain = EnsembleMLP(3, 1, ensemble_size=2, hidden_size=32, num_layers=2, probabilistic=False,
                        activation="relu")
    x = torch.randn(2, 64, 3)
    with torch.no_grad():
        # Each hidden layer is normalised, so the output cannot exceed |w_out|_2 sqrt(H) + |b_out| for
        # any input, where a plain MLP grows linearly with it.
        bound = net.layers[-1].weight.norm(dim=(1, 2)) * 32 ** 0.5 + net.layers[-1].bias.abs().flatten()
        far = net(1e4 * x)[0].abs().amax(dim=(1, 2))
        assert (far <= bound).all()
        assert plain(1e4 * x)[0].abs().max() > 100 * plain(x)[0].abs().max()


def test_probabilistic_ensemble_fits_and_is_uncertain_away_from_data():
    data = _sine_data()
    model, result = _fit(ModelSpec(1, 1, ensemble_size=5, num_elites=3, hidden_size=64, num_layers=2), data)
    assert len(result.elites) == 3 and result.holdout_mse
    inside = torch.linspace(-1.8, 1.8, 50)[:, None]
    outside = torch.cat([torch.linspace(-6, -4, 10), torch.linspace(4, 6, 10)])[:, None]
    truth = lambda x: x + torch.sin(2 * x)
    with torch.no_grad():
        near = model.predict(inside, torch.zeros_like(inside))
        far = model.predict(outside, torch.zeros_like(outside))
    assert (near.next_obs.mean(0) - truth(inside)).abs().mean() < 0.05
    # Aleatoric std learned near the noise level (0.05), epistemic spread much larger off the data.
    assert 0.02 < near.next_obs_var.mean(0).sqrt().mean() < 0.1
    assert far.next_obs.std(0).mean() > 10 * near.next_obs.std(0).mean()


def test_deterministic_model_learns_reward_and_termination():
    data = _sine_data()
    spec = ModelSpec(1, 1, ensemble_size=2, num_elites=2, hidden_size=64, num_layers=2, probabilistic=False,
                     learn_reward=True, learn_termination=True)
    model, _ = _fit(spec, data)
    obs = torch.tensor([[-1.0], [0.0], [1.0], [1.8]])
    with torch.no_grad():
        prediction = model.predict(obs, torch.zeros(4, 1))
        _, _, terminated = model.sample(obs.expand(2, -1, -1), torch.zeros(2, 4, 1), deterministic=True)
    assert prediction.next_obs_var is None
    torch.testing.assert_close(prediction.reward.mean(0), -(obs[:, 0] ** 2), atol=0.1, rtol=0)
    assert terminated.tolist() == [[False, False, False, True]] * 2


def _holdout_errors(model, data, holdout_ratio=0.15, seed=0):
    """Each member's mean squared next-state error on the rows `fit` holds out (its first draw is the
    split)."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    holdout = data.take(order[: int(len(data) * holdout_ratio)])
    with torch.no_grad():
        prediction = model.predict(holdout.obs, holdout.action)
    return ((prediction.next_obs - holdout.next_obs) ** 2).mean((1, 2)) / model.target_std[0] ** 2


def test_a_dimension_constant_in_the_data_is_left_unscaled():
    """Ant's contact forces are 0 until a body touches the ground: a tiny std must not blow the first
    nonzero value up by a million."""
    data = _sine_data()
    obs = torch.cat([data.obs, torch.zeros_like(data.obs)], -1)  # a second, constant dimension
    next_obs = torch.cat([data.next_obs, torch.zeros_like(data.next_obs)], -1)
    spec = ModelSpec(2, 1, ensemble_size=2, num_elites=2, hidden_size=32, num_layers=2, probabilistic=False)
    model, _ = _fit(spec, Transitions(obs, data.action, next_obs, data.reward, data.terminated), epochs=20)
    assert model.input_std[1] == 1.0 and model.target_std[1] == 1.0
    probe = torch.tensor([[0.5, 0.0], [0.5, 0.01]])
    deltas = model.predict(probe, torch.zeros(2, 1)).next_obs - probe  # (members, 2, 2)
    assert (deltas[:, 1] - deltas[:, 0]).abs().max() < 0.1


def test_elites_are_the_best_members_on_holdout():
    data = _sine_data()
    model, result = _fit(ModelSpec(1, 1, ensemble_size=4, num_elites=2, hidden_size=32, num_layers=2), data,
                         epochs=5)
    errors = _holdout_errors(model, data)  # computed here, apart from `fit`'s own bookkeeping
    torch.testing.assert_close(torch.tensor(result.holdout_mse), errors, rtol=1e-4, atol=0)
    assert result.elites == sorted(errors.argsort()[:2].tolist())


def test_fit_stops_early_and_keeps_each_members_best_weights():
    # A step size this large wrecks the fit at once: no epoch beats the initial weights on the holdout, so
    # training stops after `patience` epochs and every member goes back to where it started.
    data = _sine_data()
    torch.manual_seed(0)
    model = DynamicsModel(ModelSpec(1, 1, ensemble_size=3, num_elites=2, hidden_size=32, num_layers=2))
    initial = [p.detach().clone() for p in model.parameters()]
    result = fit(model, data, torch.optim.SGD(model.parameters(), lr=50.0),
                 generator=torch.Generator().manual_seed(0), batch_size=64, max_epochs=100, patience=3,
                 holdout_ratio=0.15)
    assert result.epochs == 3 and math.isfinite(max(result.holdout_mse))
    for before, after in zip(initial, model.parameters(), strict=True):  # the shared log-variance bounds too
        torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_sampled_steps_draw_from_the_predicted_gaussian_in_env_units():
    spec = ModelSpec(2, 1, ensemble_size=3, num_elites=3, hidden_size=16, num_layers=2, learn_reward=True)
    torch.manual_seed(0)
    model = DynamicsModel(spec)
    g = torch.Generator().manual_seed(1)
    obs, action = torch.randn(500, 2, generator=g), torch.rand(500, 1, generator=g)
    # Targets far from zero mean and unit spread, so a step that skips the un-normalising is far off.
    data_next_obs, data_reward = (obs + 3 + 5 * torch.randn(500, 2, generator=g),
                                  10 + 4 * torch.randn(500, generator=g))
    model.set_normalizer(obs, action, data_next_obs, data_reward)
    point, draws = obs[:2], 20_000
    with torch.no_grad():
        expected = model.predict(point, action[:2])
        next_obs, reward, _ = model.sample(point.expand(3, draws, 2, 2).reshape(3, -1, 2),
                                           action[:2].expand(3, draws, 2, 1).reshape(3, -1, 1), g)
    next_obs, reward = next_obs.view(3, draws, 2, 2), reward.view(3, draws, 2)
    std = expected.next_obs_var.sqrt().max()
    torch.testing.assert_close(next_obs.mean(1), expected.next_obs, atol=0.05 * std, rtol=0)
    torch.testing.assert_close(next_obs.var(1), expected.next_obs_var, rtol=0.05, atol=0)
    std = expected.reward_var.sqrt().max()
    torch.testing.assert_close(reward.mean(1), expected.reward, atol=0.05 * std, rtol=0)
    torch.testing.assert_close(reward.var(1), expected.reward_var, rtol=0.05, atol=0)


def test_linear_model_recovers_linear_dynamics():
    g = torch.Generator().manual_seed(1)
    obs, action = torch.randn(300, 3, generator=g), torch.randn(300, 2, generator=g)
    a, b = torch.randn(3, 3, generator=g) * 0.1, torch.randn(2, 3, generator=g)
    data = Transitions(obs, action, obs + obs @ a + action @ b + 0.3, torch.zeros(300), torch.zeros(300))
    model = linear_model(3, 2)
    errors = fit_linear(model, data, generator=g, ridge=1e-8, bootstrap=False)
    assert errors[0] < 1e-8
    test_obs = torch.randn(5, 3)
    torch.testing.assert_close(model.predict(test_obs, torch.ones(5, 2)).next_obs[0],
                               test_obs + test_obs @ a + b.sum(0) + 0.3, atol=1e-4, rtol=0)


def test_discrete_actions_are_one_hot():
    model = DynamicsModel(ModelSpec(2, 3, discrete_actions=True, ensemble_size=2, num_elites=2,
                                    hidden_size=8))
    inputs = model.inputs(torch.zeros(4, 2), torch.tensor([0, 1, 2, 1]))
    assert inputs.shape == (4, 5) and inputs[:, 2:].tolist()[1] == [0.0, 1.0, 0.0]


def test_save_load_round_trip(tmp_path):
    data = _sine_data(n=200)
    model, _ = _fit(ModelSpec(1, 1, ensemble_size=3, num_elites=2, hidden_size=16, num_layers=2), data,
                    epochs=3)
    model.elites.copy_(torch.tensor([2, 0]))  # not the default, so a load that drops them shows
    path = model.save(tmp_path / "model.pt")
    loaded = DynamicsModel.load(path)
    x = torch.randn(6, 1)
    with torch.no_grad():
        torch.testing.assert_close(loaded.predict(x, x).next_obs, model.predict(x, x).next_obs)
    assert loaded.elites.tolist() == model.elites.tolist()
    save_checkpoint(tmp_path / "other.pt", {"something": 1})
    with pytest.raises(CheckpointError, match="no dynamics model"):
        DynamicsModel.load(tmp_path / "other.pt")


def test_bad_specs_are_refused():
    with pytest.raises(ValueError, match="num_elites"):
        DynamicsModel(ModelSpec(1, 1, ensemble_size=2, num_elites=3))
    with pytest.raises(ValueError, match="activation"):
        DynamicsModel(ModelSpec(1, 1, activation="gelu"))


def test_rare_terminations_are_predicted_with_calibrated_probabilities():
    # 2% of transitions terminate (obs > 1.92). Terminal rows are up-weighted in training so they are learned
    # quickly, and the model takes that weight back off its logits: imagined steps then end about as often
    # as real ones (weighted but uncorrected, about 3x as often), and far more often where the env ends.
    data = _sine_data(n=1500)
    data.terminated = data.obs[:, 0] > 1.92
    base_rate = data.terminated.float().mean()
    assert 0.01 < base_rate < 0.03
    spec = ModelSpec(1, 1, ensemble_size=2, num_elites=2, hidden_size=64, num_layers=2, probabilistic=True,
                     learn_termination=True)
    model, _ = _fit(spec, data, epochs=40)
    with torch.no_grad():
        probability = model.predict(data.obs, data.action).terminated.mean(0)
        _, _, drawn = model.sample(data.obs.expand(2, -1, -1), data.action.expand(2, -1, -1),
                                   torch.Generator().manual_seed(0))
        _, _, most_likely = model.sample(data.obs.expand(2, -1, -1), data.action.expand(2, -1, -1),
                                         deterministic=True)
    assert 0.3 * base_rate < probability.mean() < 1.5 * base_rate  # seed 0: 0.011 against 0.023
    assert 0.3 * base_rate < drawn.float().mean() < 1.5 * base_rate
    assert probability[data.terminated].mean() > 20 * probability[~data.terminated].mean()  # 0.31 vs 0.0036
    torch.testing.assert_close(most_likely, (model.predict(data.obs, data.action).terminated > 0.5))
    # the termination logit has no variance: the bound penalty leaves its unused bounds where they started
    net = model.net
    assert (net.max_logvar[..., -1].item(), net.min_logvar[..., -1].item()) == (0.5, -10.0)
    assert net.max_logvar[..., 0].item() != 0.5


def test_ensemble_layers_start_from_a_normal_truncated_at_two_std():
    layer = EnsembleLinear(3, 256, 64)
    std = 1 / (2 * 16)
    assert layer.weight.abs().max() <= 2 * std
    assert 0.8 * std < layer.weight.std() < 0.95 * std  # a normal cut at 2 std keeps 0.88 of its std
    assert not torch.equal(layer.weight[0], layer.weight[1])  # drawn per member
    assert (layer.bias == 0).all()


@pytest.mark.parametrize("members", [None, torch.tensor([2, 0, 0, 1])])
def test_one_output_ensemble_layer_matches_the_batched_matmul(members):
    torch.manual_seed(0)
    layer = EnsembleLinear(3, 32, 1)
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(3 if members is None else 4, 5, 32, requires_grad=True)
    out = layer(x, members)
    weight, bias = ((layer.weight, layer.bias) if members is None
                    else (layer.weight[members], layer.bias[members]))
    expected = torch.baddbmm(bias, x, weight)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected)
    grads = torch.autograd.grad(out.square().sum(), [x, layer.weight, layer.bias])
    expected_grads = torch.autograd.grad(expected.square().sum(), [x, layer.weight, layer.bias])
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected_grad)


def test_models_saved_before_the_termination_weight_existed_still_load():
    # Their logits were thresholded at 0 as they stood: the weight's log they lack is 0
    state = DynamicsModel(ModelSpec(1, 1, learn_termination=True)).state_dict()
    del state["termination_log_weight"]
    model = DynamicsModel(ModelSpec(1, 1, learn_termination=True))
    model.termination_log_weight.fill_(2.0)
    model.load_state_dict(state)
    assert model.termination_log_weight.item() == 0.0
