import json
import subprocess
import sys

import pytest
import yaml

import modelrl
from modelrl.cli import main


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "modelrl.cli", *args], capture_output=True, text=True,
                          cwd=cwd, check=False)


@pytest.mark.parametrize(
    "args,message",
    [
        (["train", "dyna-q", "--env", "NoSuchEnv-v0", "--steps", "10"], "unknown environment 'NoSuchEnv-v0'"),
        (["train", "dyna-q", "--env", "CartPole-v1", "--steps", "10"], "needs a Discrete observation space"),
        (["train", "dyna-q", "--env", "DynaMaze-v0", "--set", "plannig_steps=5"],
         "unknown config key 'plannig_steps'"),
        (["train", "dyna-qq", "--env", "DynaMaze-v0"], "unknown agent 'dyna-qq'; did you mean dyna-q"),
        (["eval", "corrupt.pt"], "corrupt or not a modelrl checkpoint"),
    ],
)
def test_bad_input_prints_one_line_and_exits_nonzero(tmp_path, args, message):
    (tmp_path / "corrupt.pt").write_bytes(b"\x00garbage")
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("modelrl: error:") and message in lines[0], result.stderr
    assert not (tmp_path / "runs").exists()  # nothing half-made is left behind


def test_train_eval_resume_plot(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "dyna-q", "--env", "GridWorld-v0", "--steps", "300", "--seed", "2", "--set",
                 "planning_steps=20", "--eval-every", "100", "--eval-episodes", "1", "--run-dir", str(run),
                 "--no-progress"]) == 0
    assert f"run: {run}" in capsys.readouterr().out
    assert main(["train", "--resume", str(run), "--steps", "600", "--no-progress"]) == 0
    assert main(["eval", str(run), "--episodes", "2", "--render"]) == 0
    out = capsys.readouterr().out
    assert "after 600 env steps: eval return 93" in out and "A" in out
    assert main(["plot", str(run), "--out", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").stat().st_size > 0


def test_config_file_and_env_args(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("planning_steps: 3\nlr: 0.5\n")
    run = tmp_path / "run"
    assert main(["train", "dyna-q", "--env", "DynaMaze-v0", "--config", str(config), "--env-arg", "scale=2",
                 "--steps", "50", "--run-dir", str(run), "--no-progress", "--eval-episodes", "0"]) == 0
    text = (run / "config.yaml").read_text()
    assert "planning_steps: 3" in text and "scale: 2" in text
    trained = modelrl.load(run / "checkpoints" / "last.pt")  # the agent itself ran on the larger maze
    assert trained.env_kwargs == {"scale": 2} and trained.env.observation_space.n == 4 * 54
    assert trained.config.planning_steps == 3 and trained.config.lr == 0.5
    config.write_text("- not a mapping\n")
    assert main(["train", "dyna-q", "--env", "DynaMaze-v0", "--config", str(config)]) == 2
    assert "must hold a mapping" in capsys.readouterr().err


def test_compare_and_list(tmp_path, capsys):
    assert main(["compare", "--env", "GridWorld-v0", "--agents", "q-learning", "dyna-q:planning_steps=10",
                 "--seeds", "0", "1", "--steps", "200", "--eval-episodes", "1", "--jobs", "2",
                 "--out", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "| dyna-q planning_steps=10 |" in out and (tmp_path / "compare.png").exists()
    for seed in (0, 1):  # each run trained with its spec's config
        run = tmp_path / "runs" / f"dyna-q_planning_steps_10-s{seed}"
        assert yaml.safe_load((run / "config.yaml").read_text())["config"]["planning_steps"] == 10
        assert modelrl.load(run / "checkpoints" / "last.pt").config.planning_steps == 10
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert "prioritized-sweeping" in listed and "dreamer" in listed
    assert "dmc/cartpole-swingup-v0" in listed and "pixels/<id>" in listed


def cli(argv: list) -> int:
    return main([str(arg) for arg in argv])


def one_line_error(capsys, argv: list[str], warnings: bool = False) -> str:
    """Run the CLI in-process: it must exit 2 with exactly one `modelrl: error:` line on stderr, after
    one-line warnings if `warnings`."""
    capsys.readouterr()
    assert cli(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    while warnings and lines and lines[0].startswith("modelrl: warning"):
        lines.pop(0)
    assert len(lines) == 1 and lines[0].startswith("modelrl: error: "), lines
    return lines[0]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("small") / "run"
    assert cli(["train", "q-learning", "--env", "GridWorld-v0", "--steps", "100", "--eval-every", "50",
                "--eval-episodes", "1", "--run-dir", str(run), "--no-progress"]) == 0
    return run


@pytest.mark.parametrize(
    "extra,flag",
    [
        (["dyna-q"], "AGENT"),
        (["--env", "DynaMaze-v0"], "--env"),
        (["--set", "lr=0.9"], "--set"),
        (["--config", "c.yaml"], "--config"),
        (["--seed", "7"], "--seed"),
        (["--seed", "0"], "--seed"),  # even the default: it is still not what the run uses
        (["--env-arg", "scale=2"], "--env-arg"),
        (["--eval-every", "1"], "--eval-every"),
        (["--eval-episodes", "0"], "--eval-episodes"),
        (["--run-dir", "elsewhere"], "--run-dir"),
        (["--runs-root", "elsewhere"], "--runs-root"),
    ],
)
def test_resume_refuses_settings_it_would_ignore(small_run, capsys, extra, flag):
    before = (small_run / "config.yaml").read_text(), (small_run / "metrics.csv").read_text()
    line = one_line_error(capsys, ["train", "--resume", small_run, "--steps", "150", *extra, "--no-progress"])
    assert line.endswith(f"--threads, --import and --no-progress go with it, not {flag}")
    assert ((small_run / "config.yaml").read_text(), (small_run / "metrics.csv").read_text()) == before


def test_resume_refuses_another_runs_checkpoint(tmp_path, capsys):
    common = ["--steps", "50", "--eval-every", "50", "--eval-episodes", "0", "--no-progress"]
    assert cli(["train", "q-learning", "--env", "GridWorld-v0", "--run-dir", tmp_path / "q", *common]) == 0
    assert cli(["train", "dyna-q", "--env", "DynaMaze-v0", "--run-dir", tmp_path / "d", *common]) == 0
    theirs = (tmp_path / "d" / "checkpoints" / "last.pt").read_bytes()
    (tmp_path / "q" / "checkpoints" / "last.pt").write_bytes(theirs)
    metrics = (tmp_path / "q" / "metrics.csv").read_text()
    line = one_line_error(capsys, ["train", "--resume", tmp_path / "q", "--steps", "100", "--no-progress"])
    assert "is not this run's: its agent differs: 'dyna-q' (config.yaml: 'q-learning')" in line
    assert (tmp_path / "q" / "metrics.csv").read_text() == metrics


@pytest.mark.parametrize(
    "args,message",
    [
        (["--steps", "0"], "--steps must be >= 1, got 0"),
        (["--steps", "-5"], "--steps must be >= 1, got -5"),
        (["--eval-every", "0"], "--eval-every must be >= 1, got 0"),
        (["--eval-every", "-1"], "--eval-every must be >= 1, got -1"),
        (["--eval-episodes", "-2"], "--eval-episodes must be >= 0, got -2"),
        (["--seed", "-1"], "--seed must be a whole number from 0 to 4294967295 (2**32 - 1), got -1"),
        (["--seed", "99999999999999999999"], "--seed must be a whole number from 0 to 4294967295"),
        (["--threads", "0"], "--threads must be >= 1, got 0"),
        (["--env-arg", "scale=nan"], "--env-arg scale=nan: must be a finite number"),
        (["--set", "lr=inf"], "config key 'lr' must be a finite number, got 'inf'"),
        (["--set", "lr=-inf"], "config key 'lr' must be a finite number, got '-inf'"),
        (["--set", "epsilon=nan"], "config key 'epsilon' must be a finite number, got 'nan'"),
        (["--set", "gamma=1e400"], "config key 'gamma' must be a finite number, got '1e400'"),
        (["--config", "{tmp}/inf.yaml"], "config key 'lr' must be a finite number, got inf"),
        (["--config", "{tmp}"], "is a directory, not a YAML file"),
        (["--config", "{tmp}/latin1.yaml"], "latin1.yaml is not UTF-8 text"),
        (["--env-arg", "scale=[1"], "--env-arg scale=[1: not a valid YAML value"),
        (["--runs-root", "{tmp}/a_file"], "a_file/q-learning-modelrl_GridWorld-v0-s0-"),
        (["--runs-root", "/proc/runs"], "modelrl: error: /proc/runs: "),
        (["--run-dir", "{tmp}/a_file/run"], "a_file/run: Not a directory"),
    ],
)
def test_bad_train_input_fails_before_anything_is_written(tmp_path, capsys, args, message):
    (tmp_path / "inf.yaml").write_text("lr: .inf\n")
    (tmp_path / "latin1.yaml").write_bytes("lr: 0.5 # café\n".encode("latin-1"))
    (tmp_path / "a_file").write_text("not a directory")
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    line = one_line_error(capsys, ["train", "q-learning", "--env", "GridWorld-v0",
                                   "--runs-root", tmp_path / "runs", *args, "--no-progress"])
    assert message in line
    assert not (tmp_path / "runs").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "inf.yaml", "latin1.yaml"]


@pytest.mark.parametrize(
    "agent,env,args,message",
    [
        ("prioritized-sweeping", "GridWorld-v0", ["--set", "theta=nan"], "key 'theta' must be a finite"),
        ("sac", "Pendulum-v1", ["--set", "target_entropy=nan"], "key 'target_entropy' must be a finite"),
        ("sac", "Pendulum-v1", ["--set", "device=mps"], "unknown device 'mps'; use auto, cpu, cuda or"),
        ("sac", "Pendulum-v1", ["--set", "device=meta"], "unknown device 'meta'; use auto, cpu, cuda or"),
        ("dqn", "CartPole-v1", ["--set", "device=cuda:x"], "unknown device 'cuda:x'"),
    ],
)
def test_bad_agent_settings_give_one_line(tmp_path, capsys, agent, env, args, message):
    line = one_line_error(capsys, ["train", agent, "--env", env, "--runs-root", tmp_path / "runs", *args])
    assert message in line
    assert not (tmp_path / "runs").exists()


def test_cuda_devices_are_checked(monkeypatch):
    import torch

    from modelrl.device import resolve_device
    from modelrl.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ConfigError, match="'cuda:1' asked for, but this machine has 1 CUDA device"):
        resolve_device("cuda:1")
    assert resolve_device("cpu") == torch.device("cpu")


def test_infinity_only_where_a_field_opts_in():
    import dataclasses

    from modelrl.config import build_config
    from modelrl.errors import ConfigError

    @dataclasses.dataclass
    class Config:
        clip: float = dataclasses.field(default=1.0, metadata={"allow_inf": True})
        lr: float | None = None

    assert build_config(Config, {"clip": "inf"}).clip == float("inf")
    with pytest.raises(ConfigError, match="'clip' must be a finite number"):
        build_config(Config, {"clip": "nan"})
    with pytest.raises(ConfigError, match="'lr' must be a finite number"):
        build_config(Config, {"lr": "inf"})
    assert build_config(Config, {"lr": "none"}).lr is None


def test_a_run_that_fails_before_its_first_checkpoint_is_removed(tmp_path, capsys):
    # test/NaNReward-v0 (conftest.py) makes the Q-table NaN at once: the first evaluation finds it.
    args = ["train", "q-learning", "--env", "test/NaNReward-v0", "--steps", "20", "--eval-every", "10",
            "--no-progress"]
    # Gymnasium's env checker warns of the NaN reward first, in one line.
    line = one_line_error(capsys, [*args, "--runs-root", tmp_path / "runs"], warnings=True)
    assert "q-learning diverged" in line
    assert not (tmp_path / "runs").exists()
    kept = tmp_path / "mine"  # a directory that was there before keeps what it held, and only that
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    assert "q-learning diverged" in one_line_error(capsys, [*args, "--run-dir", kept], warnings=True)
    assert [p.name for p in kept.iterdir()] == ["notes.txt"]
    # ... so the same directory takes a good run afterwards
    assert cli(["train", "q-learning", "--env", "GridWorld-v0", "--steps", "20", "--run-dir", kept,
                "--no-progress"]) == 0


def test_a_run_killed_before_its_first_checkpoint_says_what_to_do(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli(["train", "q-learning", "--env", "GridWorld-v0", "--steps", "20", "--run-dir", run,
                "--no-progress"]) == 0
    (run / "checkpoints" / "last.pt").unlink()  # as if killed before it was first written
    args = ["train", "q-learning", "--env", "GridWorld-v0", "--steps", "20", "--run-dir", run]
    line = one_line_error(capsys, args)
    assert "holds a run with no checkpoint (still starting, or stopped before its first one)" in line
    assert "or stopped before its first one; then delete it and train again" in one_line_error(
        capsys, ["train", "--resume", run])


@pytest.fixture(scope="module")
def cartpole_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("dqn") / "dqn.pt"
    modelrl.make_agent("dqn", env="CartPole-v1").save(path)
    return path


@pytest.mark.parametrize(
    "args,message",
    [
        (["--render"], "which CartPole-v1 lacks; its render modes: human, rgb_array"),
        (["--episodes", "0"], "--episodes must be >= 1, got 0"),
        (["--episodes", "-3"], "--episodes must be >= 1, got -3"),
        (["--max-steps", "0"], "--max-steps must be >= 1, got 0"),
    ],
)
def test_bad_eval_input(cartpole_checkpoint, capsys, args, message):
    assert one_line_error(capsys, ["eval", cartpole_checkpoint, *args]).endswith(message)


def test_plot_groups_only_seeds_of_one_experiment(tmp_path, capsys):
    common = ["--steps", "100", "--eval-episodes", "1", "--no-progress"]
    runs = {
        "grid-s0": ["dyna-q", "--env", "GridWorld-v0", "--set", "planning_steps=5", "--eval-every", "50"],
        "grid-s1": ["dyna-q", "--env", "GridWorld-v0", "--set", "planning_steps=5", "--eval-every", "25",
                    "--seed", "1"],
        "maze": ["dyna-q", "--env", "DynaMaze-v0", "--set", "planning_steps=50", "--eval-every", "50"],
    }
    for name, args in runs.items():
        assert cli(["train", *args, *common, "--run-dir", tmp_path / name]) == 0
    from modelrl.experiment.plots import group_runs

    groups = group_runs([tmp_path / name for name in runs])
    assert {label: len(seeds) for label, seeds in groups.items()} == {
        "dyna-q GridWorld-v0 planning_steps=5": 2, "dyna-q DynaMaze-v0 planning_steps=50": 1}
    capsys.readouterr()
    assert cli(["plot", *(tmp_path / name for name in runs), "--out", tmp_path / "p.png"]) == 0
    err = capsys.readouterr().err  # seed 1 evaluated at 25 and 75 too, which seed 0 did not
    assert ("modelrl: warning: 'dyna-q GridWorld-v0 planning_steps=5': 2 evaluation steps that not every "
            "seed logged are left out") in err
    assert (tmp_path / "p.png").stat().st_size > 0


@pytest.mark.parametrize(
    "paths,out,message",
    [
        (["{tmp}/run", "{tmp}/typo"], "{tmp}/p.png", "{tmp}/typo is not a run directory (no config.yaml)"),
        (["{tmp}/run", "{tmp}"], "{tmp}/p.png", "{tmp} is not a run directory (no config.yaml)"),
        (["{tmp}/run"], "/proc/p.png", "/proc/p.png: "),
        (["{tmp}/run"], "{tmp}/a_file/p.png", "{tmp}/a_file: "),
        (["{tmp}/run"], "{tmp}/p.xyz", "cannot draw a '.xyz' file"),
        (["{tmp}/run"], "{tmp}", "is a directory; give the plot a file name"),
    ],
)
def test_bad_plot_input(tmp_path, capsys, paths, out, message):
    assert cli(["train", "q-learning", "--env", "GridWorld-v0", "--steps", "20", "--eval-every", "10",
                "--eval-episodes", "1", "--run-dir", tmp_path / "run", "--no-progress"]) == 0
    (tmp_path / "a_file").write_text("not a directory")
    fill = [arg.replace("{tmp}", str(tmp_path)) for arg in [*paths, out, message]]
    assert fill[-1] in one_line_error(capsys, ["plot", *fill[:-2], "--out", fill[-2]])
    assert not (tmp_path / "p.png").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--agents", "q-learning", "sac", "--steps", "30000"],
         "agent spec 'sac': sac needs flat Box observations; modelrl/GridWorld-v0 has Discrete(25)"),
        (["--agents", "q-learning", "dyna-q:planning_steps=nan"], "key 'planning_steps' must be an integer"),
        (["--agents", "q-learning", "--metric", "eval_retrun"],
         "metric 'eval_retrun' for agent spec 'q-learning'; did you mean eval_return?"),
        (["--agents", "q-learning", "--eval-episodes", "0"], "metric 'eval_return' needs evaluations"),
        (["--agents", "a b=q-learning", "a_b=dyna-q"], "'a b' and 'a_b' would share the run directories"),
        (["--agents", "q-learning", "--seeds", "0", "1", "0"], "seeds must differ; [0] given more than once"),
        (["--agents", "q-learning", "--seeds", "-1"], "--seeds must be a whole number from 0 to"),
        (["--agents", "q-learning", "dyna-q", "--metric", "nosuchmetric"],
         "unknown metric 'nosuchmetric' for agent spec 'q-learning'; it logs episode_return, episodes, "),
        (["--agents", "dyna-q", "prioritized-sweeping", "--metric", "queue_length"],
         "unknown metric 'queue_length' for agent spec 'dyna-q'"),
        (["--agents", "q-learning", "--steps", "0"], "--steps must be >= 1, got 0"),
        (["--agents", "q-learning", "--eval-every", "0"], "--eval-every must be >= 1, got 0"),
        (["--agents", "q-learning", "--jobs", "0"], "--jobs must be >= 1, got 0"),
    ],
)
def test_compare_checks_everything_before_any_run(tmp_path, capsys, args, message):
    if "--steps" not in args:
        args = [*args, "--steps", "100"]
    out = tmp_path / "out"
    assert message in one_line_error(capsys, ["compare", "--env", "GridWorld-v0", *args, "--out", out,
                                              "--no-progress"])
    assert not out.exists()


def test_compare_output_errors(tmp_path, capsys):
    (tmp_path / "a_file").write_text("not a directory")
    args = ["compare", "--env", "GridWorld-v0", "--agents", "q-learning", "--steps", "20", "--no-progress"]
    line = one_line_error(capsys, [*args, "--out", tmp_path / "a_file" / "out"])
    assert f"{tmp_path}/a_file/out/runs: Not a directory" in line


def test_python_dash_m_modelrl():
    result = subprocess.run([sys.executable, "-m", "modelrl", "--version"], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0 and result.stdout.startswith("modelrl "), result.stderr


@pytest.mark.parametrize(
    "agent,env,args,message",
    [
        ("dqn", "CartPole-v1", ["--seed", "99999999999999999999"], "--seed must be a whole number from 0 to"),
        ("dyna-q", "FrozenLake-v1", ["--set", "planning_steps=1e9"],
         ("planning_steps must be from 0 to 1,000,000 (planning updates per real step, each about a "
          "microsecond), got 1,000,000,000")),
        ("prioritized-sweeping", "DynaMaze-v0", ["--set", "planning_steps=1e9"],
         "planning_steps must be from 0"),
        ("dqn", "CartPole-v1", ["--set", "buffer_size=1e12"],
         "buffer_size=1,000,000,000,000 (a replay buffer of 46 bytes a transition) needs 41.8 TiB of memory"),
        ("sac", "Pendulum-v1", ["--set", "hidden_size=1000000"], "(hidden size 1,000,000) needs 14.6 TiB"),
        ("sac", "Pendulum-v1", ["--env-arg", "g=nan"], "--env-arg g=nan: must be a finite number"),
        ("sac", "Pendulum-v1", ["--env-arg", "g=abc"],
         "environment 'Pendulum-v1' with arguments {'g': 'abc'} failed its first step: TypeError"),
        ("sac", "Pendulum-v1", ["--set", "lr=-1"], "lr must be > 0, got -1.0"),
        ("sac", "Pendulum-v1", ["--set", "tau=2"], "tau must be in (0, 1], got 2.0"),
        ("dqn", "CartPole-v1", ["--set", "gamma=1.5"], "gamma must be in [0, 1], got 1.5"),
        ("dqn", "CartPole-v1", ["--set", "gradient_steps=-1"], "gradient_steps must be >= 0, got -1"),
        ("pets", "Pendulum-v1", ["--set", "model_weight_decay=-1"],
         "model_weight_decay must be >= 0, got -1.0"),
        ("mpc", "Pendulum-v1", ["--set", "icem_decay=0.5"], "icem_decay must be >= 1, got 0.5"),
    ],
)
def test_bad_input_of_a_first_hour(tmp_path, capsys, agent, env, args, message):
    line = one_line_error(capsys, ["train", agent, "--env", env, "--steps", "200",
                                   "--runs-root", tmp_path / "runs", *args, "--no-progress"])
    assert message in line
    assert not (tmp_path / "runs").exists()


def test_planning_beyond_one_chunk_makes_every_update_reproducibly():
    from modelrl.agents.dyna_q import PLANNING_CHUNK

    agents = [modelrl.make_agent("dyna-q", env="FrozenLake-v1", seed=3, planning_steps=PLANNING_CHUNK + 5)
              for _ in range(2)]
    agents[0].learn(60)
    agents[1].learn(60)
    assert agents[0].updates == 60 * (PLANNING_CHUNK + 6) and (agents[0].q == agents[1].q).all()


def test_a_resumed_run_with_a_broken_config_yaml_says_what_is_wrong(small_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    for key, value, message in (("total_steps", "abc", "total_steps must be a whole number >= 1, got 'abc'"),
                                ("seed", 2**40, "seed must be a whole number from 0 to"),
                                ("eval_every", 0, "eval_every must be a whole number >= 1, got 0"),
                                ("config", [1], "config must be a mapping of key: value")):
        (run / "config.yaml").write_text(yaml.safe_dump({**config, key: value}))
        assert message in one_line_error(capsys, ["train", "--resume", run])


def test_nothing_a_user_wrote_is_overwritten(tmp_path, capsys):
    mine = tmp_path / "mine"
    (mine / "plots").mkdir(parents=True)
    (mine / "metrics.csv").write_text("my own numbers\n")
    (mine / "plots" / "figure.png").write_bytes(b"my figure")
    line = one_line_error(capsys, ["train", "q-learning", "--env", "GridWorld-v0", "--steps", "20",
                                   "--run-dir", mine, "--no-progress"])
    assert "already holds metrics.csv, plots, which a run would overwrite" in line
    assert (mine / "metrics.csv").read_text() == "my own numbers\n"
    assert sorted(p.name for p in mine.rglob("*")) == ["figure.png", "metrics.csv", "plots"]

    out = tmp_path / "comparison"
    args = ["compare", "--env", "GridWorld-v0", "--agents", "q-learning", "--seeds", "0", "--steps", "50",
            "--eval-episodes", "1", "--no-progress"]
    assert cli([*args, "--out", out]) == 0
    written = {name: (out / name).read_bytes() for name in ("compare.json", "compare.md", "compare.png")}
    (out / "runs" / "q-learning-s0").rename(out / "moved")  # even without its runs, a comparison stays
    line = one_line_error(capsys, [*args, "--out", out])
    assert "already holds a comparison (compare.json, compare.md, compare.png)" in line
    assert written == {name: (out / name).read_bytes() for name in written}


class _Interrupt:
    """Makes the agent's `observe` raise KeyboardInterrupt at its `at`-th call, as Ctrl-C would."""

    def __init__(self, monkeypatch, at: int):
        from modelrl.agents.tabular import TabularAgent

        self.calls, original = 0, TabularAgent.observe

        def observe(agent, *args, **kwargs):
            self.calls += 1
            if self.calls == at:
                raise KeyboardInterrupt
            original(agent, *args, **kwargs)

        monkeypatch.setattr(TabularAgent, "observe", observe)


def test_ctrl_c_names_the_run_to_resume_or_says_there_is_none(tmp_path, capsys, monkeypatch):
    run = tmp_path / "my run"
    args = ["train", "q-learning", "--env", "GridWorld-v0", "--steps", "100", "--eval-every", "20",
            "--eval-episodes", "1", "--run-dir", run, "--no-progress"]
    _Interrupt(monkeypatch, at=50)
    capsys.readouterr()
    assert cli(args) == 130
    err = capsys.readouterr().err.strip()
    assert err == (f"modelrl: interrupted at env step 50; `modelrl train --resume '{run}'` continues the run "
                   "from its last checkpoint")
    assert cli(["train", "--resume", run, "--no-progress"]) == 0  # ... as it says
    assert modelrl.load(run / "checkpoints" / "last.pt").env_steps == 100

    _Interrupt(monkeypatch, at=5)  # before the first checkpoint: the run directory is removed
    assert cli([*args[:-2], tmp_path / "second", "--no-progress"]) == 130
    assert "its directory was removed, so there is nothing to resume" in capsys.readouterr().err
    assert not (tmp_path / "second").exists()


def test_config_lists_every_key_with_its_default_and_meaning(capsys):
    from modelrl.config import describe_config

    for agent_id, cls in modelrl.AGENTS.items():
        undocumented = [name for name, _, _, doc in describe_config(cls.config_class) if not doc]
        assert not undocumented, f"{agent_id}: {undocumented}"
    assert cli(["config", "sac"]) == 0
    out = capsys.readouterr().out
    assert "  tau = 0.005" in out and "float; Polyak step of the target critics" in out
    assert cli(["list", "pets"]) == 0
    out = capsys.readouterr().out
    assert "optimizer = 'cem'" in out and "one of cem, icem, mppi, random" in out
    assert "unknown agent 'sacc'; did you mean sac" in one_line_error(capsys, ["config", "sacc"])


def test_an_env_of_the_users_own_module(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_envs.py").write_text(
        "import gymnasium as gym\n"
        "gym.register('MyLake-v0', entry_point='gymnasium.envs.toy_text:FrozenLakeEnv', "
        "max_episode_steps=50)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    run = tmp_path / "run"
    args = ["train", "q-learning", "--env", "my_envs:MyLake-v0", "--steps", "60", "--run-dir", run,
            "--no-progress"]
    assert cli(args) == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["env"] == "my_envs:MyLake-v0"
    # Loading a file never imports code: the module must be imported by the user first.
    monkeypatch.delitem(sys.modules, "my_envs")
    line = one_line_error(capsys, ["train", "--resume", run, "--steps", "80"])
    assert "names the env 'my_envs:MyLake-v0', whose module 'my_envs' is not imported" in line
    with pytest.raises(modelrl.ModelRLError, match="loading a file never imports code"):
        modelrl.load(run / "checkpoints" / "last.pt")
    assert "my_envs" not in sys.modules
    assert cli(["train", "--resume", run, "--steps", "80", "--import", "my_envs", "--no-progress"]) == 0
    assert cli(["eval", run, "--episodes", "1", "--import", "my_envs"]) == 0
    line = one_line_error(capsys, ["train", "q-learning", "--env", "no_such_module:MyLake-v0"])
    assert "its module 'no_such_module' cannot be imported (ModuleNotFoundError" in line
    assert "unknown environment 'NoLake-v0'" in one_line_error(capsys, ["train", "q-learning", "--env",
                                                                        "my_envs:NoLake-v0"])


def test_a_mujoco_env_without_mujoco_names_the_extra(monkeypatch, capsys):
    import gymnasium as gym

    def make(*args, **kwargs):
        raise gym.error.DependencyNotInstalled(
            'MuJoCo is not installed, run `pip install "gymnasium[mujoco]"`')

    monkeypatch.setattr(gym, "make", make)
    line = one_line_error(capsys, ["train", "sac", "--env", "Hopper-v5"])
    assert line == ("modelrl: error: environment 'Hopper-v5' needs MuJoCo, an optional part of modelrl: "
                    "pip install 'modelrl[mujoco]'")


def test_a_run_that_ends_before_learning_starts_says_so(tmp_path, capsys):
    assert cli(["train", "mbpo", "--env", "Pendulum-v1", "--steps", "30", "--eval-episodes", "0",
                "--run-dir", tmp_path / "run", "--no-progress"]) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [("modelrl: warning: mbpo learns nothing before env step 5000 (learning_starts=5000), "
                      "and this run ends at env step 30: it only collects experience; give it more steps "
                      "or an earlier start")]


def test_train_with_several_envs_and_resume(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "q-learning", "--env", "GridWorld-v0", "--steps", "200", "--num-envs", "3",
            "--eval-every", "100", "--eval-episodes", "1", "--run-dir", run, "--no-progress"]
    assert cli(args) == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["num_envs"] == 3
    assert cli(["train", "--resume", run, "--steps", "400", "--no-progress"]) == 0
    agent = modelrl.load(run / "checkpoints" / "last.pt")
    assert agent.num_envs == 3 and agent.env_steps >= 400
    assert "--num-envs must be >= 1, got 0" in one_line_error(capsys, [*args[:7], "0"])


def test_predict_writes_a_world_models_open_loop_video_and_refuses_other_agents(tmp_path, capsys):
    pytest.importorskip("pygame", reason="Pendulum's frames need pygame: pip install 'modelrl[render]'")
    run = tmp_path / "dreamer"
    # an image env's default evaluation: one episode, at the end
    assert cli(["train", "dreamer", "--env", "pixels/Pendulum-v1", "--steps", "60", "--run-dir", run,
                "--set", "size=tiny", "--set", "learning_starts=30", "--set", "batch_size=2",
                "--set", "batch_length=8", "--set", "train_ratio=16", "--set", "horizon=3"]) == 0
    capsys.readouterr()
    assert cli(["predict", run, "--context", "3", "--horizon", "6", "--out", tmp_path / "out"]) == 0
    printed = capsys.readouterr().out
    assert "open loop after 3 observed" in printed and "imagined" in printed
    report = json.loads((tmp_path / "out" / "open_loop_prediction.json").read_text())
    assert report["context"] == 3 and report["open_loop_steps"] == 6 and len(report["mse_by_step"]) == 9
    from PIL import Image

    with Image.open(tmp_path / "out" / "open_loop_prediction.gif") as gif:
        assert gif.n_frames == 9 and gif.size == (256, 128)  # real | predicted, doubled
    assert (tmp_path / "out" / "open_loop_prediction.png").stat().st_size > 0
    other = tmp_path / "q"
    assert cli(["train", "q-learning", "--env", "GridWorld-v0", "--steps", "20", "--run-dir", other]) == 0
    assert "predict shows a latent world model" in one_line_error(capsys, ["predict", other])
