"""(31a) The lecture's claim, measured: does a learned terminal value let a short planning horizon do what a
long one does, for a fraction of the compute? PETS (pets_vs_sac.py's planner: iCEM 200 x 3, 10 particles, a
refit every 50 steps, 200 random steps; gamma 0.99 for every arm, so the objectives differ only by the value)
at each of `--horizons`, without and with `terminal_value=True`, under the shared protocol (10 deterministic
evaluation episodes every `--eval-every` steps, the same seeds). Reported per arm: the return curve, steps to
the threshold, and the mean seconds per planning step (training and evaluation steps alike). `--values td
critic` adds, beside the TD value, LOOP's: the critic of a SAC policy prior as the terminal value
(`policy_prior=True, value_source="critic"`, `--critic-updates` SAC updates per real step).
`--value-population N` adds each value arm again planning with N sequences a population instead of 200
(a short horizon is a smaller search: the compute the value saves can be taken in samples as well as steps).

    python benchmarks/value_horizon.py --env Pendulum-v1 --threshold -200 --horizons 5 25 --steps 1000 \\
        --full-budget --name value_horizon_pendulum

`--full-budget` (the issue's measure: the return after a fixed step budget) runs every arm to `--steps`
rather than stopping once the threshold has held, and the summary adds each arm's return at the budget.
    python benchmarks/value_horizon.py --quick     # one seed, 200 steps, a tiny planner

`--timing` measures only the planning compute, on a quiet machine: every arm trained just past its first
model fit (and value updates), then `--timing-steps` planning steps each, the arms in alternating rounds with
the machine's matmul rate between rounds; seconds per step and each arm's share of the longest horizon's.
    python benchmarks/value_horizon.py --timing --horizons 3 5 10 25 --values td critic
(`--only` times just the arms it names, beside the longest horizon without a value.)
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import matplotlib.pyplot as plt
import numpy as np
from common import (
    RESULTS,
    Ours,
    Protocol,
    matmul_rate,
    only_arms,
    result_name,
    spread,
    study_arguments,
    study_main,
    write_results,
)

import modelrl
from modelrl.config import parse_assignments

PETS = {"optimizer": "icem", "population": 200, "iterations": 3, "particles": 10, "train_every": 50,
        "random_steps": 200, "gamma": 0.99}
# the matmul rate --timing reports, in the planner's shape: 5 members, 200 x 10 rollouts, 200 hidden units
RATE_SHAPE = (5, 2000, 200, 200)
QUICK_PLANNER = {"population": 20, "iterations": 1, "particles": 2, "random_steps": 100}


VALUE_ARMS = {"td": {"terminal_value": True},
              "critic": {"terminal_value": True, "policy_prior": True, "value_source": "critic"}}


VALUE_LABELS = {None: "", "td": " + value", "critic": " + critic (LOOP)"}


def label(horizon: int, value: str | None) -> str:
    return f"H={horizon}{VALUE_LABELS[value]}"


def planning_timing(args, arms: dict[str, dict]) -> None:
    """Seconds per planning step of each arm, alternating rounds (see the module's doc)."""
    agents = {}
    for name, config in arms.items():
        agent = modelrl.make_agent("pets", env=args.env, seed=args.seeds[0], threads=1, **config)
        # past the first model fit (and the value's first updates): the planner runs on a trained model
        agent.learn(total_steps=config["random_steps"] + config["train_every"])
        agents[name] = agent
        print(f"{name}: trained to {agent.env_steps} steps", flush=True)
    env = gym.make(args.env)
    observation, _ = env.reset(seed=args.seeds[0])
    observations = []
    for _ in range(args.timing_steps):
        observations.append(observation)
        observation, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            observation, _ = env.reset()
    seconds, rates = {name: [] for name in agents}, []
    for round_ in range(args.rounds):
        for name, agent in agents.items():
            started = time.perf_counter()
            for observation in observations:
                agent.act(observation, deterministic=True)
            seconds[name].append((time.perf_counter() - started) / len(observations))
        rates.append(matmul_rate(*RATE_SHAPE))
        print(f"round {round_}: " + ", ".join(f"{n} {s[-1]:.4f} s" for n, s in seconds.items()), flush=True)
    longest = label(max(args.horizons), None)
    per_round = {name: [s / b for s, b in zip(times, seconds[longest])] for name, times in seconds.items()}
    record = {"env": args.env, "arms": arms, "rounds": args.rounds, "steps_per_round": args.timing_steps,
              "matmul_gflops": spread(rates), "seconds_per_step": {n: spread(s) for n, s in seconds.items()},
              "share_of_longest": {n: spread(s) for n, s in per_round.items()}, "longest": longest}
    name = result_name(args, "_timing")
    write_results(name, record)
    names = list(seconds)
    fig, ax = plt.subplots(figsize=(8, 3.8))
    ax.bar(names, [np.median(seconds[n]) for n in names], color=["C1" if "+" in n else "C0" for n in names])
    ax.set(ylabel="seconds per planning step (median of rounds)",
           title=f"{args.env}: planning compute per arm")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=110)
    for n in names:
        print(f"{n:>26}: {np.median(seconds[n]):.4f} s a step, {np.median(per_round[n]):.3f} of {longest}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--threshold", type=float, default=-200)
    parser.add_argument("--eval-every", type=int, default=200, help="env steps between evaluations")
    parser.add_argument("--steps", type=int, default=1000, help="every arm's env step budget")
    parser.add_argument("--horizons", type=int, nargs="+", default=[3, 5, 10, 25])
    parser.add_argument("--values", nargs="+", choices=sorted(VALUE_ARMS), default=["td"],
                        help="the terminal values beside no value: td (V by TD(0)), critic (LOOP's)")
    parser.add_argument("--critic-updates", type=int, default=10,
                        help="the critic arms' SAC updates per real step")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="PETS config override, every arm")
    parser.add_argument("--value-population", type=int, metavar="N",
                        help="also run every value arm planning with N sequences a population (a short "
                             "horizon searches fewer dimensions, so fewer samples may do)")
    parser.add_argument("--timing", action="store_true", help="time the arms' planning steps only")
    parser.add_argument("--timing-steps", type=int, default=30, help="planning steps per arm and round")
    parser.add_argument("--rounds", type=int, default=3, help="--timing's alternating rounds")
    study_arguments(parser, default_name="value_horizon_pendulum")
    args = parser.parse_args()
    if args.value_population is not None and args.value_population < 2:
        parser.error(f"--value-population must be at least 2, got {args.value_population}")
    if args.timing and min(args.timing_steps, args.rounds) < 1:
        parser.error(f"--timing-steps and --rounds must be >= 1, got {args.timing_steps} and {args.rounds}")
    steps = 200 if args.quick else args.steps
    pets = {**PETS, **(QUICK_PLANNER if args.quick else {}), **parse_assignments(args.set)}
    arms = {None: {"terminal_value": False}, **{value: VALUE_ARMS[value] for value in args.values}}
    if "critic" in arms:
        arms["critic"] = {**arms["critic"], "prior_updates_per_step": args.critic_updates}
    longest = max(args.horizons)
    learners, valued = {}, []  # valued: the arms with a value below the longest horizon, compared with it
    for horizon in args.horizons:
        for value, settings in arms.items():
            config = {**pets, "horizon": horizon, **settings}
            variants = {label(horizon, value): config}
            if value is not None and args.value_population:
                variants[f"{label(horizon, value)}, population {args.value_population}"] = {
                    **config, "population": args.value_population}
            learners.update({name: Ours("pets", steps, variant) for name, variant in variants.items()})
            if value is not None and horizon < longest:
                valued += list(variants)
    if args.timing:
        reference = label(longest, None)  # every share is of its planning time
        timed = only_arms(learners, args.only and [*args.only, reference])
        planning_timing(args, {name: learner.overrides for name, learner in timed.items()})
        return
    comparisons = [(label(longest, None), name) for name in valued]
    study_main(args, Protocol(args.env, args.threshold, 100 if args.quick else args.eval_every), learners,
               comparisons, title=f"{args.env}: PETS horizons with and without a learned terminal value",
               settings={"threads": 1})


if __name__ == "__main__":
    main()
