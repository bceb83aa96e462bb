"""What predicts the world: batched ensemble networks, dynamics models and their training.

    from modelrl.models import DynamicsModel, ModelSpec, ModelTrainer, fit, Transitions
    model = DynamicsModel(ModelSpec(obs_dim=3, action_dim=1, ensemble_size=5, learn_reward=True))
"""

from modelrl.models.distributions import TwoHot, symexp, symlog
from modelrl.models.dynamics import DynamicsModel, ModelSpec, Prediction
from modelrl.models.ensemble import EnsembleLinear, EnsembleMLP
from modelrl.models.imagination import branched_rollouts, step_random_elites
from modelrl.models.linear import fit_linear, linear_model
from modelrl.models.mlp import mlp
from modelrl.models.rssm import RSSM
from modelrl.models.tabular import TabularModel
from modelrl.models.training import FitResult, ModelTrainer, Transitions, fit

__all__ = ["RSSM", "DynamicsModel", "EnsembleLinear", "EnsembleMLP", "FitResult", "ModelSpec", "ModelTrainer",
           "Prediction", "TabularModel", "Transitions", "TwoHot", "branched_rollouts", "fit", "fit_linear",
           "linear_model", "mlp", "step_random_elites", "symexp", "symlog"]
