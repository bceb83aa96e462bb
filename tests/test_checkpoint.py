import os
import pickle
from contextlib import nullcontext

import numpy as np
import pytest
import torch

import modelrl
from modelrl.agents import agent_class
from modelrl.checkpoint import load_checkpoint, save_checkpoint
from modelrl.errors import CheckpointError


@pytest.mark.parametrize(
    "agent_id,env,env_kwargs",
    [
        ("dyna-q", "DynaMaze-v0", {}),
        ("dyna-q-plus", "BlockingMaze-v0", {"change_at": 150}),  # the maze's clock must survive
        ("prioritized-sweeping", "DynaMaze-v0", {}),
        ("dyna-q", "FrozenLake-v1", {}),  # slippery: the env's own RNG must survive
    ],
)
def test_resumed_agent_ends_with_the_same_q_table(tmp_path, agent_id, env, env_kwargs):
    whole = modelrl.make_agent(agent_id, env=env, seed=1, env_kwargs=env_kwargs)
    whole.learn(1500)

    first = modelrl.make_agent(agent_id, env=env, seed=1, env_kwargs=env_kwargs)
    first.learn(737)
    # the saved agent has something to lose: reward in its Q-table, a queue for prioritized sweeping, and an
    # episode in progress
    assert np.abs(first.q).sum() > 0 and first.metrics().get("queue_length", 1) > 0 and first._obs is not None
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
    assert [loaded.act(s, deterministic=True) for s in range(25)] == [agent.act(s, deterministic=True) for s in range(25)]


def test_a_checkpoint_loads_only_as_its_own_agent_kind_and_whole(tmp_path):
    path = modelrl.make_agent("dyna-q", env="DynaMaze-v0").save(tmp_path / "dyna.pt")
    with pytest.raises(CheckpointError, match="checkpoint of 'dyna-q', not of 'dyna-q-plus'"):
        agent_class("dyna-q-plus").load(path)
    assert type(agent_class("dyna-q").load(path)).agent_id == "dyna-q"
    payload = load_checkpoint(path)
    for key in ("config", "env_id", "seed", "env_kwargs"):
        damaged = tmp_path / f"without_{key}.pt"
        save_checkpoint(damaged, {k: v for k, v in payload.items() if k != key})
        with pytest.raises(CheckpointError, match=f"lacks '{key}'"):
            modelrl.load(damaged)


def test_checkpoints_holding_the_env_as_bare_bytes_still_load(tmp_path):
    """Before MuJoCo state was saved beside it, a checkpoint's env was one pickle."""
    agent = modelrl.make_agent("dyna-q", env="DynaMaze-v0", seed=0)
    agent.learn(30)
    payload = load_checkpoint(agent.save(tmp_path / "new.pt"))
    payload["loop"]["env"] = pickle.dumps(agent.env)
    save_checkpoint(tmp_path / "old.pt", payload)
    assert modelrl.load(tmp_path / "old.pt").env.unwrapped.position == agent.env.unwrapped.position


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
    truncated = tmp_path / "truncated.pt"
    agent = modelrl.make_agent("q-learning", env="GridWorld-v0")
    agent.save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:100])
    with pytest.raises(CheckpointError):
        modelrl.load(truncated)


@pytest.mark.parametrize("failure", ["mid-write", "rename"])
def test_a_failed_write_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch, failure):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"value": 1})

    def crash_mid_write(payload, f, *args, **kwargs):  # some bytes land wherever the save writes, then it fails
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
