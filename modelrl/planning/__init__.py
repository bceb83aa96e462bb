"""Planning with a model: pure batched optimisers over action sequences, the objectives that score them
(a learned ensemble's particles, an exact simulator), and receding-horizon control.

    from modelrl.planning import PlannerConfig, ModelObjective
    mpc = PlannerConfig(optimizer="icem", horizon=25).make_mpc(env.action_space)
    action = mpc.act(lambda actions: objective(state, actions))
"""

from modelrl.planning.config import PlannerConfig
from modelrl.planning.env_copy import EnvCopyObjective
from modelrl.planning.mpc import MPC
from modelrl.planning.optimizers import OPTIMIZERS, PlanResult, cem, icem, mppi, random_shooting
from modelrl.planning.sequences import CategoricalSequence, GaussianSequence, colored_noise
from modelrl.planning.trajectory import ModelObjective, SimulatorObjective

__all__ = ["MPC", "OPTIMIZERS", "CategoricalSequence", "EnvCopyObjective", "GaussianSequence",
           "ModelObjective", "PlanResult", "PlannerConfig", "SimulatorObjective", "cem", "colored_noise",
           "icem", "mppi", "random_shooting"]
