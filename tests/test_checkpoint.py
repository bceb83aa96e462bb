import os
import pickle
from contextlib import nullcontext

import numpy as np
import pytest
import torch
from stepping import run

import modelrl
from modelrl.agents import Agent, agent_class
from modelrl.checkpoint import load_checkpoint, save_checkpoint
from modelrl.cli import main
from modelrl.envs import make_env, restore_env, save_env_state
from modelrl.errors import CheckpointError


@pytest.mark.parametrize(
    "agent_id,env,env_kwargs,seed",
    [
        ("dyna-q", "DynaMaze-v0", {}, 1),
        ("dyna-q-plus", "BlockingMaze-v0", {"change_at": 150}, 2),  # the maze's clock must survive
        ("prioritized-sweeping", "DynaMaze-v0", {}, 1),
        ("dyna-q", "FrozenLake-v1", {}, 1),  # slippery: the env's own RNG must survive
    ],
)
def test_resumed_agent_ends_with_the_same_q_table(tmp_path, agent_id, env, env_kwargs, seed):
    # Seeds with at least two whole episodes in 1,500 steps (Dyna-Q+ explores the blocked maze at length).
    overrides = {"planning_steps": 20} if agent_id == "dyna-q-plus" else {}
    whole = modelrl.make_agent(agent_id, env=env, seed=seed, env_kwargs=env_kwargs, **overrides)
    whole.learn(1500)

    first = modelrl.make_agent(agent_id, env=env, seed=seed, env_kwargs=env_kwargs, **overrides)
    first.learn(737)
    # the saved agent has something to lose: reward in its Q-table, a queue for prioritized sweeping, and an
    # episode in progress
    assert (np.abs(first.q).sum() > 0 and first.metrics().get("queue_length", 1) > 0
            and first.loop.slots[0].obs is not None)
    first.save(tmp_path / "ckpt.pt")
    resumed = modelrl.load(tmp_path / "ckpt.pt")
    assert type(resumed) is type(first) and resumed.env_steps == 737
    resumed.learn(763)

    assert len(whole.episode_lengths) >= 2
    np.testing.assert_array_equal(whole.q, resumed.q)
    assert whole.episode_lengths == resumed.episode_lengths
    assert whole.updates == resumed.updates


def test_loaded_agent_acts_identically(tmp_path):
    agent = modelrl.make_agent("dyna-q", env="GridWorld-v0", seed=0)
    agent.learn(500)
    agent.save(tmp_path / "a.pt")
    loaded = modelrl.load(tmp_path / "a.pt")
    assert loaded.config == agent.config
    assert ([loaded.act(s, deterministic=True) for s in range(25)]
            == [agent.act(s, deterministic=True) for s in range(25)])


def test_a_checkpoint_loads_only_as_its_own_agent_kind_and_whole(tmp_path):
    path = modelrl.make_agent("dyna-q", env="DynaMaze-v0").save(tmp_path / "dyna.pt")
    with pytest.raises(CheckpointError, match="checkpoint of 'dyna-q', not of 'dyna-q-plus'"):
        agent_class("dyna-q-plus").load(path)
    assert type(agent_class("dyna-q").load(path)).agent_id == "dyna-q"
    assert type(Agent.load(path)).agent_id == "dyna-q"  # the base class loads whichever kind it holds
    payload = load_checkpoint(path)
    for key in ("config", "env_id", "seed", "env_kwargs"):
        damaged = tmp_path / f"without_{key}.pt"
        save_checkpoint(damaged, {k: v for k, v in payload.items() if k != key})
        with pytest.raises(CheckpointError, match=f"lacks '{key}'"):
            modelrl.load(damaged)


def test_corrupt_and_foreign_checkpoints_raise_clear_errors(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt or not a modelrl checkpoint"):
        modelrl.load(bad)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="is not a modelrl checkpoint"):
        modelrl.load(foreign)
    with pytest.raises(CheckpointError, match="does not exist"):
        modelrl.load(tmp_path / "missing.pt")
    whole = modelrl.make_agent("q-learning", env="GridWorld-v0").save(tmp_path / "whole.pt").read_bytes()
    for kept in (len(whole) // 2, 100):  # cut off mid-file, or in its first entry
        truncated = tmp_path / f"truncated_{kept}.pt"
        truncated.write_bytes(whole[:kept])
        with pytest.raises(CheckpointError, match="truncated_.*is corrupt or not a modelrl checkpoint"):
            modelrl.load(truncated)


@pytest.mark.parametrize("failure", ["mid-write", "rename"])
def test_a_failed_write_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch, failure):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"value": 1})

    # some bytes land wherever the save writes, then it fails
    def crash_mid_write(payload, f, *args, **kwargs):
        with open(f, "wb") if isinstance(f, str | os.PathLike) else nullcontext(f) as out:
            out.write(b"half a checkpoint")
            out.flush()
        raise OSError("disk full")

    def crash(*args, **kwargs):
        raise OSError("disk full")

    if failure == "mid-write":
        monkeypatch.setattr(torch, "save", crash_mid_write)
    else:
        monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        save_checkpoint(path, {"value": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["value"] == 1
    assert os.listdir(tmp_path) == ["ckpt.pt"]  # no temporary file left behind


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_get_the_mode_the_umask_gives_new_files(tmp_path, umask):
    from modelrl.experiment.logger import MetricsLogger

    old = os.umask(umask)
    try:
        save_checkpoint(tmp_path / "ckpt.pt", {"value": 1})
        save_checkpoint(tmp_path / "ckpt.pt", {"value": 2})  # a replacement gets it too
        MetricsLogger(tmp_path, tensorboard=False).log({"env_steps": 1})
        (tmp_path / "plain").touch()
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    assert (tmp_path / "plain").stat().st_mode & 0o777 == expected
    assert (tmp_path / "ckpt.pt").stat().st_mode & 0o777 == expected
    assert (tmp_path / "metrics.csv").stat().st_mode & 0o777 == expected
    assert load_checkpoint(tmp_path / "ckpt.pt")["value"] == 2
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pt", "metrics.csv", "plain"]


def test_an_unwritable_place_names_the_file_asked_for(tmp_path):
    (tmp_path / "a_file").write_text("not a directory")
    with pytest.raises(OSError) as error:
        save_checkpoint("/proc/ckpt.pt", {"value": 1})
    assert error.value.filename == "/proc/ckpt.pt"
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "a_file" / "ckpt.pt", {"value": 1})
    assert os.listdir(tmp_path) == ["a_file"]


# --- loading a file cannot run code ---------------------------------------------------------------------
class Foreign:
    """A class from outside modelrl: harmless here, but loading must not build what it cannot vouch for."""

    def __init__(self, marker):
        self.marker = str(marker)


class RunsACommand(Foreign):
    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class Evaluates(Foreign):
    def __reduce__(self):
        return eval, (f"open({self.marker!r}, 'w').close()",)


@pytest.mark.parametrize("make, name", [(Foreign, "Foreign"), (RunsACommand, "system"),
                                        (Evaluates, "builtins.eval")])
def test_a_checkpoint_carrying_a_foreign_object_is_refused_without_running_it(tmp_path, make, name):
    marker = tmp_path / "marker"
    payload = load_checkpoint(
        modelrl.make_agent("q-learning", env="GridWorld-v0").save(tmp_path / "agent.pt"))
    payload["agent"]["extra"] = make(marker)
    evil = save_checkpoint(tmp_path / "evil.pt", payload)
    with pytest.raises(CheckpointError,
                       match=rf"evil.pt refused: it holds \S*{name}, .*could run code") as error:
        modelrl.load(evil)
    assert "\n" not in str(error.value) and not marker.exists()
    if make is not Foreign:  # the control: full unpickling would have run it
        torch.load(evil, weights_only=False)
        assert marker.exists()


def test_torchs_older_file_format_is_read_under_the_same_restrictions(tmp_path):
    marker = tmp_path / "marker"
    torch.save({"format": "modelrl-checkpoint", "x": RunsACommand(marker)}, tmp_path / "old.pt",
               _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match=r"refused: it holds \S*system, .*could run code"):
        load_checkpoint(tmp_path / "old.pt")
    assert not marker.exists()


def test_reading_a_checkpoint_leaves_torchs_allowed_globals_as_they_were(tmp_path):
    path = modelrl.make_agent("q-learning", env="GridWorld-v0").save(tmp_path / "agent.pt")
    before = torch.serialization.get_safe_globals()
    torch.serialization.add_safe_globals([np.ndarray])  # a caller's own allowance, which must survive
    try:
        load_checkpoint(path)
        assert set(torch.serialization.get_safe_globals()) == {*before, np.ndarray}
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(before)


# Every agent on a small env, with settings that let `steps` real steps fill its buffers and fit its models.
LEARNER = {"hidden_size": 16, "batch_size": 8, "learning_starts": 10}
MODEL = {"ensemble_size": 2, "num_elites": 1, "model_hidden_size": 16, "model_layers": 1,
         "model_max_epochs": 2}
PLANNER = {"population": 20, "iterations": 2, "horizon": 5, "particles": 4}
EVERY_AGENT = {  # id: (env, its arguments, agent settings, real steps)
    "q-learning": ("GridWorld-v0", {}, {}, 60),
    "dyna-q": ("FrozenLake-v1", {}, {}, 60),  # a sample model, and a slippery env's own random stream
    "dyna-q-plus": ("BlockingMaze-v0", {"change_at": 30}, {}, 60),  # the maze's clock
    "prioritized-sweeping": ("GridWorld-v0", {}, {}, 60),
    "mpc": ("Pendulum-v1", {}, PLANNER, 3),
    "pets": ("Pendulum-v1", {}, {**PLANNER, "model_hidden_size": 16, "random_steps": 10,
                                 "model_max_epochs": 2, "train_every": 5}, 17),
    "sac": ("Pendulum-v1", {}, LEARNER, 15),
    "dqn": ("CartPole-v1", {}, {**LEARNER, "train_freq": 4, "gradient_steps": 2}, 15),
    "deep-dyna-q": ("CartPole-v1", {}, {**LEARNER, "train_freq": 4, "gradient_steps": 2, "planning_steps": 2,
                                        "model_train_every": 8, **MODEL}, 15),
    "mbpo": ("Pendulum-v1", {}, {**LEARNER, "updates_per_step": 1, "model_train_every": 5,
                                 "rollouts_per_step": 2, "epoch_length": 10, **MODEL}, 15),
    "dreamer": ("Pendulum-v1", {}, {"size": "tiny", "learning_starts": 8, "batch_size": 2, "batch_length": 4,
                                    "train_ratio": 8, "horizon": 3, "device": "cpu"}, 15),
    "drq": ("pixels/Pendulum-v1", {}, {**LEARNER, "depth": 2, "features": 8, "augment_q": 1,
                                       "augment_target": 1, "device": "cpu"}, 15),
    "planet": ("Pendulum-v1", {}, {"size": "tiny", "learning_starts": 8, "batch_size": 2, "batch_length": 4,
                                   "train_ratio": 8, "horizon": 3, "population": 8, "iterations": 2,
                                   "device": "cpu"}, 15),
    "td-mpc2": ("Pendulum-v1", {}, {"size": "tiny", "seed_steps": 8, "batch_size": 4, "num_samples": 16,
                                    "num_elites": 4, "num_pi_trajs": 2, "iterations": 2,
                                    "device": "cpu"}, 15),
    "alphazero": ("TicTacToe-v0", {}, {"simulations": 4, "parallel_games": 2, "learning_starts": 4,
                                       "batch_size": 4}, 15),
    "muzero": ("CartPole-v1", {}, {"simulations": 4, "learning_starts": 8, "batch_size": 4, "hidden_size": 16,
                                   "latent_size": 8}, 15),
}
SCALARS = (type(None), bool, int, float, str, bytes)


def assert_plain(value, where="payload") -> None:
    """Only data: tensors, arrays, numbers and strings in dicts, lists and tuples; no object of any class."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert_plain(key, f"{where} key")
            assert_plain(item, f"{where}[{key!r}]")
    elif type(value) in (list, tuple):
        for i, item in enumerate(value):
            assert_plain(item, f"{where}[{i}]")
    elif isinstance(value, np.ndarray | np.generic):
        assert not value.dtype.hasobject, where
    else:
        assert type(value) in SCALARS or type(value) is torch.Tensor, f"{where} is a {type(value)}"


@pytest.mark.parametrize("agent_id", list(modelrl.AGENTS))
def test_every_agent_saves_plain_data_that_loads_without_unpickling_objects(tmp_path, agent_id):
    env, env_kwargs, settings, steps = EVERY_AGENT[agent_id]
    fresh = modelrl.make_agent(agent_id, env=env, seed=0, env_kwargs=env_kwargs, **settings)  # empty buffers
    assert_plain(load_checkpoint(fresh.save(tmp_path / "fresh.pt")))
    agent = modelrl.make_agent(agent_id, env=env, seed=0, env_kwargs=env_kwargs, **settings)
    agent.learn(steps)
    path = agent.save(tmp_path / "agent.pt")
    payload = load_checkpoint(path)  # torch's restricted unpickler
    assert_plain(payload)
    # an episode in progress went in too (alphazero's are its self-play games)
    if agent_id == "alphazero":
        assert any(payload["agent"]["histories"])
    else:
        assert payload["loop"]["env"] is not None and agent.loop.slots[0].obs is not None
    # Beside torch's own, the file names NumPy's array and scalar builders and `bytes` alone.
    names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    assert all(name.startswith("numpy.") or name == "builtins.bytes" for name in names), names
    resumed = modelrl.load(path)
    agent.learn(3)
    resumed.learn(3)
    assert (resumed.env_steps, resumed.episode_lengths) == (agent.env_steps, agent.episode_lengths)
    np.testing.assert_array_equal(np.asarray(resumed.loop.slots[0].obs), np.asarray(agent.loop.slots[0].obs))


# After 30 steps of random actions the snapshot is taken; the next 220 cover at least `ends` episode ends and
# the resets after them, from the env's own random stream: Pendulum's time limit (200 steps), the others'
# falls and holes. The blocking maze's walls change at 40 lifetime steps.
@pytest.mark.parametrize("env_id, env_kwargs, ends", [
    ("BlockingMaze-v0", {"change_at": 40}, 0), ("FrozenLake-v1", {}, 2), ("CartPole-v1", {}, 2),
    ("Pendulum-v1", {}, 1), ("ContinuousCartPole-v0", {}, 2), ("InvertedPendulum-v5", {}, 2),
    ("Hopper-v5", {}, 2)])
def test_an_env_restored_from_its_plain_snapshot_continues_exactly(tmp_path, env_id, env_kwargs, ends):
    env = make_env(env_id, **env_kwargs)
    env.reset(seed=0)
    env.action_space.seed(0)
    run(env, 30)
    save_checkpoint(tmp_path / "env.pt", {"env": save_env_state(env)})
    restored = make_env(env_id, **env_kwargs)
    assert restore_env(restored, load_checkpoint(tmp_path / "env.pt")["env"])
    ahead, behind = run(env, 220), run(restored, 220)  # actions drawn from each env's own action space
    assert sum(done for *_, done in ahead) >= ends
    for a, b in zip(ahead, behind, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


def test_an_env_holding_state_of_another_kind_restarts_its_episode_on_resume(tmp_path):
    agent = modelrl.make_agent("q-learning", env="GridWorld-v0", seed=0)
    agent.learn(7)
    assert agent.loop.slots[0].obs is not None
    agent.env.unwrapped.helper = object()  # state that no plain snapshot can hold
    assert save_env_state(agent.env) is None
    resumed = modelrl.load(agent.save(tmp_path / "agent.pt"))
    assert (resumed.env_steps == 7 and resumed.loop.slots[0].obs is None
            and resumed.loop.slots[0].episode_length == 0)
    resumed.learn(3)


def test_a_snapshot_is_not_forced_onto_an_env_of_other_layers():
    timed = make_env("GridWorld-v0", max_episode_steps=10)  # a TimeLimit the plain one lacks
    timed.reset(seed=0)
    with pytest.warns(UserWarning, match="TimeLimit.*which this one is not"):
        assert not restore_env(make_env("GridWorld-v0"), save_env_state(timed))


@pytest.mark.parametrize("env_format", ["bytes", "dict"])
def test_format_1_checkpoints_load_but_their_pickled_env_is_never_unpickled(tmp_path, monkeypatch,
                                                                            env_format):
    marker = tmp_path / "marker"
    agent = modelrl.make_agent("dyna-q", env="DynaMaze-v0", seed=0)
    agent.learn(30)
    assert agent.loop.slots[0].obs is not None
    payload = load_checkpoint(agent.save(tmp_path / "new.pt"))
    # As format 1 wrote them: the env pickled (bare, or beside MuJoCo's state), the table model as an object.
    env = pickle.dumps(agent.env)
    payload["loop"]["env"] = env if env_format == "bytes" else {"env": pickle.dumps(RunsACommand(marker)),
                                                                 "mujoco": env}
    payload["agent"]["model"] = agent.model
    save_checkpoint(tmp_path / "old.pt", {**payload, "format_version": 1})

    def refuse(*args, **kwargs):
        raise AssertionError("a checkpoint's bytes were unpickled")

    for name in ("loads", "load", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    with pytest.warns(UserWarning, match="holds its env as a pickle, which is not loaded"):
        resumed = modelrl.load(tmp_path / "old.pt")
    assert not marker.exists()
    assert (resumed.env_steps == 30 and resumed.loop.slots[0].obs is None
            and resumed.loop.slots[0].episode_length == 0)  # restarts
    np.testing.assert_array_equal(resumed.q, agent.q)
    assert resumed.model.state_dict() == agent.model.state_dict()
    resumed.learn(5)


def test_format_1_planner_and_model_fit_objects_still_load(tmp_path):
    env, _, settings, steps = EVERY_AGENT["pets"]
    agent = modelrl.make_agent("pets", env=env, seed=0, **settings)
    agent.learn(steps)
    payload = load_checkpoint(agent.save(tmp_path / "new.pt"))
    for flag, planner in agent.planners.items():  # format 1 held these objects themselves
        payload["agent"]["planners"][flag]["distribution"] = planner.distribution
    payload["agent"]["last_fit"] = agent.trainer.last_fit
    resumed = modelrl.load(save_checkpoint(tmp_path / "old.pt", {**payload, "format_version": 1}))
    assert resumed.trainer.last_fit == agent.trainer.last_fit
    for flag, planner in agent.planners.items():
        for name in ("mean", "std", "low", "high"):
            assert torch.equal(getattr(resumed.planners[flag].distribution, name),
                               getattr(planner.distribution, name))


@pytest.fixture
def small_chunks(monkeypatch):
    import modelrl.buffers

    monkeypatch.setattr(modelrl.buffers, "CHUNK_ROWS", 64)


def chunk_files(path):
    return sorted(p.relative_to(path) for p in path.rglob("*.npz"))


def test_buffers_beside_a_checkpoint_are_written_only_where_they_changed(tmp_path, small_chunks):
    config = {"learning_starts": 50, "train_freq": 25, "gradient_steps": 2, "hidden_size": 16,
              "buffer_size": 500}
    whole = modelrl.make_agent("dqn", env="CartPole-v1", seed=4, **config)
    whole.learn(900)

    agent = modelrl.make_agent("dqn", env="CartPole-v1", seed=4, **config)
    path, written = tmp_path / "last.pt", []
    for _ in range(3):
        before = {p: p.stat().st_mtime_ns for p in (tmp_path / "last.pt.buffers").rglob("*.npz")}
        agent.learn(100)
        agent.save(path, buffers="beside")
        after = {p: p.stat().st_mtime_ns for p in (tmp_path / "last.pt.buffers").rglob("*.npz")}
        written.append(sorted(p.name for p in after if before.get(p) != after[p]))
    # 100 new rows touch two or three 64-row chunks: only those are written again, the rest stay untouched
    assert [len(w) for w in written] == [2, 3, 2] and len(chunk_files(tmp_path)) == 5  # 300 rows in 5 chunks
    assert path.stat().st_size < 200_000  # the buffer is not in the checkpoint itself

    agent.learn(400)  # the 500-row ring wraps: chunks are rewritten, and the superseded files removed
    agent.save(path, buffers="beside")
    assert len(chunk_files(tmp_path)) == 8  # ceil(500 / 64)
    resumed = modelrl.load(path)
    np.testing.assert_array_equal(resumed.buffer.all()["obs"], agent.buffer.all()["obs"])
    resumed.learn(200)
    for a, b in zip(whole.learner.q.parameters(), resumed.learner.q.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # as if never stopped

    inline = modelrl.load(resumed.save(tmp_path / "whole.pt"))  # the default: one self-contained file
    assert not (tmp_path / "whole.pt.buffers").exists() and len(inline.buffer) == 500
    next(iter((tmp_path / "last.pt.buffers").rglob("*.npz"))).unlink()
    with pytest.raises(CheckpointError, match="replay buffer file .* is missing or damaged"):
        modelrl.load(path)


def test_a_checkpoint_whose_weights_do_not_fit_its_config_is_refused_in_one_line(tmp_path, capsys):
    agent = modelrl.make_agent("sac", env="Pendulum-v1", seed=0, hidden_size=16)
    payload = load_checkpoint(agent.save(tmp_path / "sac.pt"))
    payload["config"]["hidden_size"] = 32  # the weights are 16 wide
    save_checkpoint(tmp_path / "edited.pt", payload)
    with pytest.raises(CheckpointError, match="does not fit the agent its config builds"):
        modelrl.load(tmp_path / "edited.pt")
    assert main(["eval", str(tmp_path / "edited.pt"), "--episodes", "1"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("modelrl: error: ") and error.count("\n") == 1
