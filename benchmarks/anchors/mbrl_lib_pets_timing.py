"""Anchor: seconds of mbrl-lib 0.2.0's PETS planning step and ensemble training epoch, tutorial configuration.

Builds PETS with mbrl-lib's own pieces as its PETS tutorial does (notebooks/pets_example.ipynb):
ContinuousCartPole (mbrl.env.cartpole_continuous) with the known reward and termination functions; a
`GaussianMLP` of 5 members, 3 hidden layers of 200 units, LeakyReLU(0.01), fixed_model propagation, wrapped
in `OneDTransitionRewardModel` (deltas as targets, inputs normalised) and a `ModelEnv`; a
`TrajectoryOptimizerAgent` with `CEMOptimizer` (population 500, 5 iterations, elite ratio 0.1, alpha 0.1,
mean of the elites returned), horizon 15, replanning every step, 20 particles. The tutorial's trainer:
`ModelTrainer` (Adam, lr 1e-3, weight decay 5e-5), batches of 32, 5% of the data held out, each member on its
own shuffle.

What it times, after filling the replay buffer with 2,000 random-policy transitions and fitting the model on
them (one epoch, the warm-up, as benchmarks/pets_speed.py does with modelrl): one training epoch (three epochs
in one `ModelTrainer.train` call, over three), then --calls planning steps (`agent.act` from the same state,
after one untimed call). Prints one JSON line. Nothing in mbrl-lib is changed.

  OMP_NUM_THREADS=1 benchmarks/anchors/mbrl_lib_pets_timing.sh --threads 1 --calls 10
"""

import argparse
import json
import os
import platform
import time

import mbrl
import mbrl.env.cartpole_continuous
import mbrl.env.reward_fns
import mbrl.env.termination_fns
import mbrl.models
import mbrl.planning
import mbrl.util.common
import numpy as np
import omegaconf
import torch

TRANSITIONS = 2000
TIMED_EPOCHS = 3

MODEL = {
    "dynamics_model": {
        "_target_": "mbrl.models.GaussianMLP", "_recursive_": False, "device": "cpu", "ensemble_size": 5,
        "num_layers": 3, "hid_size": 200, "in_size": "???", "out_size": "???", "deterministic": False,
        "propagation_method": "fixed_model",
        "activation_fn_cfg": {"_target_": "torch.nn.LeakyReLU", "negative_slope": 0.01},
    },
    "algorithm": {"learned_rewards": False, "target_is_delta": True, "normalize": True},
    "overrides": {"trial_length": 200, "num_steps": TRANSITIONS, "model_batch_size": 32,
                  "validation_ratio": 0.05},
}
AGENT = {
    "_target_": "mbrl.planning.TrajectoryOptimizerAgent", "_recursive_": False, "planning_horizon": 15,
    "replan_freq": 1, "verbose": False, "action_lb": "???", "action_ub": "???",
    "optimizer_cfg": {
        "_target_": "mbrl.planning.CEMOptimizer", "num_iterations": 5, "elite_ratio": 0.1,
        "population_size": 500, "alpha": 0.1, "device": "cpu", "lower_bound": "???", "upper_bound": "???",
        "return_mean_elites": True, "clipped_normal": False,
    },
}
PARTICLES = 20
TRAINER = {"optim_lr": 1e-3, "weight_decay": 5e-5}


def build(seed: int):
    """The environment, the model, the model environment, the agent and the replay buffer, seeded."""
    env = mbrl.env.cartpole_continuous.CartPoleEnv()
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    cfg = omegaconf.OmegaConf.create(MODEL)
    obs_shape, act_shape = env.observation_space.shape, env.action_space.shape
    model = mbrl.util.common.create_one_dim_tr_model(cfg, obs_shape, act_shape)
    model_env = mbrl.models.ModelEnv(env, model, mbrl.env.termination_fns.cartpole,
                                     mbrl.env.reward_fns.cartpole, generator=generator)
    agent = mbrl.planning.create_trajectory_optim_agent_for_model(
        model_env, omegaconf.OmegaConf.create(AGENT), num_particles=PARTICLES)
    buffer = mbrl.util.common.create_replay_buffer(cfg, obs_shape, act_shape, rng=rng)
    return env, cfg, model, agent, buffer


def time_training(env, cfg, model, buffer) -> tuple[float, list[float]]:
    """Fill the buffer with random-policy transitions, fit one epoch (warm-up), then time TIMED_EPOCHS epochs
    in one call: their mean, and each epoch's seconds (read at the trainer's end-of-epoch callback)."""
    mbrl.util.common.rollout_agent_trajectories(env, TRANSITIONS, mbrl.planning.RandomAgent(env), {},
                                                replay_buffer=buffer)
    assert buffer.num_stored == TRANSITIONS, buffer.num_stored
    model.update_normalizer(buffer.get_all())
    train, held_out = mbrl.util.common.get_basic_buffer_iterators(
        buffer, cfg.overrides.model_batch_size, cfg.overrides.validation_ratio, ensemble_size=len(model),
        shuffle_each_epoch=True)
    trainer = mbrl.models.ModelTrainer(model, **TRAINER)
    trainer.train(train, held_out, num_epochs=1, silent=True)  # warm-up
    marks = []
    started = time.perf_counter()
    trainer.train(train, held_out, num_epochs=TIMED_EPOCHS, silent=True,
                  callback=lambda *_: marks.append(time.perf_counter()))
    total = time.perf_counter() - started
    per_epoch = [b - a for a, b in zip([started, *marks[:-1]], marks, strict=True)]
    return total / TIMED_EPOCHS, per_epoch


def time_planning(env, agent, calls: int, seed: int) -> tuple[float, list[float]]:
    """Seconds of one untimed planning step (the warm-up) and of `calls` timed ones, all from one state."""
    obs, _ = env.reset(seed=seed)
    agent.reset()
    started = time.perf_counter()
    agent.act(obs)
    warm_up = time.perf_counter() - started
    seconds = []
    for _ in range(calls):
        started = time.perf_counter()
        agent.act(obs)
        seconds.append(time.perf_counter() - started)
    return warm_up, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--calls", type=int, default=10, help="timed planning steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    env, cfg, model, agent, buffer = build(args.seed)
    epoch_s, epochs_s = time_training(env, cfg, model, buffer)
    warm_up_s, act_s = time_planning(env, agent, args.calls, args.seed)
    print(json.dumps({
        "anchor": "mbrl-lib PETS tutorial configuration", "mbrl": mbrl.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(), "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "seed": args.seed, "calls": args.calls,
        "act_s": act_s, "act_s_median": float(np.median(act_s)), "act_warm_up_s": warm_up_s,
        "train_epoch_s": epoch_s, "train_epochs_s": epochs_s, "transitions": TRANSITIONS,
        "config": {"model": MODEL, "agent": AGENT, "particles": PARTICLES, "trainer": TRAINER},
    }))


if __name__ == "__main__":
    main()
