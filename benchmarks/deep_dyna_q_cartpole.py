"""(d) Deep Dyna-Q against DQN on CartPole-v1, under the shared protocol (benchmarks/common.py): real env
steps until the mean deterministic eval return (10 episodes every 1,000 steps, the same reset seeds for every
learner) holds >= 475 for two evaluations in a row; 50k-step budget.

    python benchmarks/deep_dyna_q_cartpole.py                    # seeds 0 1 2, all learners, one process
    python benchmarks/deep_dyna_q_cartpole.py --quick            # one seed, 3k steps: a smoke test
    python benchmarks/deep_dyna_q_cartpole.py --n 5 10 --seeds 3 4 --name RUN_B
    python benchmarks/deep_dyna_q_cartpole.py --merge RUN_A RUN_B --name COMBINED

Learners: our `dqn` (rl-baselines3-zoo's tuned CartPole values, double Q), `deep-dyna-q` with n planning
steps (default n = 10), our `dqn` given as many gradient updates per real step as deep-dyna-q n = 10 makes
("dqn same updates"), and stable-baselines3's DQN with the zoo values. Deep-dyna-q's burst (every
train_freq = 256 real steps) is gradient_steps = 128 real updates, each followed by n imagined ones:
128 * (1 + n) updates, 1,408 for n = 10, against DQN's 128; the matched DQN runs gradient_steps = 1,408 on
real batches, with everything else (target copy every 10 env steps, exploration) unchanged.
"""

from __future__ import annotations

import argparse

from common import SB3, Ours, Protocol, study_arguments, study_main
from sb3_reference import ZOO_DQN_CARTPOLE

from modelrl.agents.dqn import DQNConfig

ENV, THRESHOLD, EVAL_EVERY, BUDGET = "CartPole-v1", 475.0, 1000, 50_000
QUICK_BUDGET = 3000


def updates_per_burst(planning_steps: int) -> int:
    """Gradient updates deep-dyna-q makes per burst: each real update is followed by n imagined ones."""
    return DQNConfig.gradient_steps * (1 + planning_steps)


def learners(n_values: list[int], budget: int) -> dict:
    arms = {"dqn": Ours("dqn", budget)}
    arms.update({f"deep-dyna-q n={n}": Ours("deep-dyna-q", budget, {"planning_steps": n}) for n in n_values})
    if 10 in n_values:
        arms["dqn same updates"] = Ours("dqn", budget, {"gradient_steps": updates_per_burst(10)})
    arms["sb3 dqn"] = SB3("DQN", budget, ZOO_DQN_CARTPOLE)
    return arms


def comparisons(n_values: list[int]) -> list[tuple[str, str]]:
    """(baseline, ours) pairs whose ratio of medians is reported."""
    pairs = [("sb3 dqn", "dqn")]
    for n in n_values:
        pairs += [("dqn", f"deep-dyna-q n={n}"), ("sb3 dqn", f"deep-dyna-q n={n}")]
    if 10 in n_values:
        pairs.append(("dqn same updates", "deep-dyna-q n=10"))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="*", default=[10], help="deep-dyna-q planning steps to run")
    study_arguments(parser, default_name="deep_dyna_q_cartpole_protocol")
    args = parser.parse_args()
    # --quick keeps the 50k schedules' shape out of reach, so it only smoke-tests the pipeline
    budget = QUICK_BUDGET if args.quick else BUDGET
    protocol = Protocol(ENV, THRESHOLD, EVAL_EVERY)
    study_main(args, protocol, learners(args.n, budget), comparisons(args.n),
               title="CartPole-v1: deep Dyna-Q vs DQN", settings={"threads": 1})


if __name__ == "__main__":
    main()
