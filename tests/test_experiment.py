import json

import numpy as np
import pytest
import yaml

import modelrl
from modelrl.errors import ConfigError, RunDirError
from modelrl.experiment import AgentSpec, compare, parse_agent_spec, plot_runs, resume, train
from modelrl.experiment.logger import read_metrics


def test_train_writes_a_complete_run_directory(tmp_path):
    result = train("dyna-q", "GridWorld-v0", total_steps=400, seed=1, overrides={"planning_steps": "10"},
                   eval_every=100, eval_episodes=1, run_dir=tmp_path / "run", progress=False)
    run = result.run_dir
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["agent"] == "dyna-q" and config["config"]["planning_steps"] == 10
    rows = read_metrics(run / "metrics.csv")
    assert [r["env_steps"] for r in rows] == [100, 200, 300, 400]
    assert {"episodes", "wall_time", "eval_return", "episode_return", "updates"} <= set(rows[0])
    assert any((run / "tb").iterdir())
    assert (run / "plots" / "learning_curve.png").stat().st_size > 0
    assert modelrl.load(run / "checkpoints" / "last.pt").env_steps == 400


def test_resumed_run_matches_an_uninterrupted_one(tmp_path):
    kwargs = {"seed": 3, "eval_every": 50, "eval_episodes": 1, "progress": False, "tensorboard": False}
    whole = train("dyna-q", "DynaMaze-v0", total_steps=300, run_dir=tmp_path / "whole", **kwargs)
    part = train("dyna-q", "DynaMaze-v0", total_steps=150, run_dir=tmp_path / "part", **kwargs)
    resumed = resume(part.run_dir, total_steps=300, progress=False, tensorboard=False)
    np.testing.assert_array_equal(whole.agent.q, resumed.agent.q)

    def rows(run_dir):  # wall time differs; NaN (no finished episode yet) is written as "nan" by both
        return [{k: str(v) for k, v in r.items() if k != "wall_time"} for r in read_metrics(run_dir / "metrics.csv")]

    assert len(rows(whole.run_dir)) == 6
    assert rows(whole.run_dir) == rows(part.run_dir)


def test_resume_drops_rows_logged_after_the_checkpoint(tmp_path):
    run = train("q-learning", "GridWorld-v0", total_steps=100, eval_every=50, eval_episodes=1,
                run_dir=tmp_path / "run", progress=False, tensorboard=False).run_dir
    with (run / "metrics.csv").open("a") as f:  # a row whose checkpoint never landed
        f.write("150,9,0.1,-5,-5,5,150\n")
    resume(run, total_steps=200, progress=False, tensorboard=False)
    assert [r["env_steps"] for r in read_metrics(run / "metrics.csv")] == [50, 100, 150, 200]
    # The rows kept are rewritten as they were first written: counts stay integers.
    assert [line.split(",")[0] for line in (run / "metrics.csv").read_text().splitlines()[1:]] == [
        "50", "100", "150", "200"]


def test_run_dir_errors(tmp_path):
    with pytest.raises(RunDirError, match="not a run directory"):
        resume(tmp_path)
    train("q-learning", "GridWorld-v0", total_steps=10, run_dir=tmp_path / "r", progress=False, tensorboard=False)
    with pytest.raises(RunDirError, match="already holds a run"):
        train("q-learning", "GridWorld-v0", total_steps=10, run_dir=tmp_path / "r", progress=False)
    with pytest.raises(ConfigError, match="below the 10 steps already taken"):
        resume(tmp_path / "r", total_steps=5)


def test_agent_spec_parsing():
    assert parse_agent_spec("dyna-q:planning_steps=50,lr=0.5") == AgentSpec(
        "dyna-q planning_steps=50,lr=0.5", "dyna-q", {"planning_steps": "50", "lr": "0.5"}
    )
    assert parse_agent_spec("fast=dyna-q:planning_steps=50").label == "fast"
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_agent_spec("dyna-q:planning_steps")


def test_compare_runs_agents_by_seeds_in_parallel(tmp_path):
    specs = [AgentSpec("q", "q-learning"), AgentSpec("dyna", "dyna-q", {"planning_steps": 30})]
    result = compare(specs, "GridWorld-v0", seeds=[0, 1], total_steps=1200, out_dir=tmp_path, eval_every=50,
                     eval_episodes=1, threshold=93.0, jobs=2, progress=False)
    saved = json.loads((tmp_path / "compare.json").read_text())
    assert [row["label"] for row in saved["summary"]] == ["q", "dyna"]
    assert saved["summary"][1]["seeds_reaching_threshold"] == 2
    assert saved["summary"][1]["steps_to_threshold_ratio"] < 1.0  # planning needs fewer real steps
    assert (tmp_path / "compare.png").stat().st_size > 0
    assert "| dyna |" in (tmp_path / "compare.md").read_text()
    assert len(result["runs"]) == 4
    redrawn = plot_runs(result["runs"], tmp_path / "again.png", metric="eval_length")
    assert redrawn.stat().st_size > 0
    with pytest.raises(RunDirError, match="no metric 'loss'"):
        plot_runs(result["runs"], tmp_path / "bad.png", metric="loss")


def test_compare_checks_every_spec_before_starting(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'n'"):
        compare([AgentSpec("a", "dyna-q", {"n": 5})], "GridWorld-v0", seeds=[0], total_steps=10, out_dir=tmp_path)
    assert not (tmp_path / "runs").exists()
