"""Self-play actors: processes, each playing games with the learner's latest network and sending the finished
ones to it, and the training loop of an agent that learns from them.

An actor holds a player built by `make(index, network=None)`: anything with `load(state_dict)` and `play()`
(one or more finished games); given a network, the player plays with it. Two backends, one interface
(`collect`, `publish`, `close`):

- `ProcessActors`: local processes reading the learner's network from shared memory (the learner copies its
  weights there after its updates), their games sent through a queue.
- `RayActors`: Ray actors, on this machine or a cluster's others. The learner keeps one `play` call in
  flight per actor; `collect` waits for the first to return, takes every other one already back, and sends
  each of those actors its next call with the newest weights (`publish` puts them in Ray's object store
  once, however many actors read them). An actor that dies is replaced by a fresh one, so self-play survives
  a lost process or node.
"""

from __future__ import annotations

import copy
import logging
import queue as queue_module
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from modelrl.config import check_range
from modelrl.errors import ConfigError, ModelRLError
from modelrl.loop import TransitionLoop
from modelrl.threads import set_threads


def import_ray(purpose: str, alternative: str):
    """Ray, or a one-line error naming the extra that installs it, and what runs without it."""
    try:
        import ray
    except ImportError:
        raise ModelRLError(f"{purpose} runs on Ray, which is not installed: pip install 'modelrl[ray]' "
                           f"({alternative})") from None
    return ray


def init_ray(ray, address: str | None = None, num_cpus: int | None = None) -> bool:
    """Start (or join) Ray quietly unless this process is already in it; True when started here."""
    if ray.is_initialized():
        return False
    # Ray runs its workers at niceness 15 by default, so on a busy machine any other process starves them
    # (a 4-trial sweep took 415 s beside three other jobs where the process pool took 28 s). Trials and
    # self-play actors are the work itself: a Ray started here runs them at normal priority.
    system_config = None if address else {"worker_niceness": 0}
    try:
        # "local": a Ray of its own even when another runs on this machine (joining that one would take
        # none of these settings); an existing cluster is joined only when named
        ray.init(address=address or "local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                 configure_logging=True, logging_level=logging.ERROR, _system_config=system_config)
    except (ConnectionError, ValueError, RuntimeError) as error:
        where = f" at {address}" if address else ""
        raise ModelRLError(f"cannot start or reach Ray{where}: {' '.join(str(error).split())}") from None
    return True


def check_actor_settings(config) -> None:
    """The `actors` and `backend` keys an agent with self-play actors has."""
    check_range(config, "actors", 0)
    if config.backend not in ("processes", "ray"):
        raise ConfigError(f"backend must be 'processes' or 'ray', got {config.backend!r}")


def cpu_state(network: nn.Module) -> dict[str, Any]:
    return {key: value.detach().cpu() for key, value in network.state_dict().items()}


class _Player:
    """The body of one actor."""

    def __init__(self, make: Callable[..., Any], index: int):
        set_threads(1)
        self.player, self.version = make(index), -1

    def play(self, version: int, weights: dict[str, Any]) -> list:
        if version != self.version:
            self.player.load(weights)
            self.version = version
        return self.player.play()


class RayActors:
    """`count` self-play actors feeding one learner (see the module's doc). Ray is started here, with a CPU
    for each actor at least, unless this process already runs inside it (a sweep's trial, a cluster)."""

    def __init__(self, make: Callable[..., Any], count: int, network: nn.Module):
        from modelrl.threads import usable_cores

        self.ray = ray = import_ray("self-play with backend=ray", "or backend=processes for local processes")
        self.started = init_ray(ray, num_cpus=max(usable_cores(), count))
        self.make, self.remote = make, ray.remote(num_cpus=1)(_Player)
        self.version, self.weights = 0, ray.put(cpu_state(network))
        self.actors = [self.remote.remote(make, i) for i in range(count)]
        self.pending = {actor.play.remote(0, self.weights): i for i, actor in enumerate(self.actors)}
        self.replaced = 0

    def publish(self, network: nn.Module) -> None:
        self.version += 1
        self.weights = self.ray.put(cpu_state(network))

    def collect(self, timeout: float = 120.0) -> list:
        """At least one finished game (waiting for it), and every other one already back."""
        ray, games = self.ray, []
        while not games:
            ready, rest = ray.wait(list(self.pending), num_returns=1, timeout=timeout)
            if not ready:
                raise RuntimeError(f"no self-play game arrived from {len(self.actors)} Ray actors in "
                                   f"{timeout:.0f} s")
            ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0] if rest else []
            for ref in ready:
                index = self.pending.pop(ref)
                try:
                    games += ray.get(ref)
                except ray.exceptions.RayActorError:  # its process or node died: a fresh actor plays on
                    self.actors[index] = self.remote.remote(self.make, index)
                    self.replaced += 1
                self.pending[self.actors[index].play.remote(self.version, self.weights)] = index
        return games

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        if self.started:
            self.ray.shutdown()


def _process_actor(make: Callable[..., Any], index: int, network: nn.Module, queue, stop) -> None:
    """A self-play process: plays with the learner's network (in shared memory, updated in place by the
    learner) and sends every finished game to `queue` until `stop` is set."""
    set_threads(1)
    player = make(index, network=network.eval())
    while not stop.is_set():
        for game in player.play():
            queue.put(game)


class ProcessActors:
    """`count` local self-play processes feeding one learner (see the module's doc)."""

    def __init__(self, make: Callable[..., Any], count: int, network: nn.Module):
        context = torch.multiprocessing.get_context("spawn")
        self.shared = copy.deepcopy(network).cpu().share_memory()
        self.queue, self.stop = context.Queue(maxsize=1000), context.Event()
        self.processes = [context.Process(target=_process_actor, daemon=True,
                                          args=(make, i, self.shared, self.queue, self.stop))
                          for i in range(count)]
        for process in self.processes:
            process.start()

    def collect(self, timeout: float = 120.0) -> list:
        """At least one finished game (waiting for it), and every other one already sent."""
        try:
            games = [self.queue.get(timeout=timeout)]
        except queue_module.Empty:
            dead = [p.exitcode for p in self.processes if not p.is_alive()]
            raise RuntimeError(f"no self-play game arrived in {timeout:.0f} s"
                               + (f"; workers exited with codes {dead}" if dead else "")) from None
        while True:
            try:
                games.append(self.queue.get_nowait())
            except queue_module.Empty:
                return games

    @torch.no_grad()
    def publish(self, network: nn.Module) -> None:
        # the state dict's tensors are the modules' own: weights and batch-norm statistics alike
        for shared, own in zip(self.shared.state_dict().values(), network.state_dict().values(), strict=True):
            shared.copy_(own)

    def close(self) -> None:
        self.stop.set()
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
        self.queue.cancel_join_thread()


def start_actors(make: Callable[..., Any], count: int, network: nn.Module, backend: str
                 ) -> ProcessActors | RayActors:
    return (RayActors if backend == "ray" else ProcessActors)(make, count, network)


class ActorLoop(TransitionLoop):
    """The training loop of an agent whose config has `actors` and `backend`. With actors, they play for the
    length of each `run` (players from `agent.player_factory()`) and a training step is `agent.actor_step()`:
    the moves and games they finished since, learned from. Without, `own_step`: the agent's own env steps
    (or a subclass's own self-play). `agent.game_stats(game)` gives a finished game's return and length."""

    def run(self, *args, **kwargs) -> list[dict]:
        agent, config = self.agent, self.agent.config
        if config.actors:
            agent.workers = start_actors(agent.player_factory(), config.actors, agent.network, config.backend)
        try:
            return super().run(*args, **kwargs)
        finally:
            if agent.workers is not None:
                agent.workers.close()
                agent.workers = None

    def step(self) -> None:
        if self.agent.workers is None:
            return self.own_step()
        moves, finished = self.agent.actor_step()
        self.count_games(moves, finished)

    def own_step(self) -> None:
        super().step()

    def count_games(self, moves: int, finished: list[dict]) -> None:
        self.env_steps += moves
        self.episodes += len(finished)
        for game in finished:
            episode_return, length = self.agent.game_stats(game)
            self.episode_returns.append(episode_return)
            self.episode_lengths.append(length)
