import copy
import io
import math
import warnings

import numpy as np
import pytest
import torch
from torch.distributions import Normal, TransformedDistribution
from torch.distributions.transforms import TanhTransform

import modelrl
from modelrl.agents.dqn import DQNConfig, DQNLearner
from modelrl.agents.sac import SACConfig, SACLearner, SquashedGaussianActor
from modelrl.buffers import ReplayBuffer
from modelrl.checkpoint import load_checkpoint, save_checkpoint
from modelrl.device import restore_generator
from modelrl.envs.known import known_functions
from modelrl.errors import ConfigError, IncompatibleEnvError


def test_squashed_gaussian_log_prob_matches_the_tanh_transformed_normal():
    torch.manual_seed(0)
    actor = SquashedGaussianActor(3, 2, 16, 1)
    obs = torch.randn(64, 3)
    action, log_prob = actor(obs, torch.Generator().manual_seed(1))
    mean, log_std = actor.net(obs).chunk(2, -1)
    reference = TransformedDistribution(Normal(mean, log_std.clamp(-20, 2).exp()), [TanhTransform()])
    expected = reference.log_prob(action.clamp(-1 + 1e-6, 1 - 1e-6)).sum(-1)
    torch.testing.assert_close(log_prob, expected, rtol=1e-3, atol=1e-3)
    assert action.abs().max() <= 1


@pytest.mark.parametrize("critic_layer_norm, precision", [(False, "float32"), (True, "float32"),
                                                           (False, "bfloat16")])
def test_sac_critics_learn_the_value_of_a_terminal_reward(critic_layer_norm, precision):
    # Every transition ends the episode with reward 2: both critics must converge to Q = 2 everywhere.
    config = SACConfig(hidden_size=32, lr=3e-3, critic_layer_norm=critic_layer_norm, precision=precision)
    learner = SACLearner(3, 1, config, torch.device("cpu"), torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(0)
    batch = {"obs": torch.randn(128, 3, generator=gen), "action": torch.rand(128, 1, generator=gen) * 2 - 1,
             "reward": torch.full((128,), 2.0), "next_obs": torch.randn(128, 3, generator=gen),
             "terminated": torch.ones(128, dtype=torch.bool)}
    # after 300, 0.07-0.25 off at worst over seeds and thread counts; after 600, 0.03-0.06
    for _ in range(600):
        learner.update(batch)
    assert (learner.critic.net.norms is not None) == critic_layer_norm
    q = learner.critic(batch["obs"], batch["action"])
    assert q.shape == (2, 128)
    torch.testing.assert_close(q, torch.full_like(q, 2.0), atol=0.15, rtol=0)
    # The target critics trail the critics by Polyak averaging, so they moved towards 2 as well.
    assert (learner.critic_target(batch["obs"], batch["action"]) - 2).abs().mean() < 1.0


def test_sac_bellman_target_takes_the_smaller_target_critic_minus_the_entropy_term():
    config = SACConfig(hidden_size=16, gamma=0.9)
    learner = SACLearner(3, 1, config, torch.device("cpu"), torch.Generator().manual_seed(0))
    data = torch.Generator().manual_seed(1)
    with torch.no_grad():  # targets that no longer equal the critics, as after any update
        for p in learner.critic_target.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=data))
    reward, next_obs = torch.randn(64, generator=data), torch.randn(64, 3, generator=data)
    terminated = torch.arange(64) % 4 == 0
    target = learner.bellman_target(reward, next_obs, terminated, 0.3, torch.Generator().manual_seed(2))
    with torch.no_grad():
        next_action, next_log_prob = learner.actor(next_obs, torch.Generator().manual_seed(2))
        q1, q2 = learner.critic_target(next_obs, next_action)
        online = learner.critic(next_obs, next_action).min(0).values
    assert (q1 != q2).all()  # independently initialised critics, so the min below is a real choice
    expected = reward + 0.9 * ~terminated * (torch.minimum(q1, q2) - 0.3 * next_log_prob)
    torch.testing.assert_close(target, expected)
    torch.testing.assert_close(target[terminated], reward[terminated])
    assert (online - torch.minimum(q1, q2)).abs().mean() > 0.05  # so taking the online critics would show


def test_sac_actor_gradient_is_that_of_alpha_log_pi_minus_the_smaller_critic():
    # The critics' and temperature's steps at lr 0 leave them as they were, so one update's actor gradient
    # can be recomputed: d/dtheta mean(alpha log pi(a|s) - min(Q1, Q2)(s, a)), a ~ pi(s) with the update's
    # own draws (the Bellman target's come first), through the online critics, not the targets.
    learner = SACLearner(3, 1, SACConfig(hidden_size=16, init_alpha=0.7), torch.device("cpu"),
                         torch.Generator().manual_seed(0))
    data = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in learner.critic_target.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=data))
    for optimizer in (learner.critic_optimizer, learner.alpha_optimizer):
        optimizer.param_groups[0]["lr"] = 0.0
    batch = {"obs": torch.randn(64, 3, generator=data), "action": torch.rand(64, 1, generator=data) * 2 - 1,
             "reward": torch.randn(64, generator=data), "next_obs": torch.randn(64, 3, generator=data),
             "terminated": torch.zeros(64, dtype=torch.bool)}
    actor, draws = copy.deepcopy(learner.actor), learner.generator.get_state()
    learner.update(batch)
    generator = torch.Generator().set_state(draws)
    actor(batch["next_obs"], generator)
    action, log_prob = actor(batch["obs"], generator)
    q1, q2 = learner.critic(batch["obs"], action)
    assert (q1 - q2).abs().min() > 0  # the min is a real choice
    loss = (0.7 * log_prob - torch.minimum(q1, q2)).mean()
    for expected, p in zip(torch.autograd.grad(loss, list(actor.parameters())), learner.actor.parameters(),
                           strict=True):
        torch.testing.assert_close(p.grad, expected)


@pytest.mark.parametrize("target_entropy, direction", [(100.0, 1), (-100.0, -1)])
def test_sac_temperature_rises_below_the_target_entropy_and_falls_above_it(target_entropy, direction):
    config = SACConfig(hidden_size=16, target_entropy=target_entropy)
    learner = SACLearner(3, 1, config, torch.device("cpu"), torch.Generator().manual_seed(0))
    batch = {"obs": torch.randn(32, 3), "action": torch.zeros(32, 1), "reward": torch.ones(32),
             "next_obs": torch.randn(32, 3), "terminated": torch.zeros(32, dtype=torch.bool)}
    before = learner.log_alpha.item()
    for _ in range(3):
        learner.update(batch)
    # Adam's first steps move by about lr each, whatever the gradient's size.
    assert (learner.log_alpha.item() - before) * direction == pytest.approx(3 * config.lr, rel=0.05)


def test_sac_actor_lr_and_target_update_every():
    config = SACConfig(hidden_size=8, actor_lr=3e-5, target_update_every=3)
    learner = SACLearner(3, 1, config, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert learner.actor_optimizer.param_groups[0]["lr"] == 3e-5
    assert learner.critic_optimizer.param_groups[0]["lr"] == 3e-4
    batch = {"obs": torch.randn(16, 3), "action": torch.zeros(16, 1), "reward": torch.ones(16),
             "next_obs": torch.randn(16, 3), "terminated": torch.zeros(16, dtype=torch.bool)}
    initial = [p.clone() for p in learner.critic_target.parameters()]
    for expected_moved in (False, False, True):  # the Polyak step comes on every third update only
        learner.update(batch)
        moved = any(not torch.equal(a, b) for a, b in zip(initial, learner.critic_target.parameters()))
        assert moved == expected_moved
    for start, target, critic in zip(initial, learner.critic_target.parameters(),
                                     learner.critic.parameters()):
        torch.testing.assert_close(target, start + config.tau * (critic - start))  # tau towards the critics
    with pytest.raises(ConfigError, match="actor_lr"):
        SACConfig(actor_lr=0).validate()
    with pytest.raises(ConfigError, match="target_update_every"):
        SACConfig(target_update_every=0).validate()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_sac_cuda_graph_update_matches_the_eager_update_and_survives_a_reload():
    device = torch.device("cuda")

    def learner(graphed: bool) -> SACLearner:
        torch.manual_seed(0)
        return SACLearner(11, 3, SACConfig(hidden_size=64, cuda_graph=graphed), device,
                          torch.Generator(device).manual_seed(1))

    eager, graphed = learner(False), learner(True)
    data = torch.Generator(device).manual_seed(2)

    def assert_same() -> None:
        # Mean differences: Adam's first steps move a weight by lr times the sign of its gradient, so one
        # near-zero gradient that rounds the other way would move it by 2 lr; a wrong input or draw moves all.
        for a, b in zip([*eager.actor.parameters(), *eager.critic.parameters(), eager.log_alpha],
                        [*graphed.actor.parameters(), *graphed.critic.parameters(), graphed.log_alpha]):
            assert (a - b).abs().mean() < 1e-6

    for _ in range(8):  # 3 eager warm-up steps, the capture, then replays
        data_batch = random_sac_batch(data)
        expected, got = eager.update(data_batch), graphed.update(data_batch)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert len(graphed._step.graphs) == 1
    assert_same()
    # A checkpoint replaces the optimisers' state, so the graph is captured again and keeps matching.
    saved = io.BytesIO()  # through bytes, as a checkpoint goes: a live state dict would share Adam's moments
    torch.save(eager.state_dict(), saved)
    saved.seek(0)
    graphed.load_state_dict(torch.load(saved))
    assert not graphed._step.graphs
    graphed.generator.set_state(eager.generator.get_state())
    for _ in range(3):
        data_batch = random_sac_batch(data)
        eager.update(data_batch)
        graphed.update(data_batch)
    assert len(graphed._step.graphs) == 1
    assert_same()
    assert graphed.updates == eager.updates == 11


def random_sac_batch(generator: torch.Generator, obs_dim: int = 11, action_dim: int = 3,
                     size: int = 256) -> dict[str, torch.Tensor]:
    """Random transitions on the generator's device."""
    device = generator.device
    return {"obs": torch.randn(size, obs_dim, device=device, generator=generator),
            "action": torch.rand(size, action_dim, device=device, generator=generator) * 2 - 1,
            "reward": torch.randn(size, device=device, generator=generator),
            "next_obs": torch.randn(size, obs_dim, device=device, generator=generator),
            "terminated": torch.rand(size, device=device, generator=generator) < 0.1}


def assert_same_sac_parameters(a: SACLearner, b: SACLearner, tolerance: float) -> None:
    for x, y in zip([*a.actor.parameters(), *a.critic.parameters(), *a.critic_target.parameters(),
                     a.log_alpha],
                    [*b.actor.parameters(), *b.critic.parameters(), *b.critic_target.parameters(),
                     b.log_alpha],
                    strict=True):
        assert (x - y).abs().max() < tolerance


@pytest.mark.parametrize("variant", [{}, pytest.param({"critic_layer_norm": True, "autotune_alpha": False,
                                                       "actor_lr": 1e-3}, marks=pytest.mark.slow)])
def test_sac_compiled_update_matches_the_eager_update_and_survives_a_reload(variant):
    def learner(compiled: bool) -> SACLearner:
        torch.manual_seed(0)
        return SACLearner(11, 3, SACConfig(hidden_size=64, compile=compiled, **variant), torch.device("cpu"),
                          torch.Generator().manual_seed(1))

    eager, compiled = learner(False), learner(True)
    assert compiled.compiled and not eager.compiled
    data = torch.Generator().manual_seed(2)
    for _ in range(5):
        data_batch = random_sac_batch(data)
        expected, got = eager.update(data_batch), compiled.update(data_batch)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert_same_sac_parameters(eager, compiled, 1e-4)
    # Adam's state is the optimisers' own, so a checkpoint written by either step loads into the other.
    for name in ("critic_optimizer", "actor_optimizer", "alpha_optimizer"):
        steps = [[float(state["step"]) for state in getattr(learner, name).state.values()]
                 for learner in (eager, compiled)]
        assert steps[0] == steps[1] and set(steps[0]) <= {5.0}
    saved = io.BytesIO()  # through bytes, as a checkpoint goes: a live state dict would share Adam's moments
    torch.save(eager.state_dict(), saved)
    saved.seek(0)
    compiled.load_state_dict(torch.load(saved))
    compiled.generator.set_state(eager.generator.get_state())
    for _ in range(4):
        data_batch = random_sac_batch(data)
        eager.update(data_batch)
        compiled.update(data_batch)
    assert_same_sac_parameters(eager, compiled, 1e-4)
    assert compiled.updates == eager.updates == 9


def test_sac_bfloat16_runs_hidden_layers_in_bfloat16_and_outputs_in_float32():
    learner = SACLearner(3, 1, SACConfig(hidden_size=16, precision="bfloat16"), torch.device("cpu"),
                         torch.Generator().manual_seed(0))
    seen = []
    for module in (learner.actor.net[0], learner.actor.net[-1], learner.critic.net.layers[0],
                   learner.critic.net.layers[-1]):
        module.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    batch = {"obs": torch.randn(8, 3), "action": torch.zeros(8, 1), "reward": torch.ones(8),
             "next_obs": torch.randn(8, 3), "terminated": torch.zeros(8, dtype=torch.bool)}
    losses = learner.update(batch)
    assert set(seen[0::2]) == {torch.bfloat16} and set(seen[1::2]) == {torch.float32}
    assert all(value.dtype == torch.float32 for value in losses.values())
    assert all(p.dtype == torch.float32 for p in learner.critic.parameters())  # weights stay float32
    assert learner.act(batch["obs"], deterministic=True).dtype == torch.float32
    with pytest.raises(ConfigError, match="precision"):
        SACConfig(precision="float16").validate()


def test_sac_compile_without_a_cpp_compiler_is_a_config_error(monkeypatch):
    from torch._inductor import cpp_builder

    def missing():
        raise RuntimeError("No working C++ compiler found")

    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", missing)
    with pytest.raises(ConfigError, match="C\\+\\+ compiler"):
        SACLearner(3, 1, SACConfig(hidden_size=8, compile=True), torch.device("cpu"), torch.Generator())
    SACLearner(3, 1, SACConfig(hidden_size=8), torch.device("cpu"), torch.Generator())  # eager needs none


@pytest.mark.parametrize("native", [True, False])
def test_sac_bfloat16_warns_on_a_cpu_that_would_emulate_it(native, monkeypatch):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: native)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        SACLearner(3, 1, SACConfig(hidden_size=8, precision="bfloat16"), torch.device("cpu"),
                   torch.Generator())
        SACLearner(3, 1, SACConfig(hidden_size=8), torch.device("cpu"), torch.Generator())
    assert [str(w.message).split(" on ")[0] for w in caught] == ([] if native else ["precision='bfloat16'"])


def test_double_dqn_target_uses_the_online_argmax_and_the_target_value():
    learner = DQNLearner(2, 2, DQNConfig(hidden_size=8, lr=1e-9), torch.device("cpu"))
    with torch.no_grad():  # online net prefers action 0, the target net values action 0 at 5 and 1 at 9
        for net, out in ((learner.q, [1.0, 0.0]), (learner.q_target, [5.0, 9.0])):
            for p in net.parameters():
                p.zero_()
            net[-1].bias.copy_(torch.tensor(out))
    batch = {"obs": torch.zeros(1, 2), "action": torch.tensor([0]), "reward": torch.tensor([1.0]),
             "next_obs": torch.zeros(1, 2), "terminated": torch.tensor([False])}
    # Double Q: target = 1 + 0.99 * 5; Q = 1; smooth L1 of an error of 4.95 is 4.45.
    assert learner.update(batch).item() == pytest.approx(4.95 - 0.5, abs=1e-4)
    # At a terminal step the target is the reward alone: 3 - 1, a smooth L1 of 1.5.
    terminal = {**batch, "reward": torch.tensor([3.0]), "terminated": torch.tensor([True])}
    assert learner.update(terminal).item() == pytest.approx(1.5, abs=1e-4)
    learner.config = DQNConfig(hidden_size=8, double_q=False)  # plain max: 1 + 0.99 * 9
    assert learner.update(batch).item() == pytest.approx(1 + 0.99 * 9 - 1 - 0.5, abs=1e-3)


def test_replay_buffer_round_trips_through_save_and_load(tmp_path, rng):
    buffer = ReplayBuffer(5, (2,), (1,))
    for i in range(7):  # wraps around
        buffer.add(np.full(2, i), np.full(1, -i), float(i), np.full(2, i + 1), i == 3, i == 6)
    save_checkpoint(tmp_path / "buffer.pt", {"buffer": buffer.state_dict()})
    restored = ReplayBuffer(5, (2,), (1,))
    restored.load_state_dict(load_checkpoint(tmp_path / "buffer.pt")["buffer"])
    for key, value in buffer.all().items():
        np.testing.assert_array_equal(value, restored.all()[key])
    assert restored.all()["reward"].tolist() == [2, 3, 4, 5, 6]
    restored.add(np.zeros(2), np.zeros(1), 7.0, np.zeros(2), False, False)
    assert restored.all()["reward"].tolist() == [3, 4, 5, 6, 7]
    batch = restored.sample_tensors(4, rng)
    assert (set(batch) == {"obs", "action", "reward", "next_obs", "terminated"}
            and batch["obs"].shape == (4, 2))
    partly = ReplayBuffer(5, (2,), (1,))  # not yet full: only what was added comes back, and adding goes on
    partly.load_state_dict(ReplayBuffer(5, (2,), (1,)).state_dict() | {"data": {
        key: value[:2] for key, value in buffer.all().items()}})
    assert len(partly) == 2 and partly.all()["reward"].tolist() == [2, 3]
    partly.add(np.zeros(2), np.zeros(1), 9.0, np.zeros(2), False, False)
    assert partly.all()["reward"].tolist() == [2, 3, 9]
    with pytest.raises(ValueError, match="capacity 4 differs from the saved 5"):
        ReplayBuffer(4, (2,), (1,)).load_state_dict(buffer.state_dict())


def test_sac_and_dqn_refuse_the_wrong_action_space():
    with pytest.raises(IncompatibleEnvError, match="Box actions"):
        modelrl.make_agent("sac", env="CartPole-v1")
    with pytest.raises(IncompatibleEnvError, match="Discrete actions"):
        modelrl.make_agent("dqn", env="Pendulum-v1")
    with pytest.raises(ConfigError, match="tau"):
        modelrl.make_agent("sac", env="Pendulum-v1", tau=0)


def test_dqn_epsilon_decays_linearly_to_its_floor():
    config = DQNConfig(exploration_steps=100, exploration_final_eps=0.1)
    assert [config.epsilon(s) for s in (0, 50, 100, 1000)] == pytest.approx([1.0, 0.55, 0.1, 0.1])


@pytest.mark.parametrize("agent_id, env, limit", [
    ("sac", "InvertedPendulum-v5", 8), ("mbpo", "InvertedPendulum-v5", 8), ("dqn", "CartPole-v1", 20),
    ("deep-dyna-q", "CartPole-v1", 20)])
def test_buffers_mark_terminations_not_time_limits_as_ends(agent_id, env, limit):
    # Random actions; episodes cut at `limit` steps or ended by a fall. Learning bootstraps through a cut,
    # never through a fall, so the buffer's `terminated` must be the fall alone.
    agent = modelrl.make_agent(agent_id, env=env, seed=0, learning_starts=500,
                               env_kwargs={"max_episode_steps": limit})
    agent.learn(total_steps=400)
    data = agent.buffer.all()
    fell = known_functions(env).termination(*(torch.as_tensor(data[key])
                                              for key in ("obs", "action", "next_obs")))
    np.testing.assert_array_equal(data["terminated"], fell.numpy())
    assert data["terminated"].sum() > 3 and (data["truncated"] & ~data["terminated"]).sum() > 3


def test_a_random_stream_saved_on_another_kind_of_device_restarts_with_a_warning():
    generator = torch.Generator().manual_seed(3)
    restore_generator(generator, torch.Generator().manual_seed(5).get_state())  # same kind: continues
    assert torch.equal(torch.rand(3, generator=generator),
                       torch.rand(3, generator=torch.Generator().manual_seed(5)))
    cuda_like = torch.arange(16, dtype=torch.uint8)  # a CUDA generator's state: seed and offset, 16 bytes
    draws = []
    for _ in range(2):
        with pytest.warns(UserWarning, match="another kind of device"):
            restore_generator(generator, cuda_like)
        draws.append(torch.rand(3, generator=generator))
    assert torch.equal(*draws)  # the reseed is a function of the saved state


def test_dqn_copies_its_network_into_the_target_every_target_update_interval_steps():
    agent = modelrl.make_agent("dqn", env="CartPole-v1", seed=0, target_update_interval=10,
                               **small_config("dqn"))

    def target_is_online() -> bool:
        return all(torch.equal(a, b) for a, b in zip(agent.learner.q.parameters(),
                                                     agent.learner.q_target.parameters(), strict=True))

    agent.learn(total_steps=40)  # updates at steps 20 (learning_starts), 24, ..., 40; a copy at step 40
    assert agent.learner.updates > 0 and target_is_online()
    agent.learn(total_steps=4)  # one burst of updates at step 44, no copy until step 50
    assert not target_is_online()
    agent.learn(total_steps=6)
    assert target_is_online()


def small_config(agent_id: str) -> dict:
    small = {"hidden_size": 32, "batch_size": 16, "learning_starts": 20}
    if agent_id == "dqn":
        small.update(train_freq=4, gradient_steps=2, exploration_steps=50)
    return small


# Hopper: MuJoCo's simulator state mid-episode and the env's random stream (the resets after it, the third
# episode ends at 110 and the fourth at 149) must survive the checkpoint too
@pytest.mark.parametrize("agent_id, env, steps, saved_at", [
    ("sac", "Pendulum-v1", 60, 35), ("dqn", "CartPole-v1", 60, 35), ("sac", "Hopper-v5", 150, 85)])
def test_resumed_model_free_agent_matches_an_uninterrupted_one(tmp_path, agent_id, env, steps, saved_at):
    small = small_config(agent_id)
    straight = modelrl.make_agent(agent_id, env=env, seed=4, **small)
    straight.learn(total_steps=steps)
    first = modelrl.make_agent(agent_id, env=env, seed=4, **small)
    first.learn(total_steps=saved_at)
    resumed = modelrl.load(first.save(tmp_path / "agent.pt"))
    resumed.learn(total_steps=steps - saved_at)
    assert resumed.env_steps == steps
    # Weights, optimiser moments and step counts, the temperature, the update count: all equal.
    assert_equal_states(straight.learner.state_dict(), resumed.learner.state_dict())
    for key, value in straight.buffer.all().items():
        np.testing.assert_array_equal(value, resumed.buffer.all()[key])


@pytest.mark.parametrize("agent_id, env", [("sac", "Pendulum-v1"), ("dqn", "CartPole-v1")])
def test_evaluating_during_learning_leaves_training_as_it_was(agent_id, env):
    small = small_config(agent_id)
    plain, evaluated = (modelrl.make_agent(agent_id, env=env, seed=5, **small) for _ in range(2))
    plain.learn(total_steps=60)
    evaluated.learn(total_steps=60, eval_every=20, eval_episodes=1)
    assert_equal_states(plain.learner.state_dict(), evaluated.learner.state_dict())


def assert_equal_states(a, b) -> None:
    """Nested state dicts equal to the bit."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_equal_states(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_equal_states(x, y)
    elif isinstance(a, torch.Tensor):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    else:
        assert a == b


@pytest.mark.mujoco
@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_sac_critic_bias_compares_the_critics_with_the_soft_return_that_followed(alpha):
    agent = modelrl.make_agent("sac", env="InvertedPendulum-v5", seed=0, gamma=0.9)
    # a critic that says 5 everywhere
    agent.learner.critic = lambda obs, action: torch.full((2, len(obs)), 5.0)
    agent.learner.actor = lambda obs, generator: (torch.zeros(1, 1), torch.tensor([2.0]))  # log pi = 2
    with torch.no_grad():
        agent.learner.log_alpha.fill_(math.log(alpha) if alpha else -50.0)
    result = agent.critic_bias(episodes=1)
    # Pushing nothing, the pole falls within a few dozen steps; v5 pays 1 a step, 0 on the step it falls.
    steps = result["states"]
    assert 1 <= steps < 200
    rewards = [1.0] * (steps - 1) + [0.0]
    followed = [sum(0.9 ** (j - t) * (rewards[j] - (2 * alpha if j > t else 0)) for j in range(t, steps))
                for t in range(steps)]
    assert result["q_estimate"] == pytest.approx(5.0)
    assert result["soft_return"] == pytest.approx(np.mean(followed), rel=1e-6)
    assert result["q_bias"] == pytest.approx(5.0 - np.mean(followed), rel=1e-6)
    assert agent.env_steps == 0 and len(agent.buffer) == 0  # training state untouched
