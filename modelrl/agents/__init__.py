"""The agent registry: `make_agent(id, env=..., seed=..., **overrides)` and `load(path)`."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import gymnasium as gym

from modelrl.agents.alphazero import AlphaZero
from modelrl.agents.base import Agent
from modelrl.agents.deep_dyna_q import DeepDynaQ
from modelrl.agents.dqn import DQN
from modelrl.agents.dreamer import Dreamer
from modelrl.agents.drq import DrQ
from modelrl.agents.dyna_q import DynaQ, DynaQPlus, PrioritizedSweeping
from modelrl.agents.mbpo import MBPO
from modelrl.agents.mpc import MPCAgent
from modelrl.agents.muzero import MuZero
from modelrl.agents.pets import PETS
from modelrl.agents.planet import PlaNet
from modelrl.agents.sac import SAC
from modelrl.agents.tabular import QLearning
from modelrl.agents.td_mpc2 import TDMPC2
from modelrl.buffers import buffers_beside, files_beside
from modelrl.checkpoint import load_checkpoint
from modelrl.config import build_config
from modelrl.errors import CheckpointError, UnknownAgentError
from modelrl.threads import choose_threads

AGENTS: dict[str, type[Agent]] = {
    cls.agent_id: cls
    for cls in (QLearning, DynaQ, DynaQPlus, PrioritizedSweeping, MPCAgent, PETS, SAC, DQN, DeepDynaQ, MBPO,
                Dreamer, DrQ, PlaNet, TDMPC2, AlphaZero, MuZero)
}


def agent_class(agent_id: str) -> type[Agent]:
    try:
        return AGENTS[agent_id]
    except KeyError:
        close = difflib.get_close_matches(agent_id, list(AGENTS), n=2)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known agents: {', '.join(AGENTS)}"
        raise UnknownAgentError(f"unknown agent '{agent_id}'{hint}") from None


def make_agent(
    agent_id: str, env: str | gym.Env, seed: int = 0, *, env_kwargs: dict | None = None, num_envs: int = 1,
    threads: int | None = None, **overrides: Any,
) -> Agent:
    """Build an agent on `env` (an env id, or a Gymnasium env instance) with its paper-default config,
    changed by `overrides`. `num_envs` copies of the env are stepped together (a vector env); `threads`
    sets torch's CPU threads for this process (default: see `modelrl.threads`).
    """
    choose_threads(threads)
    cls = agent_class(agent_id)
    config = build_config(cls.config_class, overrides, owner=f"agent '{agent_id}'")
    return cls(env, config, seed=seed, env_kwargs=env_kwargs, num_envs=num_envs)


def load(path: str | Path, *, env: gym.Env | None = None, threads: int | None = None) -> Agent:
    """Rebuild an agent from a checkpoint written by `agent.save(path)`; `env`: the env instance it was
    trained on, for an agent made with one rather than an env id."""
    choose_threads(threads)
    payload = load_checkpoint(path)
    agent_id = payload.get("agent_id")
    if agent_id not in AGENTS:
        raise CheckpointError(f"checkpoint {path} holds an unknown agent {agent_id!r}")
    with files_beside(buffers_beside(path)):  # where a run's checkpoint keeps its replay buffers
        return AGENTS[agent_id].from_checkpoint(payload, env)


__all__ = ["AGENTS", "Agent", "agent_class", "load", "make_agent"]
