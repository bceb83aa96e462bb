import numpy as np
import torch

import modelrl
from modelrl.envs.known import cartpole_termination, discrete_cartpole_step

SMALL = {"hidden_size": 32, "batch_size": 16, "learning_starts": 40, "train_freq": 20, "gradient_steps": 4,
         "exploration_steps": 100}
MODEL = {"model_hidden_size": 32, "model_layers": 2, "model_max_epochs": 5, "model_train_every": 40}


def test_deep_dyna_q_without_planning_is_exactly_dqn():
    dqn = modelrl.make_agent("dqn", env="CartPole-v1", seed=1, **SMALL)
    dyna = modelrl.make_agent("deep-dyna-q", env="CartPole-v1", seed=1, planning_steps=0, **SMALL, **MODEL)
    dqn.learn(total_steps=100)
    dyna.learn(total_steps=100)
    for a, b in zip(dqn.learner.q.parameters(), dyna.learner.q.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert dyna.trainer.fits == 0 and len(dyna.imagined) == 0


def test_deep_dyna_q_imagines_n_transitions_per_real_step_and_plans_with_them():
    # Enough epochs for the model to learn CartPole's dynamics from 40-80 real steps (about a second).
    agent = modelrl.make_agent("deep-dyna-q", env="CartPole-v1", seed=4, planning_steps=3, **SMALL,
                               **{**MODEL, "model_max_epochs": 200})
    agent.learn(total_steps=40)  # the first burst: a fit, 3 x 20 imagined transitions, 4 x (1 + 3) updates
    assert agent.trainer.fits == 1 and len(agent.imagined) == 60 and agent.learner.updates == 16
    planned, sample = [], agent.imagined.sample_tensors
    agent.imagined.sample_tensors = lambda *args: planned.append(args[0]) or sample(*args)
    agent.learn(total_steps=40)  # two more bursts; the model is refitted every 40 steps
    assert agent.trainer.fits == 2 and len(agent.imagined) == 180 and agent.learner.updates == 48
    assert planned == [16] * 24  # the n planning updates per gradient step train on imagined batches
    imagined = agent.imagined.all()
    assert set(np.unique(imagined["action"])) <= {0, 1} and imagined["obs"].shape == (180, 4)
    # The imagined next states follow CartPole's own step: off by a fraction of the error of predicting no
    # change (0.11-0.25 over seeds 0-2; 1.6-1.7 after 5 epochs). The reward is always 1, so it shows nothing.
    obs, action = torch.as_tensor(imagined["obs"]), torch.as_tensor(imagined["action"])
    true_next = discrete_cartpole_step(obs, action)
    error = (torch.as_tensor(imagined["next_obs"]) - true_next).pow(2).mean()
    assert error < 0.5 * (obs - true_next).pow(2).mean()
    assert agent.metrics()["model_holdout_mse"] < 0.1  # normalised units: 0.5-1.0 after 5 epochs
    # The learned termination, drawn from calibrated probabilities: imagined steps end about as often as real
    # ones (5.6% vs 5.0% at this seed; up-weighted terminal rows without the correction gave 16-19% false
    # ends), and the model's probability is several times higher where CartPole's own rule ends the step
    # (7.7x). From 80 real steps this is noisy: seeds 0-5 give 0.2-1.1 times the real rate, 1.7-14x.
    ends = cartpole_termination(obs, action, true_next).numpy()
    real_rate = agent.buffer.all()["terminated"].mean()
    assert 0.5 * real_rate < imagined["terminated"].mean() < 1.5 * real_rate
    assert imagined["terminated"][~ends].mean() < 0.08
    with torch.no_grad():
        probability = agent.trainer.model.predict(obs, action).terminated.mean(0).numpy()
    assert probability[ends].mean() > 3 * probability[~ends].mean()


def test_resumed_deep_dyna_q_matches_an_uninterrupted_run(tmp_path):
    # Refits every 50 steps on bursts every 20: at 40, 100 and 160. Saved at 110, the next refit is due at
    # 160; a resume that forgot when the last one was would refit at 120. The imagined buffer wraps before
    # the save.
    config = {"planning_steps": 2, "imagined_buffer_size": 50, **SMALL, **MODEL, "model_train_every": 50}
    straight = modelrl.make_agent("deep-dyna-q", env="CartPole-v1", seed=3, **config)
    straight.learn(total_steps=170)
    first = modelrl.make_agent("deep-dyna-q", env="CartPole-v1", seed=3, **config)
    first.learn(total_steps=110)
    assert first.trainer.fits == 2
    resumed = modelrl.load(first.save(tmp_path / "ddq.pt"))
    resumed.learn(total_steps=60)
    for a, b in zip(straight.learner.q.parameters(), resumed.learner.q.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    np.testing.assert_array_equal(straight.imagined.all()["next_obs"], resumed.imagined.all()["next_obs"])
    for a, b in zip(straight.trainer.model.parameters(), resumed.trainer.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
