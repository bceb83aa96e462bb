"""(31a) The lecture's claim, measured: does a learned terminal value let a short planning horizon do what a
long one does, for a fraction of the compute? PETS (pets_vs_sac.py's planner: iCEM 200 x 3, 10 particles, a
refit every 50 steps, 200 random steps; gamma 0.99 for every arm, so the objectives differ only by the value)
at each of `--horizons`, without and with `terminal_value=True`, under the shared protocol (10 deterministic
evaluation episodes every `--eval-every` steps, the same seeds). Reported per arm: the return curve, steps to
the threshold, and the mean seconds per planning step (training and evaluation steps alike). `--values td
critic` adds, beside the TD value, LOOP's: the critic of a SAC policy prior as the terminal value
(`policy_prior=True, value_source="critic"`, `--critic-updates` SAC updates per real step).

    python benchmarks/value_horizon.py --env Pendulum-v1 --threshold -200 --horizons 5 25 --steps 1000 \\
        --full-budget --name value_horizon_pendulum

`--full-budget` (the issue's measure: the return after a fixed step budget) runs every arm to `--steps`
rather than stopping once the threshold has held, and the summary adds each arm's return at the budget.
    python benchmarks/value_horizon.py --quick     # one seed, 200 steps, a tiny planner
"""

from __future__ import annotations

import argparse

from common import Ours, Protocol, study_arguments, study_main

from modelrl.config import parse_assignments

PETS = {"optimizer": "icem", "population": 200, "iterations": 3, "particles": 10, "train_every": 50,
        "random_steps": 200, "gamma": 0.99}
QUICK_PLANNER = {"population": 20, "iterations": 1, "particles": 2, "random_steps": 100}


VALUE_ARMS = {"td": {"terminal_value": True},
              "critic": {"terminal_value": True, "policy_prior": True, "value_source": "critic"}}


VALUE_LABELS = {None: "", "td": " + value", "critic": " + critic (LOOP)"}


def label(horizon: int, value: str | None) -> str:
    return f"H={horizon}{VALUE_LABELS[value]}"


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
    study_arguments(parser, default_name="value_horizon_pendulum")
    args = parser.parse_args()
    steps = 200 if args.quick else args.steps
    pets = {**PETS, **(QUICK_PLANNER if args.quick else {}), **parse_assignments(args.set)}
    arms = {None: {"terminal_value": False}, **{value: VALUE_ARMS[value] for value in args.values}}
    if "critic" in arms:
        arms["critic"] = {**arms["critic"], "prior_updates_per_step": args.critic_updates}
    learners = {label(horizon, value): Ours("pets", steps, {**pets, "horizon": horizon, **settings})
                for horizon in args.horizons for value, settings in arms.items()}
    longest = max(args.horizons)
    comparisons = [(label(longest, None), label(horizon, value)) for horizon in args.horizons
                   if horizon < longest for value in args.values]
    study_main(args, Protocol(args.env, args.threshold, 100 if args.quick else args.eval_every), learners,
               comparisons, title=f"{args.env}: PETS horizons with and without a learned terminal value",
               settings={"threads": 1})


if __name__ == "__main__":
    main()
