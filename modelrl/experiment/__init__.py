"""Experiments on top of the agents: runs on disk, comparisons, plots."""

from modelrl.experiment.compare import AgentSpec, compare, parse_agent_spec
from modelrl.experiment.plots import plot_runs
from modelrl.experiment.runner import resume, train

__all__ = ["AgentSpec", "compare", "parse_agent_spec", "plot_runs", "resume", "train"]
