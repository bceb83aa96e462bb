"""(e) Speed: SAC gradient updates per second beside stable-baselines3's in the same run (same batch,
networks and thread count) and beside the compute floor, and MBPO env steps per second with where the time
goes.

    python benchmarks/sac_speed.py [--updates 500 --rounds 5 --mbpo-steps 1000] [--skip-mbpo --name N]
        [--compiled-bfloat16] [--mbpo-compile]

SAC: the learners train on the same kind of replay data (1,000 Pendulum-v1 transitions), batch 256, two
hidden layers of 256, one thread; the rounds alternate between them so machine load hits all alike. Ours runs
in float32 like SB3 (the comparison (e) asks for), eager and with `compile=True`, and, where the CPU has
native bfloat16 (AVX512-BF16 or AMX), with `precision="bfloat16"` (hidden matmuls in bfloat16, a change of
precision rather than of implementation). The floor is the float32 matmuls one update needs
(`update_flops`) at the machine's rate for the hidden layers' shape, measured before and after every round:
no float32 implementation can beat it, so it bounds any like-for-like speedup. Each kind of matmul the
update runs (forward, weight and input gradients) is timed too, to show the floor's rate holds for all of
them, and a hidden matmul in bfloat16, for the same bound on `precision="bfloat16"`. A tighter bound: the
seconds the compiled update spends in its matmul kernels (a torch profile of a few rounds).
MBPO: a short run per env from the end of its random phase; seconds are split into model fitting,
branched rollouts and SAC updates (the agent's own timers) and the rest (env steps, acting).
"""

from __future__ import annotations

import argparse
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from common import RESULTS, gflops_rate, matmul_rate, results_name, spread, write_results

import modelrl
from modelrl.device import cpu_has_native_bfloat16

BATCH = 256
HIDDEN, LAYERS = 256, 2
OBS_DIM, ACTION_DIM = 3, 1  # Pendulum-v1


def update_flops(obs_dim: int, action_dim: int, hidden: int, layers: int, batch: int) -> int:
    """Matmul FLOPs of one SAC update (twin critics, critics' weights frozen in the actor loss)."""
    def forward(inputs: int, outputs: int) -> int:  # MACs per sample
        return inputs * hidden + hidden * hidden * (layers - 1) + hidden * outputs

    actor, critic = forward(obs_dim, 2 * action_dim), forward(obs_dim + action_dim, 1)
    input_grads_actor, input_grads_critic = actor - obs_dim * hidden, critic - (obs_dim + action_dim) * hidden
    target = actor + 2 * critic  # pi(s') and both target critics, no gradient
    critic_loss = 2 * (critic + critic + input_grads_critic)  # forward, weight grads, grads of hidden inputs
    actor_loss = actor + 2 * (critic + critic) + actor + input_grads_actor  # ... through the critics to a
    return 2 * batch * (target + critic_loss + actor_loss)


def hidden_layer_rate() -> float:
    """GFLOP/s of the hidden layers' shapes: the critics' pair as one batched matmul, the actor's alone."""
    return max(matmul_rate(2, BATCH, HIDDEN, HIDDEN, reps=200),
               matmul_rate(1, BATCH, HIDDEN, HIDDEN, reps=200))


def matmul_seconds(run, updates: int) -> float:
    """Seconds per update spent in matmul kernels while `run` times a round, from a torch profile: the
    floor at the rate the matmuls reach inside the update, where their operands are not all in cache."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    kernels = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")
    return sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in kernels) / 1e6 / updates


def shape_rates(native_bfloat16: bool, reps: int = 100) -> dict[str, float]:
    """GFLOP/s of each kind of hidden-layer matmul an update runs, the critics' pair batched and the actor's
    alone: forward (x W), weight gradient (x^T g) and input gradient (g W^T), with the transposes as views, as
    autograd passes them. If one ran far below the floor's rate, the floor would be loose there."""
    x, w, g = torch.randn(2, BATCH, HIDDEN), torch.randn(2, HIDDEN, HIDDEN), torch.randn(2, BATCH, HIDDEN)
    x16, w16 = x.bfloat16(), w.bfloat16()
    cases = {"critics forward": lambda: torch.bmm(x, w),
             "critics weight gradient": lambda: torch.bmm(x.transpose(1, 2), g),
             "critics input gradient": lambda: torch.bmm(g, w.transpose(1, 2)),
             "actor forward": lambda: torch.mm(x[0], w[0]),
             "actor weight gradient": lambda: torch.mm(x[0].t(), g[0]),
             "actor input gradient": lambda: torch.mm(g[0], w[0].t())}
    if native_bfloat16:
        cases["critics forward bfloat16"] = lambda: torch.bmm(x16, w16)
    flops = 2 * BATCH * HIDDEN * HIDDEN  # per member
    return {name: round(gflops_rate(matmul, flops * (2 if name.startswith("critics") else 1), reps), 1)
            for name, matmul in cases.items()}


def ours(updates: int, env_id: str = "Pendulum-v1", **overrides):
    """A timer of our SAC's updates per second on 1,000 random transitions of `env_id`, each update sampling
    its batch as training does (a GPU is synchronised around the round)."""
    agent = modelrl.make_agent("sac", env=env_id, seed=0, learning_starts=1000, updates_per_step=0,
                               **overrides)
    agent.learn(total_steps=1000)
    synchronize = torch.cuda.synchronize if agent.device.type == "cuda" else lambda: None

    def run() -> float:
        synchronize()
        started = time.perf_counter()
        for _ in range(updates):
            agent.learner.update(agent.buffer.sample_tensors(BATCH, agent.rng, agent.device))
        synchronize()
        return updates / (time.perf_counter() - started)

    return run


def stable_baselines(updates: int, env_id: str = "Pendulum-v1", device: str = "cpu"):
    """The same timer for stable-baselines3's SAC (default networks: two hidden layers of 256, as ours)."""
    import gymnasium as gym
    from stable_baselines3 import SAC

    model = SAC("MlpPolicy", gym.make(env_id), seed=0, device=device, learning_starts=1000, batch_size=BATCH,
                gradient_steps=0)
    model.learn(1000)
    synchronize = torch.cuda.synchronize if model.device.type == "cuda" else lambda: None

    def run() -> float:
        synchronize()
        started = time.perf_counter()
        model.train(gradient_steps=updates, batch_size=BATCH)
        synchronize()
        return updates / (time.perf_counter() - started)

    return run


def mbpo_profile(env_id: str, steps: int, overrides: dict) -> dict:
    agent = modelrl.make_agent("mbpo", env=env_id, seed=0, **overrides)
    agent.learn(total_steps=agent.config.learning_starts - 1)  # random actions: not what is profiled
    before = dict(agent.seconds, model=agent.trainer.fit_seconds)
    started = time.perf_counter()
    agent.learn(total_steps=steps)
    total = time.perf_counter() - started
    parts = {"model_fitting": agent.trainer.fit_seconds - before["model"],
             "rollouts": agent.seconds["rollout"] - before["rollout"],
             "sac_updates": agent.seconds["policy"] - before["policy"]}
    parts["env_and_acting"] = total - sum(parts.values())
    return {"env": env_id, "overrides": overrides, "steps": steps, "seconds": round(total, 1),
            "env_steps_per_second": round(steps / total, 2),
            "sac_updates_per_second": round(steps * agent.config.updates_per_step / parts["sac_updates"], 1),
            "share": {k: round(v / total, 3) for k, v in parts.items()}, "seconds_by_part": {
                k: round(v, 1) for k, v in parts.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=500, help="updates per timed round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--mbpo-steps", type=int, default=1000)
    parser.add_argument("--skip-mbpo", action="store_true")
    parser.add_argument("--mbpo-compile", action="store_true",
                        help="profile each MBPO env also with compile=True, right after the eager run")
    parser.add_argument("--compiled-bfloat16", action="store_true", help="also time compile=True in bfloat16")
    parser.add_argument("--profile-rounds", type=int, default=3,
                        help="profiled rounds of the compiled update")
    parser.add_argument("--name", type=results_name, default="sac_speed")
    parser.add_argument("--quick", action="store_true",
                        help="2 rounds of 50 updates, no MBPO, written as NAME_quick")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.updates, args.skip_mbpo, args.profile_rounds = 2, 50, True, 1
        args.name += "_quick"
    torch.set_num_threads(args.threads)
    rate_before = hidden_layer_rate()
    # both on the CPU: on a CUDA machine "auto" would time ours on the GPU against SB3 on the CPU
    runners = {"modelrl": ours(args.updates, device="cpu"),
               "stable-baselines3": stable_baselines(args.updates),
               "modelrl compiled": ours(args.updates, device="cpu", compile=True)}
    # without AVX512-BF16 or AMX, bfloat16 matmuls are emulated and tens of times slower: not timed
    native_bfloat16 = cpu_has_native_bfloat16()
    if native_bfloat16:
        runners["modelrl bfloat16"] = ours(args.updates, device="cpu", precision="bfloat16")
    if args.compiled_bfloat16 and native_bfloat16:
        runners["modelrl compiled bfloat16"] = ours(args.updates, device="cpu", precision="bfloat16",
                                                    compile=True)
    for run in runners.values():
        run()  # warm-up
    rates = {name: [] for name in runners}
    machine_rates = [rate_before]  # the matmul rate before the first round and after each one
    for round_ in range(args.rounds):
        for name, run in runners.items():
            rates[name].append(run())
        machine_rates.append(hidden_layer_rate())
        print(f"round {round_ + 1}: " + ", ".join(f"{n} {r[-1]:.0f}/s" for n, r in rates.items())
              + f"; matmuls {machine_rates[-1]:.0f} GFLOP/s", flush=True)
    median = {name: float(np.median(r)) for name, r in rates.items()}
    gflops = float(np.median(machine_rates))
    by_shape = shape_rates(native_bfloat16)
    in_update = [matmul_seconds(runners["modelrl compiled"], args.updates)
                 for _ in range(args.profile_rounds)]
    matmul_bound = 1 / float(np.median(in_update))
    print("GFLOP/s by matmul shape: " + ", ".join(f"{n} {r}" for n, r in by_shape.items()), flush=True)
    flops = update_flops(OBS_DIM, ACTION_DIM, HIDDEN, LAYERS, BATCH)
    floor_rate = gflops * 1e9 / flops
    record = {"threads": args.threads, "batch_size": BATCH, "hidden": [HIDDEN] * LAYERS,
              "cpu_capability": torch.backends.cpu.get_cpu_capability(), "native_bfloat16": native_bfloat16,
              "updates_per_round": args.updates,
              "updates_per_second": {n: [round(x, 1) for x in r] for n, r in rates.items()},
              "median_updates_per_second": {n: round(v, 1) for n, v in median.items()},
              # each round's rate over SB3's in the same round: the spread a shared machine's load leaves
              "round_ratios_over_sb3": {n: spread([round(a / b, 3) for a, b in
                                                  zip(r, rates["stable-baselines3"], strict=True)])
                                        for n, r in rates.items() if n != "stable-baselines3"},
              "matmul_gflops_between_rounds": {"values": [round(x, 1) for x in machine_rates],
                                               **spread(machine_rates)},
              "speedup": round(median["modelrl"] / median["stable-baselines3"], 2),
              # compile=True: the same float32 step, compiled into one graph
              # (the first warm-up round compiles)
              "speedup_compiled": round(median["modelrl compiled"] / median["stable-baselines3"], 2),
              # precision="bfloat16": hidden layers' matmuls in bfloat16, not a like-for-like comparison
              "speedup_bfloat16": round(median["modelrl bfloat16"] / median["stable-baselines3"], 2)
              if native_bfloat16 else None,
              "compute_floor": {
                  "mflops_per_update": round(flops / 1e6, 1), "machine_gflops": round(gflops, 1),
                  "gflops_by_matmul_shape": by_shape,
                  "updates_per_second": round(floor_rate, 1),
                  "share_of_floor": {n: round(v / floor_rate, 2) for n, v in median.items()},
                  # all of the update's matmuls at the bfloat16 rate: a looser bound than the float32 floor,
                  # since output layers and losses stay float32
                  "bfloat16_updates_per_second": round(by_shape["critics forward bfloat16"] * 1e9 / flops, 1)
                  if native_bfloat16 else None,
                  # the compiled update's own matmul time (profiled rounds): no float32 step running these
                  # matmuls as they run there can go faster
                  "matmul_ms_in_compiled_update": [round(x * 1e3, 2) for x in in_update],
                  "in_update_updates_per_second": round(matmul_bound, 1),
                  "largest_in_update_speedup_over_sb3": round(matmul_bound / median["stable-baselines3"], 2),
                  "largest_possible_speedup_over_sb3": round(floor_rate / median["stable-baselines3"], 2)}}
    print(f"speedup {record['speedup']}x, compiled {record['speedup_compiled']}x (bfloat16 "
          f"{record['speedup_bfloat16']}x); floor {floor_rate:.0f} updates/s = "
          f"{record['compute_floor']['largest_possible_speedup_over_sb3']}x SB3; "
          f"the compiled update's matmuls alone allow {matmul_bound:.0f} updates/s", flush=True)
    if not args.skip_mbpo:
        record["mbpo"] = []
        for env_id, overrides in (("InvertedPendulum-v5", {"learning_starts": 500, "updates_per_step": 10,
                                                           "target_entropy": -0.05, "epoch_length": 250}),
                                  ("Hopper-v5", {})):
            for compiled in (False, True) if args.mbpo_compile else (False,):
                entry = mbpo_profile(env_id, args.mbpo_steps,
                                     {**overrides, "device": "cpu", "compile": compiled})
                record["mbpo"].append(entry)
                print(entry, flush=True)
    write_results(args.name, record)

    fig, axes = plt.subplots(1, 2 if "mbpo" in record else 1, figsize=(10, 4), squeeze=False)
    ax = axes[0, 0]
    names = list(rates)
    ax.bar(names, [median[n] for n in names],
           color=["tab:blue", "tab:grey", "tab:green", "tab:cyan", "tab:olive"][:len(names)])
    ax.tick_params(axis="x", labelsize=7, rotation=15)
    for i, n in enumerate(names):
        ax.scatter([i] * len(rates[n]), rates[n], color="black", s=10, zorder=3)
    ax.axhline(floor_rate, color="black", linestyle="--", label=f"compute floor ({gflops:.0f} GFLOP/s)")
    ax.axhline(matmul_bound, color="tab:purple", linestyle="-.", label="matmuls as they run in the update")
    ax.axhline(2 * median["stable-baselines3"], color="tab:red", linestyle=":", label="2x stable-baselines3")
    ax.legend(fontsize=8, loc="lower right")
    ax.set(ylabel="SAC gradient updates / s", title=f"SAC updates, batch {BATCH}, {args.threads} thread "
                                                     f"(compiled {record['speedup_compiled']}x SB3)")
    if "mbpo" in record:
        ax = axes[0, 1]
        bottom = np.zeros(len(record["mbpo"]))
        for part in ("sac_updates", "model_fitting", "rollouts", "env_and_acting"):
            values = np.array([e["share"][part] for e in record["mbpo"]])
            labels = [e["env"].split("-")[0] + (" compiled" if e["overrides"]["compile"] else "")
                      for e in record["mbpo"]]
            ax.bar(labels, values, bottom=bottom, label=part)
            bottom += values
        ax.tick_params(axis="x", labelsize=7, rotation=15)
        ax.set(ylabel="share of wall time", title="MBPO: where the time goes")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{args.name}.png", dpi=110)


if __name__ == "__main__":
    main()
