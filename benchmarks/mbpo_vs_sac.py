"""(a, b) MBPO against our SAC and stable-baselines3's SAC, under the shared protocol (benchmarks/common.py):
real env steps until the mean deterministic eval return (10 episodes every 250 steps for every learner, the
same reset seeds) holds at or above a threshold for two evaluations in a row.

    python benchmarks/mbpo_vs_sac.py --env InvertedPendulum-v5 --threshold 950 --mbpo-steps 4000 \\
        --sac-steps 20000 --name mbpo_vs_sac_inverted_pendulum
    python benchmarks/mbpo_vs_sac.py --env Pendulum-v1 --threshold -200 --mbpo-steps 3000 --sac-steps 8000 \\
        --set target_entropy=none --set rollout_schedule=0,0,10,10 --name mbpo_vs_sac_pendulum
    python benchmarks/mbpo_vs_sac.py --quick      # one seed, 500 steps each: a smoke test
    python benchmarks/mbpo_vs_sac.py --seeds 3 4 --name RUN_B; ... --merge RUN_A RUN_B --name COMBINED

MBPO runs the paper's InvertedPendulum settings from its released config (target entropy -0.05, 250-step
epochs, k = 1) with our default G = 20 updates per step, where that config has 10, after
`--mbpo-random-steps` random steps; `--set key=value` changes any setting. Pendulum is not among the paper's
tasks: there MBPO runs k = 10 and SAC's default target entropy, -|A|. Both SACs run their defaults.
"""

from __future__ import annotations

import argparse

from common import SB3, Ours, Protocol, study_arguments, study_main

from modelrl.config import parse_assignments

MBPO = {"target_entropy": -0.05, "epoch_length": 250}
QUICK_BUDGET = 500


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="InvertedPendulum-v5")
    parser.add_argument("--threshold", type=float, default=950)
    parser.add_argument("--eval-every", type=int, default=250,
                        help="env steps between evaluations, every learner")
    parser.add_argument("--mbpo-steps", type=int, default=4000, help="MBPO's env step budget")
    parser.add_argument("--mbpo-random-steps", type=int, default=250)
    parser.add_argument("--sac-steps", type=int, default=20000, help="both SACs' env step budget")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="MBPO config override")
    study_arguments(parser, default_name="mbpo_vs_sac_inverted_pendulum")
    args = parser.parse_args()
    mbpo_steps, sac_steps = (QUICK_BUDGET, QUICK_BUDGET) if args.quick else (args.mbpo_steps, args.sac_steps)
    mbpo = {**MBPO, "learning_starts": args.mbpo_random_steps, **parse_assignments(args.set)}
    learners = {"mbpo": Ours("mbpo", mbpo_steps, mbpo), "sac": Ours("sac", sac_steps),
                "sb3 sac": SB3("SAC", sac_steps)}
    comparisons = [("sac", "mbpo"), ("sb3 sac", "mbpo"), ("sb3 sac", "sac")]
    study_main(args, Protocol(args.env, args.threshold, args.eval_every), learners, comparisons,
               title=f"{args.env}: MBPO vs SAC", settings={"threads": 1}, log_x=True)


if __name__ == "__main__":
    main()
