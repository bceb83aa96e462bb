import subprocess
import sys

import pytest

from modelrl.cli import main


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "modelrl.cli", *args], capture_output=True, text=True, cwd=cwd, check=False)


@pytest.mark.parametrize(
    "args,message",
    [
        (["train", "dyna-q", "--env", "NoSuchEnv-v0", "--steps", "10"], "unknown environment 'NoSuchEnv-v0'"),
        (["train", "dyna-q", "--env", "CartPole-v1", "--steps", "10"], "needs a Discrete observation space"),
        (["train", "dyna-q", "--env", "DynaMaze-v0", "--set", "plannig_steps=5"], "unknown config key 'plannig_steps'"),
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
    config.write_text("- not a mapping\n")
    assert main(["train", "dyna-q", "--env", "DynaMaze-v0", "--config", str(config)]) == 2
    assert "must hold a mapping" in capsys.readouterr().err


def test_compare_and_list(tmp_path, capsys):
    assert main(["compare", "--env", "GridWorld-v0", "--agents", "q-learning", "dyna-q:planning_steps=10",
                 "--seeds", "0", "1", "--steps", "200", "--eval-episodes", "1", "--jobs", "2",
                 "--out", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "| dyna-q planning_steps=10 |" in out and (tmp_path / "compare.png").exists()
    assert main(["list"]) == 0
    assert "prioritized-sweeping" in capsys.readouterr().out
