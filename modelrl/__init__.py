"""modelrl: model-based reinforcement learning in PyTorch.

    import modelrl
    agent = modelrl.make_agent("dyna-q", env="DynaMaze-v0", seed=0, planning_steps=50)
    history = agent.learn(total_steps=3000, eval_every=500)
    agent.save("runs/dyna/ckpt.pt"); agent = modelrl.load("runs/dyna/ckpt.pt")
"""

from modelrl import envs  # noqa: F401  (registers modelrl's envs with Gymnasium)
from modelrl.agents import AGENTS, load, make_agent
from modelrl.envs import make_env
from modelrl.errors import ModelRLError
from modelrl.threads import set_threads

__version__ = "0.1.0"

__all__ = ["AGENTS", "ModelRLError", "__version__", "load", "make_agent", "make_env", "set_threads"]
