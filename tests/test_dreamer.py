"""Dreamer's parts (two-hot, lambda-returns, sequence replay, the RSSM) and the agent (refusals, resume)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import modelrl
from modelrl.buffers import SequenceBuffer, files_beside
from modelrl.errors import ConfigError, IncompatibleEnvError
from modelrl.models.distributions import TwoHot, symexp, symlog
from modelrl.models.encoders import VectorDecoder, VectorEncoder
from modelrl.models.rssm import RSSM
from modelrl.returns import ReturnScale, lambda_returns


def test_symlog_and_two_hot_round_trip():
    values = torch.tensor([-1234.5, -3.0, -0.01, 0.0, 0.5, 7.0, 98765.0])
    assert torch.allclose(symexp(symlog(values)), values, rtol=1e-5)
    two_hot = TwoHot()
    code = two_hot.encode(values)
    assert torch.allclose(code.sum(-1), torch.ones(len(values)))
    assert ((code > 0).sum(-1) <= 2).all()  # two neighbouring bins at most
    # logits whose softmax is the code give back each value (up to the bins' float error)
    recovered = two_hot.mean(code.clamp_min(1e-30).log())
    assert torch.allclose(recovered, values, rtol=1e-3, atol=1e-4)
    # the loss is the cross-entropy with the code: lowest at the code's own logits
    logits = code.clamp_min(1e-30).log()
    assert (two_hot.loss(logits, values) <= two_hot.loss(torch.zeros_like(logits), values)).all()
    expected = -(code * logits.log_softmax(-1)).sum(-1)
    assert torch.allclose(two_hot.loss(logits, values), expected, atol=1e-4)


def test_lambda_returns_against_a_hand_computed_example():
    rewards = torch.tensor([1.0, 0.0, 2.0])
    values = torch.tensor([0.0, 10.0, 20.0, 30.0])
    discounts = torch.tensor([0.9, 0.9, 0.0])  # the episode ends after the third step
    lam = 0.5
    r2 = 2.0 + 0.0 * (0.5 * 30.0 + 0.5 * 30.0)  # R_3 = V_3 = 30, cut by the zero discount
    r1 = 0.0 + 0.9 * (0.5 * 20.0 + 0.5 * r2)
    r0 = 1.0 + 0.9 * (0.5 * 10.0 + 0.5 * r1)
    assert torch.allclose(lambda_returns(rewards, values, discounts, lam), torch.tensor([r0, r1, r2]))
    # lam = 0 is one-step TD, lam = 1 the discounted reward sum bootstrapped at the horizon
    assert torch.allclose(lambda_returns(rewards, values, discounts, 0.0),
                          rewards + discounts * values[1:])
    assert torch.allclose(lambda_returns(rewards, values, discounts, 1.0)[0],
                          torch.tensor(1.0 + 0.9 * (0.0 + 0.9 * 2.0)))
    with pytest.raises(ValueError, match="values"):
        lambda_returns(rewards, values[:3], discounts, lam)


def test_return_scale_divides_only_large_spreads():
    scale = ReturnScale(rate=1.0)
    assert float(scale.update(torch.linspace(0, 0.5, 101))) == 1.0  # a small range is not scaled up
    assert float(scale.update(torch.linspace(0, 100, 101))) == pytest.approx(90.0, rel=1e-3)


def test_sequence_buffer_windows_are_consecutive_and_start_fresh(tmp_path):
    buffer = SequenceBuffer(50, (2,), (1,))
    for t in range(70):  # wraps around: the oldest 20 steps are gone
        buffer.add(np.array([t, -t], np.float32), np.array([t], np.float32), float(t), t % 9 == 0, False)
    batch = buffer.sample_sequences(32, 10, np.random.default_rng(0))
    assert batch["obs"].shape == (32, 10, 2) and batch["action"].shape == (32, 10, 1)
    steps = batch["obs"][..., 0]
    assert (np.diff(steps, axis=1) == 1).all() and steps.min() >= 20  # consecutive, never across the wrap
    assert batch["is_first"][:, 0].all()
    assert (batch["is_first"][:, 1:] == (steps[:, 1:] % 9 == 0)).all()
    with files_beside(tmp_path):  # and checkpoints as chunk files, like the other buffers
        state = buffer.state_dict()
        restored = SequenceBuffer(50, (2,), (1,))
        restored.load_state_dict(state)
    again = restored.sample_sequences(32, 10, np.random.default_rng(0))
    assert all((again[key] == batch[key]).all() for key in batch)


ITERATIONS = 120


@pytest.mark.parametrize("latent", ["categorical", "gaussian"])
def test_rssm_overfits_a_sequence_and_predicts_it_open_loop(latent):
    """Trained on one batch of sequences of a driven oscillator, the model's open-loop predictions (prior
    only, from the actions) after a few observed steps beat repeating the last observed frame by far."""
    torch.manual_seed(0)
    steps, batch, obs_dim = 24, 8, 4
    actions = torch.randn(steps, batch, 1) * 0.5
    phase = torch.rand(batch) * 6.28
    position, velocity = torch.cos(phase), torch.sin(phase)
    observations = []
    for t in range(steps):  # a damped spring pushed by the actions
        velocity = 0.95 * velocity - 0.3 * position + 0.3 * actions[t, :, 0]
        position = position + 0.3 * velocity
        observations.append(torch.stack([position, velocity, position * velocity, position**2], -1))
    obs = torch.stack(observations)
    is_first = torch.zeros(steps, batch, dtype=torch.bool)
    is_first[0] = True
    encoder = VectorEncoder(obs_dim, 64, 2)
    rssm = RSSM(1, encoder.output_size, deter=64, hidden=64, stoch=8, classes=8 if latent == "categorical"
                else 0, latent=latent, blocks=4)
    decoder = VectorDecoder(rssm.feature_size, obs_dim, 64, 2)
    parameters = [*encoder.parameters(), *rssm.parameters(), *decoder.parameters()]
    optimizer = torch.optim.Adam(parameters, 3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(ITERATIONS):
        posteriors, priors = rssm.observe(encoder(obs), actions, is_first, generator=generator)
        dynamics, representation = rssm.kl(posteriors, priors, free=0.1)
        loss = (decoder.loss(rssm.features(posteriors), obs) + 0.5 * dynamics + 0.1 * representation).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    context = 8
    with torch.no_grad():
        posteriors, _ = rssm.observe(encoder(obs[:context]), actions[:context], is_first[:context],
                                     generator=generator)
        state = {"deter": posteriors["deter"][-1], "stoch": posteriors["stoch"][-1]}
        predicted = []
        for t in range(context, steps):
            state = rssm.imagine_step(state, actions[t], sample=False)
            predicted.append(symexp(decoder(rssm.features(state))))
        model_error = (torch.stack(predicted) - obs[context:]).pow(2).mean()
        copy_error = (obs[context - 1 : context].expand_as(obs[context:]) - obs[context:]).pow(2).mean()
    assert model_error < 0.2 * copy_error, (float(model_error), float(copy_error))


def test_dreamer_refuses_envs_it_cannot_read():
    with pytest.raises(IncompatibleEnvError, match="flat vector or a 64 x 64 RGB"):
        modelrl.make_agent("dreamer", env="FrozenLake-v1", size="tiny")  # Discrete observations
    with pytest.raises(IncompatibleEnvError, match="64 x 64 x 3"):
        modelrl.make_agent("dreamer", env=_ImageEnv(32), size="tiny")


def test_actor_gradient_through_the_dynamics_reaches_the_actor_alone():
    """`actor_gradient="dynamics"`: the imagined returns' gradient trains the actor through the model and the
    critic, whose weights it leaves untouched (they only pass it on) and whose flags it restores."""
    agent = modelrl.make_agent("dreamer", env="Pendulum-v1", size="tiny", actor_gradient="dynamics", seed=0,
                               entropy=0.0)  # the actor can learn only through the model
    rssm = agent.model.rssm
    with torch.no_grad():  # a state one imagined step from the start, so that every input is non-zero
        start = rssm.imagine_step(rssm.initial(32), torch.rand(32, 1) * 2 - 1)
        for head in (agent.model.reward_head, agent.critic.net):  # zero at first: no gradient to pass on
            torch.nn.init.normal_(head[-1].weight, std=0.1)
    modules = {"model": agent.model, "actor": agent.actor, "critic": agent.critic}
    before = {name: [p.detach().clone() for p in module.parameters()] for name, module in modules.items()}
    agent.actor_critic_update(start, torch.ones(32))
    assert all(p.grad is None and p.requires_grad for p in agent.model.parameters())
    moved = {name: [not torch.equal(a, b) for a, b in zip(before[name], module.parameters(), strict=True)]
             for name, module in modules.items()}
    assert not any(moved["model"]) and all(moved["actor"]) and any(moved["critic"])
    with pytest.raises(ConfigError, match="needs continuous actions"):
        modelrl.make_agent("dreamer", env="CartPole-v1", size="tiny", actor_gradient="dynamics")
    with pytest.raises(ConfigError, match="actor_gradient must be"):
        modelrl.make_agent("dreamer", env="Pendulum-v1", size="tiny", actor_gradient="backprop")


class _ImageEnv(gym.Env):
    """Frames of a given side, a plain 2-action task (for the refusal of sizes the conv net cannot read)."""

    def __init__(self, side: int = 64):
        self.observation_space = gym.spaces.Box(0, 255, (side, side, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


@pytest.mark.parametrize("env_id,num_envs", [("Pendulum-v1", 1), ("CartPole-v1", 1), ("Pendulum-v1", 2)])
def test_dreamer_resumes_exactly_latent_state_included(tmp_path, env_id, num_envs):
    """Saved mid-episode (after updates), reloaded, and both continued: the same actions, losses and
    returns as the uninterrupted agent, since the checkpoint holds the policy's latent state."""
    settings = {"size": "tiny", "learning_starts": 60, "batch_size": 4, "batch_length": 8, "train_ratio": 16,
                "horizon": 5, "device": "cpu"}
    agent = modelrl.make_agent("dreamer", env=env_id, seed=3, num_envs=num_envs, **settings)
    agent.learn(total_steps=90)
    assert agent.updates > 0 and agent.loop.slots[0].state is not None  # mid-episode, with a latent
    agent.save(tmp_path / "dreamer.pt")
    resumed = modelrl.load(tmp_path / "dreamer.pt")
    first = agent.learn(total_steps=40, eval_every=20, eval_episodes=1)
    second = resumed.learn(total_steps=40, eval_every=20, eval_episodes=1)
    assert first == [{**row, "wall_time": first[i]["wall_time"]} for i, row in enumerate(second)]
    for a, b in zip(agent.actor.parameters(), resumed.actor.parameters(), strict=True):
        assert torch.equal(a, b)


def test_each_env_of_several_keeps_its_own_stream_of_steps():
    """Two envs stepped together: each has a replay of its own, so a window never joins two envs' steps;
    Pendulum's state moves little in a step, so a jump between consecutive rows would show a mix."""
    agent = modelrl.make_agent("dreamer", env="Pendulum-v1", seed=0, num_envs=2, size="tiny",
                               learning_starts=300, batch_size=4, batch_length=8, train_ratio=16, horizon=3)
    agent.learn(500)
    assert agent.updates > 0
    for buffer in agent.buffers:
        rows = buffer.all()
        assert len(buffer) == 250 + 2  # 250 steps, and the first observations of its two episodes
        assert rows["is_first"].sum() == 2
        angle = np.arctan2(rows["obs"][:, 1], rows["obs"][:, 0])
        step = np.abs(np.angle(np.exp(1j * np.diff(angle))))  # wrapped change of angle per row
        assert step[~rows["is_first"][1:]].max() < 0.5  # max speed 8 rad/s x 0.05 s = 0.4
    batch = agent.sample_batch()
    assert batch["obs"].shape == (8, 4, 3)


def test_envs_in_processes_of_their_own_learn_and_resume(tmp_path):
    agent = modelrl.make_agent("dreamer", env="Pendulum-v1", seed=0, num_envs=2, env_processes=True,
                               size="tiny", learning_starts=100, batch_size=2, batch_length=8,
                               train_ratio=16, horizon=3)
    assert isinstance(agent.loop.env, gym.vector.AsyncVectorEnv)
    history = agent.learn(200, eval_every=100, eval_episodes=1)
    assert [row["env_steps"] for row in history] == [100, 200] and agent.updates > 0
    agent.save(tmp_path / "async.pt")
    resumed = modelrl.load(tmp_path / "async.pt")  # its episodes restart: processes hold no saved state
    resumed.learn(20)
    assert resumed.env_steps == 220 and resumed.updates > agent.updates
    agent.loop.env.close()
    resumed.loop.env.close()


def test_planets_planner_with_the_true_dynamics_swings_the_pendulum_up():
    """PlaNet's CEM (its iterations, elites and refits; a smaller population) scoring sequences with
    Pendulum's exact dynamics and reward: the planner alone, with a perfect model, swings up and holds the
    pendulum. The horizon is 30 steps (1.5 s): PlaNet's 12 span 96 control steps at its action repeat 8."""
    from modelrl.agents.planet import PlaNetConfig, planet_planner
    from modelrl.envs.known import pendulum_reward, pendulum_step

    env = gym.make("Pendulum-v1")
    planner = planet_planner(PlaNetConfig(population=200, iterations=5, horizon=30), env.action_space,
                             torch.Generator().manual_seed(0))

    def returns(state: torch.Tensor, sequences: torch.Tensor) -> torch.Tensor:
        obs, total = state.expand(len(sequences), -1), torch.zeros(len(sequences))
        for t in range(sequences.shape[1]):
            next_obs = pendulum_step(obs, sequences[:, t])
            total += pendulum_reward(obs, sequences[:, t], next_obs)
            obs = next_obs
        return total

    obs, _ = env.reset(seed=0)
    episode_return, done = 0.0, False
    while not done:
        state = torch.as_tensor(obs, dtype=torch.float32)[None]
        action = planner.act(lambda sequences, state=state: returns(state, sequences))
        obs, reward, terminated, truncated, _ = env.step(action)
        episode_return += reward
        done = terminated or truncated
    assert episode_return > -400, episode_return  # a random policy: about -1200


@pytest.mark.slow  # compiling takes a minute or more on a loaded 2-core machine
def test_compiled_imagination_matches_the_eager_one():
    settings = {"size": "tiny", "learning_starts": 10, "batch_size": 2, "batch_length": 8, "horizon": 4}
    eager = modelrl.make_agent("dreamer", env="Pendulum-v1", seed=1, **settings)
    compiled = modelrl.make_agent("dreamer", env="Pendulum-v1", seed=1, compile=True, **settings)
    for agent in (eager, compiled):
        agent.learn(40)
    start = {key: value[:16] for key, value in eager.model.rssm.initial(16).items()}
    start["stoch"] = torch.rand(16, eager.model.rssm.stoch_size)
    generators = [torch.Generator().manual_seed(0) for _ in range(2)]
    with torch.no_grad():
        steps = [agent.model.rssm.imagine_step(start, torch.zeros(16, 1), generator)
                 for agent, generator in zip((eager, compiled), generators, strict=True)]
    for key in ("deter", "stoch", "logits"):
        torch.testing.assert_close(steps[0][key], steps[1][key], atol=1e-4, rtol=1e-4)
    # with gradients (the actor's, backpropagated through the imagination): the same values and gradients
    gradients = []
    for agent in (eager, compiled):
        action = torch.full((16, 1), 0.3, requires_grad=True)
        step = agent.imagine_step(start, action, torch.Generator().manual_seed(0))
        step["deter"].square().sum().backward()
        gradients.append(action.grad)
    assert gradients[0].abs().sum() > 0
    torch.testing.assert_close(gradients[0], gradients[1], atol=1e-4, rtol=1e-4)


def test_planets_reward_head_is_a_gaussian_and_either_head_can_be_chosen():
    small = {"size": "tiny", "learning_starts": 8, "batch_size": 2, "batch_length": 4, "train_ratio": 8}
    planet = modelrl.make_agent("planet", env="Pendulum-v1", population=8, iterations=1, **small)
    assert planet.model.two_hot is None and planet.model.reward_head[-1].out_features == 1
    dreamer = modelrl.make_agent("dreamer", env="Pendulum-v1", reward_head="gaussian", **small)
    dreamer.learn(16)  # the critic keeps its own two-hot
    assert dreamer.model.two_hot is None and dreamer.updates > 0
    with pytest.raises(ConfigError, match="reward_head"):
        modelrl.make_agent("dreamer", env="Pendulum-v1", reward_head="laplace")
