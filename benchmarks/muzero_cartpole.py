"""(32c) MuZero on CartPole-v1 beside our DQN and deep Dyna-Q, under the shared protocol (common.py:
10 deterministic evaluation episodes every 1,000 steps, the same reset seeds; real env steps until the mean
holds >= 475 for two evaluations). The reference is muzero-general's CartPole (about 420 after roughly 2k
training steps); the target is fewer real env steps than DQN's median. MuZero plans every step, its
evaluations too (up to 10 x 500 searches each), so its arm costs far more wall time than the others.

    python benchmarks/muzero_cartpole.py --seeds 0 1 2
    python benchmarks/muzero_cartpole.py --quick        # one seed, 2,000 steps
"""

from __future__ import annotations

import argparse

from common import Ours, Protocol, study_arguments, study_main

from modelrl.config import parse_assignments

ENV, THRESHOLD, EVAL_EVERY = "CartPole-v1", 475.0, 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="MuZero's env step budget")
    parser.add_argument("--baseline-steps", type=int, default=50_000, help="DQN's and deep Dyna-Q's budget")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="MuZero override")
    study_arguments(parser, default_name="muzero_cartpole")
    args = parser.parse_args()
    steps, baseline = (2000, 2000) if args.quick else (args.steps, args.baseline_steps)
    muzero = {**({"simulations": 8, "learning_starts": 200} if args.quick else {}),
              **parse_assignments(args.set)}
    learners = {"muzero": Ours("muzero", steps, muzero), "dqn": Ours("dqn", baseline),
                "deep-dyna-q n=10": Ours("deep-dyna-q", baseline, {"planning_steps": 10})}
    study_main(args, Protocol(ENV, THRESHOLD, EVAL_EVERY), learners,
               [("dqn", "muzero"), ("deep-dyna-q n=10", "muzero")],
               title="CartPole-v1: MuZero vs DQN and deep Dyna-Q", settings={"threads": 1})


if __name__ == "__main__":
    main()
