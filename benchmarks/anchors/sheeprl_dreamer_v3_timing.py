"""Anchor: seconds of one DreamerV3 gradient update of sheeprl 0.8.4, at the sizes of our `size1m` preset.

Builds sheeprl's own DreamerV3 from its own Hydra configs (`sheeprl.configs`: `exp=dreamer_v3`,
`env=dummy`, `algo=dreamer_v3_XS`, every width overridden below) with its own `build_agent`, for a vector
task shaped like DMC cartpole swingup from proprioception: one observation key `state` of 5 floats, one
continuous action. The widths are those of modelrl's `size1m` (modelrl/agents/latent.py, SIZES): recurrent
state 512, dense units 64 (the MLPs, the recurrent model's input layer, the prior and posterior hidden
layers), 32 categorical latents of 4 classes, 3 layers (`algo.mlp_layers`) for the encoder, the decoder, the
actor and the critic, 255-bin two-hot reward and critic. The reward and continue heads keep sheeprl's default
depth, `algo.mlp_layers`, so 3 layers of 64. Batch 16 sequences x 64 steps, imagination horizon 15.
Everything else is sheeprl's default: its optimisers (Adam, fused), gradient clipping, KL balancing, return
normalisation (`Moments`), the target critic (tau 0.02, refreshed before every update), `algo.compile` off,
`fabric.precision=32-true` on the CPU, and the settings its command line makes before a run (float32 matmul
precision "high", distribution argument checks off, the metric aggregator on at `metric.log_level=1`).

What it times: the gradient step of sheeprl's training loop (`main` of
sheeprl/algos/dreamer_v3/dreamer_v3.py): the target-critic refresh, then `train(...)`, which updates the
world model on the batch, imagines from each of its 1,024 posteriors and updates the actor and then the
critic, called with the arguments `main` passes, inside `fabric.launch`. The replay batches are made up
(random observations, actions in [-1, 1], rewards in [0, 1], no episode end), a fresh one per update, made
before the clock starts: sampling the buffer is not timed, and no environment is stepped. One untimed update
(the warm-up), then --updates timed ones; one JSON line on stdout. Nothing in sheeprl is changed.

Where sheeprl's model and update differ from modelrl's Dreamer at the same widths (modelrl/models/rssm.py,
modelrl/agents/latent.py, modelrl/agents/dreamer.py), so the two timings are not of identical work:
- GRU: sheeprl's is one LayerNorm GRU cell over the whole state (`LayerNormGRUCell`: one Linear of
  512 + 64 -> 3 x 512 without bias, LayerNorm, update gate biased by -1); ours is DreamerV3's block-diagonal
  GRU of 8 blocks of 64 (a hidden layer per block, LayerNorm and SiLU, then the gates per block, LayerNorm).
  Weights of the recurrent model (GRU and its input layers): 896,192 in sheeprl, 273,344 in ours; of the
  whole world model: 1,157,701 against 521,605. The actor (49,666) and the critic (66,111) match ours.
- GRU input: sheeprl's is one dense layer (Linear, LayerNorm, SiLU) of the concatenated stochastic state and
  action, 129 -> 64; ours is three dense layers of 64, of the stochastic state, the action and the recurrent
  state, concatenated (192), and each block of the GRU also reads its own part of the state.
- Prior: sheeprl's transition model has one hidden layer of 64; ours has two.
- Initial state: sheeprl learns the initial recurrent state (tanh of a parameter) and starts from the mode of
  its prior; ours starts from zeros.
- Encoder: sheeprl's has 3 dense layers, each with LayerNorm and SiLU; ours has 2 such layers and a plain
  linear output of 64.
- Reward and continue heads: 3 hidden layers of 64 in sheeprl (its default, `algo.mlp_layers`); 1 in ours
  (`head_layers`).
- Actor gradient: for continuous actions sheeprl's default (`algo.actor.objective_mix: null`) is DreamerV3's
  dynamics backpropagation: the imagination keeps its graph and the actor's loss backpropagates through 15
  steps of the RSSM, the reward, continue and critic heads. Ours is REINFORCE for every action space: the
  imagination runs without gradients. `--objective-mix 1` times sheeprl with REINFORCE, the closer match to
  ours.
- Critic: sheeprl runs the critic again on the imagined states for its loss (and the target critic on them);
  ours reuses the logits computed for the returns. The target critic is refreshed before each update in
  sheeprl, after it in ours.
- Book-keeping: sheeprl updates 13 torchmetrics means of its aggregator each update and computes the
  posterior and prior entropies for it; ours returns detached metrics. sheeprl's Adam is the fused one.
- Float32 matmul precision: sheeprl's command line sets "high" (`float32_matmul_precision`); ours leaves
  PyTorch's default ("highest"). This script sets "high" as sheeprl does; the JSON line says which. On this
  machine's CPU it changed neither the results nor the speed of a float32 matmul.

  OMP_NUM_THREADS=1 benchmarks/anchors/sheeprl_dreamer_v3_timing.sh --threads 1 --updates 10
"""

import argparse
import json
import os
import platform
import statistics
import time

import gymnasium as gym
import hydra
import lightning
import numpy as np
import sheeprl
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from sheeprl.algos.dreamer_v2.utils import reinforce_weight
from sheeprl.algos.dreamer_v3.agent import build_agent
from sheeprl.algos.dreamer_v3.dreamer_v3 import train
from sheeprl.algos.dreamer_v3.utils import AGGREGATOR_KEYS, Moments
from sheeprl.utils.metric import MetricAggregator
from sheeprl.utils.timer import timer
from sheeprl.utils.utils import dotdict
from torch.distributions import Distribution

OBS_DIM = 5  # DMC cartpole swingup, proprioceptive: position (1), cos/sin of the angle (2), velocities (2)
ACTION_DIM = 1
OBS_KEY = "state"
SIZES = {  # modelrl's size1m (deter, hidden, units, latents, classes) in sheeprl's keys
    "recurrent_state_size": 512, "dense_units": 64, "transition_hidden_size": 64,
    "representation_hidden_size": 64, "stochastic_size": 32, "discrete_size": 4, "mlp_layers": 3,
    "reward_bins": 255, "critic_bins": 255,
}


def compose_config(args: argparse.Namespace) -> dotdict:
    """sheeprl's configuration for this run, composed from its own config files as its command line does."""
    overrides = [
        "exp=dreamer_v3", "env=dummy", "env.id=continuous_dummy", "env.num_envs=1", "algo=dreamer_v3_XS",
        "algo.cnn_keys.encoder=[]", "algo.cnn_keys.decoder=[]", f"algo.mlp_keys.encoder=[{OBS_KEY}]",
        f"algo.mlp_keys.decoder=[{OBS_KEY}]",
        f"algo.dense_units={SIZES['dense_units']}", f"algo.mlp_layers={SIZES['mlp_layers']}",
        f"algo.world_model.recurrent_model.recurrent_state_size={SIZES['recurrent_state_size']}",
        f"algo.world_model.transition_model.hidden_size={SIZES['transition_hidden_size']}",
        f"algo.world_model.representation_model.hidden_size={SIZES['representation_hidden_size']}",
        f"algo.world_model.stochastic_size={SIZES['stochastic_size']}",
        f"algo.world_model.discrete_size={SIZES['discrete_size']}",
        f"algo.world_model.reward_model.bins={SIZES['reward_bins']}",
        f"algo.critic.bins={SIZES['critic_bins']}",
        f"algo.horizon={args.horizon}", f"algo.per_rank_batch_size={args.batch_size}",
        f"algo.per_rank_sequence_length={args.batch_length}", "algo.compile.enabled=False",
        "fabric.accelerator=cpu", "fabric.devices=1", "fabric.precision=32-true",
        f"num_threads={args.threads}", f"seed={args.seed}",
    ]
    if args.objective_mix is not None:
        overrides.append(f"algo.actor.objective_mix={args.objective_mix}")
    with initialize_config_module(config_module="sheeprl.configs", version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    return dotdict(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True))


def prepare_run(cfg: dotdict):
    """What sheeprl's `run_algorithm` sets before it launches an algorithm; the Fabric it launches it on."""
    torch.set_float32_matmul_precision(cfg.float32_matmul_precision)
    Distribution.set_default_validate_args(cfg.distribution.validate_args)
    timer.disabled = cfg.metric.log_level == 0 or cfg.metric.disable_timer
    for key in set(cfg.metric.aggregator.metrics) - AGGREGATOR_KEYS:
        cfg.metric.aggregator.metrics.pop(key, None)
    MetricAggregator.disabled = cfg.metric.log_level == 0 or len(cfg.metric.aggregator.metrics) == 0
    return hydra.utils.instantiate(cfg.fabric, strategy="auto", _convert_="all")


def fake_batch(generator: torch.Generator, length: int, batch: int) -> dict[str, torch.Tensor]:
    """A replayed batch as `sample_batches` hands it to `train`: time-major float32 `(length, batch, ...)`."""
    zeros = torch.zeros(length, batch, 1)
    return {
        OBS_KEY: torch.randn(length, batch, OBS_DIM, generator=generator),
        "actions": torch.rand(length, batch, ACTION_DIM, generator=generator) * 2 - 1,
        "rewards": torch.rand(length, batch, 1, generator=generator),
        "terminated": zeros.clone(), "truncated": zeros.clone(), "is_first": zeros.clone(),
    }


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def run(fabric, cfg: dotdict, updates: int) -> dict:
    """Build sheeprl's agent as its `main` does, then time its gradient steps."""
    fabric.seed_everything(cfg.seed)
    obs_space = gym.spaces.Dict({OBS_KEY: gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)})
    actions_dim, is_continuous = (ACTION_DIM,), True
    world_model, actor, critic, target_critic, _player = build_agent(fabric, actions_dim, is_continuous, cfg,
                                                                     obs_space)
    world_optimizer = hydra.utils.instantiate(cfg.algo.world_model.optimizer, params=world_model.parameters(),
                                              _convert_="all")
    actor_optimizer = hydra.utils.instantiate(cfg.algo.actor.optimizer, params=actor.parameters(),
                                              _convert_="all")
    critic_optimizer = hydra.utils.instantiate(cfg.algo.critic.optimizer, params=critic.parameters(),
                                               _convert_="all")
    world_optimizer, actor_optimizer, critic_optimizer = fabric.setup_optimizers(
        world_optimizer, actor_optimizer, critic_optimizer)
    moments_cfg = cfg.algo.actor.moments
    moments = Moments(moments_cfg.decay, moments_cfg.max, moments_cfg.percentile.low,
                      moments_cfg.percentile.high)
    aggregator = None
    if not MetricAggregator.disabled:
        aggregator = hydra.utils.instantiate(cfg.metric.aggregator, _convert_="all").to(fabric.device)

    generator = torch.Generator().manual_seed(cfg.seed)
    batches = [{key: value.to(fabric.device) for key, value in fake_batch(
        generator, cfg.algo.per_rank_sequence_length, cfg.algo.per_rank_batch_size).items()}
        for _ in range(updates + 1)]
    gradient_steps = 0

    def gradient_step(batch: dict[str, torch.Tensor]) -> float:
        """One pass of the body of `main`'s loop over its batches, timed."""
        nonlocal gradient_steps
        started = time.perf_counter()
        if gradient_steps % cfg.algo.critic.per_rank_target_network_update_freq == 0:
            tau = 1 if gradient_steps == 0 else cfg.algo.critic.tau
            for cp, tcp in zip(critic.module.parameters(), target_critic.parameters(), strict=True):
                tcp.data.copy_(tau * cp.data + (1 - tau) * tcp.data)
        train(fabric, world_model, actor, critic, target_critic, world_optimizer, actor_optimizer,
              critic_optimizer, batch, aggregator, cfg, is_continuous, actions_dim, moments)
        gradient_steps += 1
        return time.perf_counter() - started

    warm_up = gradient_step(batches[0])
    seconds = [gradient_step(batch) for batch in batches[1:]]
    finite = all(torch.isfinite(p).all() for m in (world_model, actor, critic) for p in m.parameters())
    return {
        "warm_up_s": warm_up, "seconds": seconds, "finite": bool(finite),
        "parameters": {"world_model": count(world_model), "actor": count(actor), "critic": count(critic),
                       "recurrent_model": count(world_model.rssm.recurrent_model)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--updates", type=int, default=10, help="timed gradient updates")
    parser.add_argument("--batch-size", type=int, default=16, help="sequences per batch")
    parser.add_argument("--batch-length", type=int, default=64, help="steps per sequence")
    parser.add_argument("--horizon", type=int, default=15, help="imagined steps")
    parser.add_argument("--objective-mix", type=float, default=None,
                        help="weight of REINFORCE in the actor's objective (default: sheeprl's, dynamics "
                             "backpropagation for continuous actions; 1: REINFORCE, as modelrl)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    cfg = compose_config(args)
    fabric = prepare_run(cfg)
    result = fabric.launch(run, cfg, args.updates)
    print(json.dumps({
        "anchor": "sheeprl 0.8.4 dreamer_v3", "updates": args.updates, "seconds": result["seconds"],
        "seconds_per_update": statistics.median(result["seconds"]), "warm_up_s": result["warm_up_s"],
        "threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "torch": torch.__version__, "sheeprl": sheeprl.__version__, "lightning": lightning.__version__,
        "python": platform.python_version(), "seed": args.seed,
        "sizes": {"obs_dim": OBS_DIM, "action_dim": ACTION_DIM, **SIZES, "horizon": cfg.algo.horizon,
                  "batch_size": cfg.algo.per_rank_batch_size,
                  "batch_length": cfg.algo.per_rank_sequence_length},
        "config": {"objective_mix": cfg.algo.actor.objective_mix,
                   "reinforce_weight": reinforce_weight(cfg.algo.actor.objective_mix, True),
                   "float32_matmul_precision": torch.get_float32_matmul_precision(),
                   "precision": cfg.fabric.precision, "compile": cfg.algo.compile.enabled,
                   "metrics": not MetricAggregator.disabled},
        "parameters": result["parameters"], "finite": result["finite"],
    }))


if __name__ == "__main__":
    main()
