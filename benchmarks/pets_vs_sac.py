"""(b, c) PETS against our SAC and stable-baselines3's SAC, under the shared protocol (benchmarks/common.py):
real env steps until the mean deterministic eval return (10 separate episodes every `--eval-every` steps for
every learner, the same reset seeds) holds at or above a threshold for two evaluations in a row.

    python benchmarks/pets_vs_sac.py --env Pendulum-v1 --threshold -200 --eval-every 200 --steps 1200 \\
        --sac-steps 8000 --learned-reward --name pets_vs_sac_pendulum
    python benchmarks/pets_vs_sac.py --env InvertedPendulum-v5 --threshold 950 --eval-every 250 \\
        --steps 2000 --sac-steps 20000 --set planning_reward=shaped --set horizon=15 --set noise_beta=0.5 \\
        --set random_steps=250 --name pets_vs_sac_inverted_pendulum
    python benchmarks/pets_vs_sac.py --quick      # a smoke test: one seed, 200 steps, a tiny planner
    python benchmarks/pets_vs_sac.py --seeds 1 --only pets --name RUN_B; ... --merge RUN_A RUN_B --name ALL

PETS: iCEM 200 x 3, H = 25, 10 particles, a refit every 50 steps, 200 random steps (`--set` changes any
of it). `--learned-reward` adds PETS with `learned_reward=True`: reward and termination learned by the
model instead of the env's known functions. `--tdmpc2` adds TD-MPC2 at the paper's settings (`1m` model,
`--tdmpc2-steps` budget). `--dreamer` adds Dreamer (`size1m`, DreamerV3's proprio size, at
`--dreamer-train-ratio`, `--dreamer-steps` budget: issue 30 (e)). PETS plans every step of its evaluations
too, so each costs `episodes x episode length` planning steps: the runs stop once the threshold has held.
"""

from __future__ import annotations

import argparse

from common import SB3, Ours, Protocol, study_arguments, study_main

from modelrl.config import parse_assignments

PETS = {"optimizer": "icem", "population": 200, "iterations": 3, "horizon": 25, "particles": 10,
        "train_every": 50, "random_steps": 200}
QUICK_BUDGET = 200
# --quick's planner: 10 evaluation episodes of the real one cost about 6 minutes on one core, too much for a
# smoke test; this one plans about 30x faster, so --quick checks the pipeline, not PETS
QUICK_PLANNER = {"population": 20, "iterations": 1, "horizon": 10, "particles": 2}
QUICK_DREAMER = {"size": "tiny", "learning_starts": 100, "batch_size": 8, "batch_length": 16,
                 "train_ratio": 32}
QUICK_TDMPC2 = {"size": "tiny", "seed_steps": 100, "num_samples": 32, "num_elites": 4, "num_pi_trajs": 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--threshold", type=float, default=-200)
    parser.add_argument("--eval-every", type=int, default=200,
                        help="env steps between evaluations, every learner")
    parser.add_argument("--steps", type=int, default=1200, help="PETS's env step budget")
    parser.add_argument("--sac-steps", type=int, default=8000, help="both SACs' env step budget")
    parser.add_argument("--learned-reward", action="store_true", help="add PETS with learned_reward=True")
    parser.add_argument("--tdmpc2", action="store_true", help="add TD-MPC2")
    parser.add_argument("--tdmpc2-steps", type=int, default=3000, help="TD-MPC2's env step budget")
    parser.add_argument("--dreamer", action="store_true", help="add Dreamer")
    parser.add_argument("--dreamer-steps", type=int, default=10000, help="Dreamer's env step budget")
    parser.add_argument("--dreamer-train-ratio", type=float, default=512.0,
                        help="Dreamer's replayed steps per env step")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="PETS config override")
    parser.add_argument("--dreamer-set", action="append", default=[], metavar="KEY=VALUE",
                        help="Dreamer config override")
    study_arguments(parser, default_name="pets_vs_sac_pendulum")
    args = parser.parse_args()
    pets_steps, sac_steps = (QUICK_BUDGET, QUICK_BUDGET) if args.quick else (args.steps, args.sac_steps)
    pets = {**PETS, **(QUICK_PLANNER if args.quick else {}), **parse_assignments(args.set)}
    learners = {"pets": Ours("pets", pets_steps, pets)}
    if args.learned_reward:
        learners["pets learned reward"] = Ours("pets", pets_steps, {**pets, "learned_reward": True})
    if args.tdmpc2:
        learners["td-mpc2"] = Ours("td-mpc2", QUICK_BUDGET if args.quick else args.tdmpc2_steps,
                                   QUICK_TDMPC2 if args.quick else {})
    if args.dreamer:
        dreamer = QUICK_DREAMER if args.quick else {"size": "size1m", "train_ratio": args.dreamer_train_ratio}
        learners["dreamer"] = Ours("dreamer", QUICK_BUDGET if args.quick else args.dreamer_steps,
                                   {**dreamer, **parse_assignments(args.dreamer_set)})
    learners.update({"sac": Ours("sac", sac_steps), "sb3 sac": SB3("SAC", sac_steps)})
    model_based = [label for label in learners if label.startswith(("pets", "td-mpc2", "dreamer"))]
    comparisons = [(sac, label) for label in model_based for sac in ("sac", "sb3 sac")]
    study_main(args, Protocol(args.env, args.threshold, args.eval_every), learners, comparisons,
               title=f"{args.env}: PETS vs SAC", settings={"threads": 1}, log_x=True)


if __name__ == "__main__":
    main()
