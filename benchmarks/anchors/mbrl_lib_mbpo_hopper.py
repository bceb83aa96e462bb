"""Anchor: mbrl-lib 0.2.0's MBPO on Hopper-v4 in mbrl-lib's own Hopper configuration, on this machine.

Runs `mbrl.algorithms.mbpo.train` unmodified, with the config mbrl-lib's examples compose for
`algorithm=mbpo overrides=mbpo_hopper` (main.yaml + algorithm/mbpo.yaml +
dynamics_model/gaussian_mlp_ensemble.yaml + overrides/mbpo_hopper.yaml, read from the installed package),
device cpu. After every epoch (1,000 env steps) it writes --out: total env steps, eval return, the SAC
critics' mean Q, seconds per epoch and where they went, the model fit, the config values used and the machine.
Nothing in mbrl-lib is edited: the figures come from wrappers put around mbrl-lib's functions and methods from
outside.

  OMP_NUM_THREADS=1 benchmarks/anchors/mbrl_lib_mbpo_hopper.sh --steps 15000 --seed 0 --threads 1 \\
      --out benchmarks/results/mbrl_lib_mbpo_hopper_s0.json     (the .sh builds the venv on first use)

--steps counts every real env step, the 5,000 initial-exploration steps included (mbrl-lib's own loop counter,
kept as `mbrl_env_step`, starts after them), so --steps 15000 gives epochs ending at 6k, 7k, ... 15k.
--set KEY=VALUE (repeatable, OmegaConf dotlist) changes the config, e.g. for a short smoke test:
  --steps 700 --set algorithm.initial_exploration_steps=300 overrides.epoch_length=100 \\
      overrides.freq_train_model=50 overrides.effective_model_rollouts_per_step=4 \\
      overrides.num_sac_updates_per_step=2 overrides.num_epochs_train_model=2

Two departures from a plain `python -m mbrl.examples.main algorithm=mbpo overrides=mbpo_hopper`, both keeping
its behaviour: (1) the SAC agent and dynamics-model configs get `_recursive_: false`, which is how hydra-core
1.0.3 (mbrl's pin) instantiated them; under hydra 1.3 the nested `action_space: {_target_: gym.env.Box}` and
`activation_fn_cfg` would otherwise be instantiated early and fail. (2) The model replay buffer keeps
mbrl-lib's capacity (overrides.num_steps = 125,000) even when --steps shortens the run, so short runs keep
every transition as the full run does.

q_value is the mean over both critics of Q(s, a) on each update's training batch (buffer actions, before the
critic step), averaged over the epoch's updates; it is read by a forward hook on the critic module. Since
real_data_ratio is 0 those batches are imagined (model-rollout) transitions.
"""

import argparse
import json
import os
import pathlib
import platform
import sys
import tempfile
import time
import warnings

import mbrl
import mbrl.env.termination_fns
import mbrl.models
import mbrl.third_party.pytorch_sac_pranz24.sac as pranz_sac
import mbrl.util.common
import mbrl.util.env
import mbrl.util.math
import numpy as np
import omegaconf
import torch
from mbrl.algorithms import mbpo

warnings.filterwarnings("ignore", category=DeprecationWarning)

CONF = pathlib.Path(mbrl.__file__).resolve().parent / "examples" / "conf"


def build_config(seed: int, steps: int, assignments: list) -> omegaconf.DictConfig:
    """mbrl-lib's composed MBPO/Hopper config, with the run's seed, length and --set overrides."""
    cfg = omegaconf.OmegaConf.load(CONF / "main.yaml")
    for key in ("defaults", "hydra"):
        cfg.pop(key)
    cfg.algorithm = omegaconf.OmegaConf.load(CONF / "algorithm" / "mbpo.yaml")
    cfg.dynamics_model = omegaconf.OmegaConf.load(CONF / "dynamics_model" / "gaussian_mlp_ensemble.yaml")
    cfg.overrides = omegaconf.OmegaConf.load(CONF / "overrides" / "mbpo_hopper.yaml")
    cfg.device = "cpu"
    cfg.seed = seed
    cfg.algorithm.agent._recursive_ = False  # hydra-core 1.0.3 semantics (see the docstring)
    cfg.dynamics_model._recursive_ = False
    full_run_steps = cfg.overrides.num_steps
    user = omegaconf.OmegaConf.from_dotlist(assignments)
    cfg = omegaconf.OmegaConf.merge(cfg, user)
    if "dataset_size" not in cfg.algorithm:
        cfg.algorithm.dataset_size = max(full_run_steps, steps)
    if omegaconf.OmegaConf.select(user, "overrides.num_steps") is None:
        cfg.overrides.num_steps = steps - cfg.algorithm.initial_exploration_steps
    if cfg.overrides.num_steps <= 0:
        raise SystemExit(
            f"--steps {steps} leaves no steps after the "
            f"{cfg.algorithm.initial_exploration_steps} initial-exploration steps"
        )
    return cfg


def key_values(cfg: omegaconf.DictConfig) -> dict:
    """The settings a comparison with another MBPO needs, read from the config the run used."""
    o, a, d = cfg.overrides, cfg.algorithm, cfg.dynamics_model
    return {
        "env": o.env,
        "term_fn": o.term_fn,
        "learned_rewards": a.learned_rewards,
        "initial_exploration_steps": a.initial_exploration_steps,
        "initial_exploration_policy": "uniform random"
        if a.random_initial_explore
        else "untrained SAC, sampled",
        "epoch_length": o.epoch_length,
        "num_eval_episodes": a.num_eval_episodes,
        "G_sac_updates_per_env_step": o.num_sac_updates_per_step,
        "sac_updates_every_steps": o.sac_updates_every_steps,
        "real_data_ratio": a.real_data_ratio,
        "sac_samples_action_in_rollouts": a.sac_samples_action,
        "rollout_schedule_[min_epoch,max_epoch,min_len,max_len]": list(o.rollout_schedule),
        "model_train_every_steps": o.freq_train_model,
        "effective_model_rollouts_per_step": o.effective_model_rollouts_per_step,
        "rollout_batch_per_model_train": o.effective_model_rollouts_per_step * o.freq_train_model,
        "num_epochs_to_retain_sac_buffer": o.num_epochs_to_retain_sac_buffer,
        "sac_lr_actor_critic": o.sac_lr,
        "sac_batch_size": o.sac_batch_size,
        "sac_gamma": o.sac_gamma,
        "sac_tau": o.sac_tau,
        "sac_target_update_interval": o.sac_target_update_interval,
        "sac_alpha": o.sac_alpha,
        "sac_automatic_entropy_tuning": o.sac_automatic_entropy_tuning,
        "sac_target_entropy": o.sac_target_entropy,
        "sac_hidden_size": o.sac_hidden_size,
        "sac_policy": o.sac_policy,
        "model": {
            "target": d._target_,
            "ensemble_size": d.ensemble_size,
            "num_elites": o.num_elites,
            "num_layers": d.num_layers,
            "hid_size": d.hid_size,
            "activation": d.activation_fn_cfg._target_,
            "deterministic": d.deterministic,
            "propagation_method": d.propagation_method,
            "learn_logvar_bounds": d.learn_logvar_bounds,
            "lr": o.model_lr,
            "weight_decay": o.model_wd,
            "batch_size": o.model_batch_size,
            "validation_ratio": o.validation_ratio,
            "patience": o.patience,
            "max_epochs": o.get("num_epochs_train_model", None),
            "target_is_delta": a.target_is_delta,
            "normalize": a.normalize,
            "normalize_double_precision": a.normalize_double_precision,
        },
        "model_buffer_capacity": a.dataset_size,
    }


def machine(threads: int) -> dict:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import gymnasium
    import hydra
    import mujoco

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": threads,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "load_average_at_start": os.getloadavg(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "mbrl": mbrl.__version__,
        "gymnasium": gymnasium.__version__,
        "mujoco": mujoco.__version__,
        "hydra": hydra.__version__,
        "omegaconf": omegaconf.__version__,
    }


class Probe:
    """Wraps mbrl-lib's functions from outside and collects each epoch's figures."""

    def __init__(self):
        self.real_steps = 0
        self.reset_epoch()

    def reset_epoch(self):
        self.seconds = {"model_train": 0.0, "rollout": 0.0, "sac_update": 0.0, "eval": 0.0}
        self.q_sum = self.q_pi_sum = self.loss_sum = 0.0
        self.updates = 0
        self.q_last = None
        self.model_fits = []

    def timed(self, owner, name: str, part: str):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[part] += time.perf_counter() - started

        setattr(owner, name, wrapper)

    def install(self):
        probe = self

        step_env = (
            mbrl.util.common.step_env_and_add_to_buffer
        )  # also the one rollout_agent_trajectories calls

        def counting_step(*args, **kwargs):
            probe.real_steps += 1
            return step_env(*args, **kwargs)

        mbrl.util.common.step_env_and_add_to_buffer = counting_step

        explore = mbrl.util.common.rollout_agent_trajectories  # only the initial exploration calls it

        def timed_explore(*args, **kwargs):
            started = time.perf_counter()
            result = explore(*args, **kwargs)
            probe.exploration_seconds = time.perf_counter() - started
            probe.epoch_started = time.perf_counter()
            probe.reset_epoch()
            return result

        mbrl.util.common.rollout_agent_trajectories = timed_explore

        self.timed(mbrl.util.common, "train_model_and_save_model_and_data", "model_train")
        self.timed(mbpo, "rollout_model_and_populate_sac_buffer", "rollout")
        self.timed(mbpo, "evaluate", "eval")

        fit = mbrl.models.ModelTrainer.train

        def recording_fit(trainer, *args, **kwargs):
            losses, scores = fit(trainer, *args, **kwargs)
            probe.model_fits.append(
                {
                    "epochs": len(losses),
                    "train_loss": losses[-1] if losses else None,
                    "best_val_score": min(scores) if scores else None,
                    "elites": [
                        int(i)
                        for i in getattr(getattr(trainer.model, "model", None), "elite_models", None) or []
                    ],
                }
            )
            return losses, scores

        mbrl.models.ModelTrainer.train = recording_fit

        update = pranz_sac.SAC.update_parameters

        def recording_update(agent, *args, **kwargs):
            if not hasattr(agent, "_anchor_q"):
                agent._anchor_q = []
                agent._anchor_armed = False

                def hook(module, inputs, output):  # the critic's two heads, in update order
                    if agent._anchor_armed:
                        agent._anchor_q.append((output[0].detach(), output[1].detach()))

                agent.critic.register_forward_hook(hook)
            agent._anchor_q.clear()
            agent._anchor_armed = True
            started = time.perf_counter()
            try:
                result = update(agent, *args, **kwargs)
            finally:
                agent._anchor_armed = False
                probe.seconds["sac_update"] += time.perf_counter() - started
            (q1, q2), (q1_pi, q2_pi) = agent._anchor_q[:2]  # Q(s, a_batch), then Q(s, a ~ pi(s))
            probe.q_last = 0.5 * (q1.mean().item() + q2.mean().item())
            probe.q_sum += probe.q_last
            probe.q_pi_sum += torch.min(q1_pi, q2_pi).mean().item()
            probe.loss_sum += result[0] + result[1]
            probe.updates += 1
            return result

        pranz_sac.SAC.update_parameters = recording_update


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=15000, help="total real env steps, exploration included")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", required=True, help="JSON file, rewritten after every epoch")
    parser.add_argument(
        "--eval-episodes",
        type=int,
        default=None,
        help="override algorithm.num_eval_episodes (mbrl-lib: 1); note eval draws from torch's RNG",
    )
    parser.add_argument(
        "--set",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="config overrides, OmegaConf dotlist (e.g. overrides.epoch_length=100)",
    )
    parser.add_argument("--work-dir", default=None, help="mbrl-lib's work_dir (results.csv, model, sac.pth)")
    parser.add_argument("--verbose", action="store_true", help="silent=False: mbrl-lib logs model training")
    args = parser.parse_args()
    assignments = list(args.set)
    if args.eval_episodes is not None:
        assignments.append(f"algorithm.num_eval_episodes={args.eval_episodes}")

    torch.set_num_threads(args.threads)
    cfg = build_config(args.seed, args.steps, assignments)
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="mbrl_mbpo_hopper_")
    os.makedirs(work_dir, exist_ok=True)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    # As mbrl-lib's examples/main.py does for MBPO: seeded envs from the config, global seeds, then train.
    env, term_fn, _ = mbrl.util.env.EnvHandler.make_env(cfg)
    test_env, *_ = mbrl.util.env.EnvHandler.make_env(cfg)
    assert term_fn is mbrl.env.termination_fns.hopper, term_fn
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    record = {
        "anchor": "mbrl-lib 0.2.0 MBPO, Hopper-v4, mbrl-lib's mbpo_hopper config",
        "command": "benchmarks/anchors/mbrl_lib_mbpo_hopper.sh "
        + " ".join(f"'{a}'" if " " in a else a for a in sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seed": args.seed,
        "steps": args.steps,
        "set": assignments,
        "work_dir": work_dir,
        "machine": machine(args.threads),
        "key_config": key_values(cfg),
        "q_value_definition": "mean of (Q1+Q2)/2 at (s, a) of each SAC update's batch, "
        "before the critic step, "
        "averaged over the epoch's updates; q_pi: mean min(Q1,Q2) at a ~ pi(s) after it",
        "env_steps": [],
        "mbrl_env_step": [],
        "eval_return": [],
        "q_value": [],
        "q_value_last": [],
        "q_pi": [],
        "critic_loss_qf1_plus_qf2": [],
        "sac_updates": [],
        "rollout_length": [],
        "model_fits": [],
        "seconds": [],
        "seconds_model_train": [],
        "seconds_rollout": [],
        "seconds_sac_update": [],
        "seconds_eval": [],
        "seconds_env_and_other": [],
    }
    probe = Probe()
    probe.install()
    probe.total_updates = 0
    evaluate = mbpo.evaluate  # already the timed wrapper

    def epoch_end(*eval_args, **eval_kwargs):
        value = evaluate(*eval_args, **eval_kwargs)
        now = time.perf_counter()
        seconds = now - probe.epoch_started
        probe.total_updates += probe.updates
        epoch = len(record["env_steps"])
        rollout_length = int(
            mbrl.util.math.truncated_linear(*(list(cfg.overrides.rollout_schedule) + [epoch + 1]))
        )
        n = max(probe.updates, 1)
        s = probe.seconds
        rows = {
            "env_steps": probe.real_steps,
            "mbrl_env_step": probe.real_steps - cfg.algorithm.initial_exploration_steps - 1,
            "eval_return": round(float(value), 2),
            "q_value": round(probe.q_sum / n, 4) if probe.updates else None,
            "q_value_last": round(probe.q_last, 4) if probe.q_last is not None else None,
            "q_pi": round(probe.q_pi_sum / n, 4) if probe.updates else None,
            "critic_loss_qf1_plus_qf2": round(probe.loss_sum / n, 5) if probe.updates else None,
            "sac_updates": probe.total_updates,
            "rollout_length": rollout_length,
            "model_fits": probe.model_fits,
            "seconds": round(seconds, 2),
            "seconds_model_train": round(s["model_train"], 2),
            "seconds_rollout": round(s["rollout"], 2),
            "seconds_sac_update": round(s["sac_update"], 2),
            "seconds_eval": round(s["eval"], 2),
            "seconds_env_and_other": round(seconds - sum(s.values()), 2),
        }
        for key, item in rows.items():
            record[key].append(item)
        record["exploration_seconds"] = round(probe.exploration_seconds, 2)
        record["total_seconds"] = round(now - started, 1)
        out.write_text(json.dumps(record, indent=1))
        fit = probe.model_fits[-1] if probe.model_fits else {}
        print(
            f"{rows['env_steps']} env steps: eval return {rows['eval_return']:.1f}, "
            f"Q {rows['q_value'] if rows['q_value'] is not None else float('nan'):.2f} "
            f"(last {rows['q_value_last'] if rows['q_value_last'] is not None else float('nan'):.2f}), "
            f"{probe.updates} SAC updates, k={rollout_length}, model fit {fit.get('epochs')} epochs "
            f"val {fit.get('best_val_score')}, {seconds:.1f} s (model {s['model_train']:.1f}, rollout "
            f"{s['rollout']:.1f}, SAC {s['sac_update']:.1f}, eval {s['eval']:.1f})",
            flush=True,
        )
        probe.reset_epoch()
        probe.epoch_started = time.perf_counter()
        return value

    mbpo.evaluate = epoch_end
    started = time.perf_counter()
    best = mbpo.train(env, test_env, term_fn, cfg, silent=not args.verbose, work_dir=work_dir)
    record["best_eval_return"] = float(best)
    record["total_seconds"] = round(time.perf_counter() - started, 1)
    record["config"] = omegaconf.OmegaConf.to_container(cfg, resolve=True)
    record["results_csv"] = str(pathlib.Path(work_dir) / "results.csv")
    out.write_text(json.dumps(record, indent=1))
    print(f"wrote {out} ({len(record['env_steps'])} epochs, {record['total_seconds']} s)")


if __name__ == "__main__":
    main()
