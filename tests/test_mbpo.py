import numpy as np
import pytest
import torch

import modelrl
from modelrl.agents.mbpo import MBPOConfig, rollout_length
from modelrl.errors import ConfigError
from modelrl.models.dynamics import DynamicsModel, ModelSpec
from modelrl.models.imagination import branched_rollouts, step_random_elites

TINY = {"hidden_size": 32, "batch_size": 32, "learning_starts": 50, "updates_per_step": 2, "ensemble_size": 4,
        "num_elites": 2, "model_hidden_size": 32, "model_layers": 2, "model_max_epochs": 5,
        "model_train_every": 25, "rollouts_per_step": 4, "epoch_length": 50}


def small_model(learn_termination=False):
    spec = ModelSpec(obs_dim=3, action_dim=1, ensemble_size=7, num_elites=5, hidden_size=16, num_layers=2,
                     learn_reward=True, learn_termination=learn_termination)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = DynamicsModel(spec)
    model.elites.copy_(torch.tensor([0, 2, 3, 5, 6]))
    return model


def test_imagined_steps_come_only_from_elites_chosen_at_random():
    model, generator = small_model(), torch.Generator().manual_seed(0)
    obs, action = torch.randn(503, 3), torch.randn(503, 1)
    every_member = model.predict(obs, action).next_obs  # (7, 503, 3)
    used = []
    for _ in range(3):
        next_obs, reward, _ = step_random_elites(model, obs, action, generator, deterministic=True)
        distance = (every_member - next_obs).pow(2).sum(-1)
        assert distance.min(0).values.max() < 1e-10  # each row is exactly one member's prediction
        used.append(distance.argmin(0))
    members = torch.stack(used)
    assert set(members.unique().tolist()) == {0, 2, 3, 5, 6}
    assert (members[0] != members[1]).float().mean() > 0.5  # members are redrawn at every step
    assert reward.shape == (503,)


@pytest.mark.parametrize("termination", ["known function", "learned"])
def test_branched_rollouts_stop_at_terminations_and_batch_every_step(termination):
    model, generator = (small_model(learn_termination=termination == "learned"),
                        torch.Generator().manual_seed(0))
    start = torch.randn(400, 3)
    known = (lambda obs, action, next_obs: next_obs[:, 0] > 0.3) if termination == "known function" else None
    data = branched_rollouts(model, lambda obs: torch.zeros(len(obs), 1), start, 4, generator,
                             termination_fn=known)
    if known is None:  # the model's own termination logit decides
        ends = model.predict(start, torch.zeros(len(start), 1)).terminated > 0.5  # (members, rows)
        assert (ends.any(0) & ~ends.all(0)).any()  # some members end some rows, others do not
    # Rows of step t+1 start exactly where the non-terminated rows of step t ended.
    first = len(start)
    alive = ~data["terminated"][:first]
    torch.testing.assert_close(data["obs"][first : first + int(alive.sum())], data["next_obs"][:first][alive])
    assert 0 < int(alive.sum()) < first and len(data["obs"]) < 4 * first
    assert {k: tuple(v.shape[1:]) for k, v in data.items()} == {
        "obs": (3,), "action": (1,), "reward": (), "next_obs": (3,), "terminated": ()}


def test_rollout_length_follows_the_schedule():
    hopper = (20, 100, 1, 15)
    assert [rollout_length(hopper, e) for e in (0, 20, 60, 100, 150)] == [1, 1, 8, 15, 15]


@pytest.mark.mujoco
def test_mbpo_fills_its_model_buffer_and_mixes_real_and_imagined_data():
    agent = modelrl.make_agent("mbpo", env="InvertedPendulum-v5", seed=0, **TINY)
    agent.learn(total_steps=49)
    assert agent.trainer.fits == 0 and len(agent.model_buffer) == 0 and agent.learner.updates == 0
    batches, update = [], agent.learner.update
    agent.learner.update = lambda batch: batches.append(batch) or update(batch)
    agent.learn(total_steps=1)  # the first fit, 100 rollouts of length 1, then G updates
    assert agent.trainer.fits == 1 and agent.learner.updates == 2 and len(batches) == 2
    # each SAC batch: round(32 x 0.05) = 2 real rows, then 30 from the model buffer
    real_rows = {tuple(row) for row in agent.buffer.all()["obs"].round(6).tolist()}
    model_rows = {tuple(row) for row in agent.model_buffer.all()["next_obs"].round(6).tolist()}
    for batch in batches:
        rows = [tuple(row) for row in batch["next_obs"].numpy().round(6).tolist()]
        assert (len(rows) == 32 and all(r in model_rows for r in rows[2:])
                and not any(r in model_rows for r in rows[:2]))
        assert all(tuple(row) in real_rows for row in batch["obs"][:2].numpy().round(6).tolist())
    imagined = agent.model_buffer.all()
    assert {key: value.shape for key, value in imagined.items()} == {
        "obs": (100, 4), "action": (100, 1), "reward": (100,), "next_obs": (100, 4), "terminated": (100,),
        "truncated": (100,)}
    assert np.abs(imagined["action"]).max() <= 1  # the learner's unit actions
    # k = 1: every rollout starts from a real state (not a real next state), and acts with the stochastic
    # policy, as the paper's rollouts do
    real_obs = {tuple(row) for row in agent.buffer.all()["obs"].round(6).tolist()}
    assert all(tuple(row) in real_obs for row in imagined["obs"].round(6).tolist())
    with torch.no_grad():
        mode = agent.learner.act(torch.as_tensor(imagined["obs"]), deterministic=True).numpy()
    assert np.abs(imagined["action"] - mode).mean() > 0.1
    # Imagined terminations are the env's known function of the next state (|angle| > 0.2).
    np.testing.assert_array_equal(imagined["terminated"], np.abs(imagined["next_obs"][:, 1]) > 0.2)
    assert 0 < imagined["terminated"].sum() < 100  # starts from the random phase's falls: some end, some not
    metrics = agent.metrics()  # the rollouts' summary, to set beside the critics' Q
    assert metrics["imagined_reward"] == pytest.approx(imagined["reward"].mean(), abs=1e-6)
    assert metrics["imagined_terminated"] == pytest.approx(imagined["terminated"].mean(), abs=1e-6)
    agent.learn(total_steps=25)
    assert agent.trainer.fits == 2 and len(agent.model_buffer) == 200
    assert agent.metrics()["model_buffer"] == 200


@pytest.mark.mujoco
def test_mbpo_rollouts_longer_than_one_step_regrow_the_model_buffer_and_survive_a_reload(tmp_path):
    # Epochs count from the random phase's end (step 50): k = 1 in epoch 0 (steps 50-99) and 2 from epoch 1
    # (step 100). The buffer is regrown and keeps its rows.
    agent = modelrl.make_agent("mbpo", env="InvertedPendulum-v5", seed=0, rollout_schedule="0,1,1,2", **TINY)
    agent.learn(total_steps=99)  # fits at steps 50 and 75, 100 rollouts of one step each
    assert agent.rollout_length == 1 and len(agent.model_buffer) == 200
    before = agent.model_buffer.all()
    agent.learn(total_steps=1)
    config = agent.config
    assert agent.rollout_length == 2
    assert agent.model_buffer.capacity == (config.rollouts_per_step * config.epoch_length * 2
                                           * config.model_retain_epochs)
    after = agent.model_buffer.all()
    for key in before:
        np.testing.assert_array_equal(after[key][:200], before[key])
    second_steps = len(after["obs"]) - 300  # 100 first steps, then one more for each that did not end
    assert second_steps == 100 - int(after["terminated"][200:300].sum()) and second_steps > 0
    np.testing.assert_array_equal(after["obs"][300:],
                                  after["next_obs"][200:300][~after["terminated"][200:300]])
    resumed = modelrl.load(agent.save(tmp_path / "mbpo.pt"))
    assert resumed.rollout_length == 2 and resumed.model_buffer.capacity == agent.model_buffer.capacity
    for key, value in resumed.model_buffer.all().items():
        np.testing.assert_array_equal(value, after[key])


def test_resumed_mbpo_matches_an_uninterrupted_run(tmp_path):
    straight = modelrl.make_agent("mbpo", env="Pendulum-v1", seed=2, **TINY)
    straight.learn(total_steps=130)
    first = modelrl.make_agent("mbpo", env="Pendulum-v1", seed=2, **TINY)
    first.learn(total_steps=105)
    # By now the model buffer has wrapped: its oldest row sits mid-memory, where the restored one must too.
    assert first.model_buffer.size == first.model_buffer.capacity and first.model_buffer.position > 0
    resumed = modelrl.load(first.save(tmp_path / "mbpo.pt"))
    assert resumed.env_steps == 105 and len(resumed.model_buffer) == len(first.model_buffer)
    resumed.learn(total_steps=25)
    for net in ("actor", "critic", "critic_target"):
        for a, b in zip(getattr(straight.learner, net).parameters(),
                        getattr(resumed.learner, net).parameters()):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    np.testing.assert_array_equal(straight.model_buffer.all()["obs"], resumed.model_buffer.all()["obs"])
    obs = np.zeros(3, np.float32)
    np.testing.assert_array_equal(straight.act(obs, deterministic=True), resumed.act(obs, deterministic=True))


def test_mbpo_config_errors():
    with pytest.raises(ConfigError, match="rollout_schedule"):
        modelrl.make_agent("mbpo", env="Hopper-v5", rollout_schedule="20,100,1")
    with pytest.raises(ConfigError, match="real_ratio"):
        modelrl.make_agent("mbpo", env="Hopper-v5", real_ratio=1.5)
    with pytest.raises(ConfigError, match="learning_starts must be >= 1"):
        modelrl.make_agent("mbpo", env="Hopper-v5", learning_starts=0)
    # the model buffer would not hold one refit's rollouts
    with pytest.raises(ConfigError, match="epoch_length"):
        modelrl.make_agent("mbpo", env="Hopper-v5", epoch_length=100)


@pytest.mark.mujoco
def test_rollout_schedules_and_known_terminations_follow_the_task_and_its_construction():
    # The paper's schedules are per task, whatever the Gymnasium version
    assert MBPOConfig().schedule("Hopper-v4") == MBPOConfig().schedule("Hopper-v5") == (20, 100, 1, 15)
    assert MBPOConfig().schedule("Humanoid-v4") == (20, 300, 1, 25)
    assert MBPOConfig().schedule("HalfCheetah-v5") == (20, 100, 1, 1)
    small = {**TINY, "learning_starts": 1000}
    assert not modelrl.make_agent("mbpo", env="Hopper-v5", **small).model.spec.learn_termination
    # Built so the known rule no longer holds (the x position leads the observation, or a fall no longer
    # ends the episode), the termination is learned instead, with a warning.
    for env_kwargs in ({"exclude_current_positions_from_observation": False},
                       {"terminate_when_unhealthy": False}):
        with pytest.warns(UserWarning, match="not used"):
            agent = modelrl.make_agent("mbpo", env="Hopper-v5", env_kwargs=env_kwargs, **small)
        assert agent.termination_fn is None and agent.model.spec.learn_termination
    # Arguments that only drop trailing observation terms keep it (MBPO's paper-sized Ant)
    agent = modelrl.make_agent("mbpo", env="Ant-v5", env_kwargs={"include_cfrc_ext_in_observation": False},
                               **small)
    assert agent.termination_fn is not None and agent.env.observation_space.shape == (27,)
