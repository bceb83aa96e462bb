import json
import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

import modelrl
from modelrl.errors import ConfigError, ModelRLError, RunDirError, TrainingDivergedError
from modelrl.experiment import AgentSpec, compare, parse_agent_spec, plot_runs, resume, train
from modelrl.experiment.compare import summarize
from modelrl.experiment.logger import MetricsLogger, read_metrics
from modelrl.experiment.plots import mean_and_stderr, plot_curves


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
        return [{k: str(v) for k, v in r.items() if k != "wall_time"}
                for r in read_metrics(run_dir / "metrics.csv")]

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
    train("q-learning", "GridWorld-v0", total_steps=10, run_dir=tmp_path / "r", progress=False,
          tensorboard=False)
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
    for run in result["runs"]:  # every run trained with its own spec's config
        config = yaml.safe_load((Path(run) / "config.yaml").read_text())
        expected = 30 if config["label"] == "dyna" else None
        assert config["config"].get("planning_steps") == expected
        trained = modelrl.load(Path(run) / "checkpoints" / "last.pt")
        assert getattr(trained.config, "planning_steps", None) == expected
    redrawn = plot_runs(result["runs"], tmp_path / "again.png", metric="eval_length")
    assert redrawn.stat().st_size > 0
    with pytest.raises(RunDirError, match="no metric 'loss'"):
        plot_runs(result["runs"], tmp_path / "bad.png", metric="loss")


def test_compare_checks_every_spec_before_starting(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'n'"):
        compare([AgentSpec("a", "dyna-q", {"n": 5})], "GridWorld-v0", seeds=[0], total_steps=10,
                out_dir=tmp_path)
    assert not (tmp_path / "runs").exists()


def test_the_agent_trains_on_the_env_arguments_given(tmp_path):
    result = train("dyna-q", "DynaMaze-v0", total_steps=20, env_kwargs={"scale": 2}, eval_every=10,
                   eval_episodes=0, run_dir=tmp_path / "run", progress=False, tensorboard=False)
    assert result.agent.env.observation_space.n == 4 * 54
    loaded = modelrl.load(tmp_path / "run" / "checkpoints" / "last.pt")
    assert loaded.env_kwargs == {"scale": 2} and loaded.env.observation_space.n == 4 * 54
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["env_kwargs"] == {"scale": 2}


@pytest.mark.parametrize(
    "other,message",
    [
        ({"agent_id": "dyna-q"}, "its agent differs: 'dyna-q' (config.yaml: 'q-learning')"),
        ({"env_id": "DynaMaze-v0"}, "differs: 'modelrl/DynaMaze-v0' (config.yaml: 'modelrl/GridWorld-v0')"),
        ({"env_kwargs": {"goal_reward": 5.0}}, "its env_kwargs differs: goal_reward=5.0 (config.yaml: None)"),
        ({"seed": 1}, "its seed differs: 1 (config.yaml: 0)"),
        ({"overrides": {"lr": 0.5}}, "its config differs: lr=0.5 (config.yaml: 0.1)"),
    ],
)
def test_resume_refuses_a_checkpoint_of_another_run(tmp_path, other, message):
    kwargs = {"total_steps": 20, "eval_every": 10, "eval_episodes": 0, "progress": False,
              "tensorboard": False}
    mine = train("q-learning", "GridWorld-v0", run_dir=tmp_path / "mine", **kwargs).run_dir
    spec = {"agent_id": "q-learning", "env_id": "GridWorld-v0", **other}
    theirs = train(spec.pop("agent_id"), spec.pop("env_id"), run_dir=tmp_path / "theirs", **spec,
                   **kwargs).run_dir
    (mine / "checkpoints" / "last.pt").write_bytes((theirs / "checkpoints" / "last.pt").read_bytes())
    before = (mine / "metrics.csv").read_text(), (mine / "config.yaml").read_text()
    with pytest.raises(RunDirError, match="is not this run's") as error:
        resume(mine, total_steps=40, progress=False, tensorboard=False)
    assert message in str(error.value)
    assert ((mine / "metrics.csv").read_text(), (mine / "config.yaml").read_text()) == before


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"total_steps": 0}, "total_steps must be >= 1, got 0"),
        ({"eval_every": 0}, "eval_every must be >= 1, got 0"),
        ({"eval_every": -1}, "eval_every must be >= 1, got -1"),
        ({"eval_episodes": -2}, "eval_episodes must be >= 0, got -2"),
        ({"seed": -1}, r"seed must be a whole number from 0 to 4294967295 \(2\*\*32 - 1\), got -1"),
        ({"seed": 2**32}, "seed must be a whole number from 0 to 4294967295"),
    ],
)
def test_train_checks_its_settings_before_writing(tmp_path, monkeypatch, settings, message):
    settings = {"total_steps": 20, **settings}

    def no_directories_yet(*args, **kwargs):
        raise AssertionError("a directory was made before the settings were checked")

    with monkeypatch.context() as patch, pytest.raises(ConfigError, match=message):
        patch.setattr(Path, "mkdir", no_directories_yet)
        train("q-learning", "GridWorld-v0", run_dir=tmp_path / "runs" / "r", progress=False, **settings)
    assert not (tmp_path / "runs").exists()
    # ... and the same directory then takes the run
    train("q-learning", "GridWorld-v0", total_steps=20, run_dir=tmp_path / "runs" / "r", progress=False,
          tensorboard=False)


def test_a_diverged_run_leaves_nothing_behind(tmp_path):
    with pytest.raises(TrainingDivergedError):
        train("q-learning", "test/NaNReward-v0", total_steps=20, eval_every=10, runs_root=tmp_path / "runs",
              progress=False)
    assert not (tmp_path / "runs").exists()


def test_compare_stops_at_the_first_failed_run(tmp_path):
    specs = [AgentSpec("bad", "dyna-q-plus", {"kappa": 1e308}),  # the planning bonus overflows at once
             AgentSpec("ok", "q-learning")]
    with pytest.raises(ModelRLError, match=r"run 'bad' seed 0 failed, so the comparison stops: .*diverged"):
        compare(specs, "GridWorld-v0", seeds=[0, 1, 2, 3], total_steps=200, out_dir=tmp_path, eval_every=10,
                eval_episodes=1, jobs=1, progress=False)
    assert not list((tmp_path / "runs").glob("ok-*"))  # the pending runs were cancelled, not run


def test_compare_refuses_clashing_or_taken_run_directories(tmp_path):
    kwargs = {"seeds": [0], "total_steps": 20, "out_dir": tmp_path, "eval_episodes": 0,
              "metric": "episode_return"}
    with pytest.raises(ConfigError, match="'a b' and 'a_b' would share the run directories"):
        compare([AgentSpec("a b", "q-learning"), AgentSpec("a_b", "dyna-q")], "GridWorld-v0", **kwargs)
    with pytest.raises(ConfigError, match=r"seeds must differ; \[0\] given more than once"):
        compare([AgentSpec("a", "q-learning")], "GridWorld-v0", **{**kwargs, "seeds": [0, 0]})
    assert not tmp_path.joinpath("runs").exists()
    train("q-learning", "GridWorld-v0", total_steps=20, run_dir=tmp_path / "runs" / "a-s0", progress=False,
          tensorboard=False)
    with pytest.raises(RunDirError, match="a-s0 already holds a run"):
        compare([AgentSpec("a", "q-learning")], "GridWorld-v0", **kwargs)


def test_compare_checks_the_metric_up_front(tmp_path):
    kwargs = {"seeds": [0], "total_steps": 20, "out_dir": tmp_path, "progress": False}
    with pytest.raises(ConfigError,
                       match="unknown metric 'eval_retrun' for agent spec 'a'; did you mean eval_ret"):
        compare([AgentSpec("a", "q-learning")], "GridWorld-v0", metric="eval_retrun", **kwargs)
    with pytest.raises(ConfigError, match="metric 'eval_length' needs evaluations, but eval_episodes is 0"):
        compare([AgentSpec("a", "q-learning")], "GridWorld-v0", metric="eval_length", eval_episodes=0,
                **kwargs)
    assert not tmp_path.joinpath("runs").exists()
    # an agent's own metric is known from the agent
    result = compare([AgentSpec("a", "dyna-q")], "GridWorld-v0", metric="model_pairs", eval_every=10,
                     eval_episodes=0, **kwargs)
    assert result["summary"][0]["final_model_pairs_mean"] > 0


def test_standard_error_counts_only_seeds_with_a_value():
    values = np.array([[1.0, 2.0], [3.0, np.nan], [5.0, 4.0]])
    mean, stderr = mean_and_stderr(values)
    np.testing.assert_allclose(mean, [3.0, 3.0])
    # sample deviations 2 and sqrt(2), over sqrt(3) and sqrt(2) seeds
    np.testing.assert_allclose(stderr, [2.0 / math.sqrt(3), 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mean, stderr = mean_and_stderr(np.array([[1.0, np.nan]]))
    assert mean[0] == 1.0 and np.isnan(mean[1]) and np.isnan(stderr).all()  # one seed: no band


def test_summary_std_is_the_sample_deviation(tmp_path):
    def rows(*values):
        return [{"env_steps": 10 * (i + 1), "wall_time": 1.0, "eval_return": v} for i, v in enumerate(values)]

    groups = {"two": [rows(0.0, 1.0), rows(0.0, 3.0)], "one": [rows(0.0, 5.0)]}
    summary = summarize(groups, "eval_return", None)
    assert summary[0]["final_eval_return_std"] == pytest.approx(math.sqrt(2))
    assert math.isnan(summary[1]["final_eval_return_std"])
    with warnings.catch_warnings():  # one seed draws a line without a band, and without NaN warnings
        warnings.simplefilter("error")
        assert plot_curves({"one": [rows(0.0, 5.0)]}, tmp_path / "one.png").stat().st_size > 0


def test_each_metrics_write_has_its_own_temporary_file(tmp_path, monkeypatch):
    replaced = []
    real_replace = os.replace

    def recording_replace(src, dst):
        replaced.append((Path(src), Path(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", recording_replace)
    logger = MetricsLogger(tmp_path, tensorboard=False)
    logger.log({"env_steps": 1, "eval_return": 0.5})
    logger.log({"env_steps": 2, "eval_return": 0.7})
    assert [dst for _, dst in replaced] == [tmp_path / "metrics.csv"] * 2
    sources = [src for src, _ in replaced]
    assert len(set(sources)) == 2 and all(src.parent == tmp_path for src in sources)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]
    assert [row["eval_return"] for row in read_metrics(tmp_path / "metrics.csv")] == [0.5, 0.7]


def test_compare_checks_agents_without_touching_cuda(tmp_path, monkeypatch):
    import torch

    asked, real = [], torch.cuda.is_available
    # The workers are fresh interpreters: only this process's calls reach the list.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: asked.append(1) or real())
    with pytest.raises(ConfigError, match="agent spec 'd': unknown device 'mps'"):
        compare([AgentSpec("d", "dqn", {"device": "mps"})], "CartPole-v1", seeds=[0], total_steps=10,
                out_dir=tmp_path, progress=False)
    result = compare([AgentSpec("d", "dqn")], "CartPole-v1", seeds=[0], total_steps=20, out_dir=tmp_path,
                     eval_every=10, eval_episodes=0, metric="episode_return", progress=False)
    assert asked == []  # the spec check holds no GPU while the workers train
    assert len(result["runs"]) == 1


def test_steps_to_threshold_ratio_compares_medians_that_count_seeds_never_reaching_it():
    """Means over only the seeds that got there compare different subsets: an agent reaching it once, early,
    would look best. Seeds that never get there count as later than all the others."""
    def seed(values):
        return [{"env_steps": 100 * (i + 1), "wall_time": 1.0, "eval_return": v}
                for i, v in enumerate(values)]

    groups = {"baseline": [seed([0, 1, 1]), seed([0, 1, 1]), seed([0, 0, 1])],  # 200, 200, 300
              "lucky": [seed([1, 1, 1]), seed([0, 0, 0]), seed([0, 0, 0])],  # 100, never, never
              "most": [seed([0, 0, 1]), seed([0, 0, 1]), seed([0, 0, 0])]}  # 300, 300, never
    rows = {row["label"]: row for row in summarize(groups, "eval_return", threshold=1)}
    assert rows["lucky"]["steps_to_threshold_mean"] == 100.0  # the biased figure, still reported
    assert (math.isnan(rows["lucky"]["steps_to_threshold_median"])
            and math.isnan(rows["lucky"]["steps_to_threshold_ratio"]))
    assert rows["most"]["steps_to_threshold_median"] == 300.0
    assert rows["most"]["steps_to_threshold_ratio"] == pytest.approx(1.5)


def test_planners_get_an_evaluation_they_can_afford():
    from modelrl.experiment.runner import default_evaluation

    pets = modelrl.make_agent("pets", env="ContinuousCartPole-v0")  # 200-step episodes
    assert default_evaluation(pets, 1000) == (500, 1)  # 2 x 200 evaluation steps for 1000 training steps
    assert default_evaluation(pets, 300) == (300, 1)  # one evaluation, at the end
    assert default_evaluation(pets, 100_000) == (10_000, 1)  # at most 10
    assert default_evaluation(modelrl.make_agent("mpc", env="Pendulum-v1"), 4000) == (400, 1)
    assert default_evaluation(modelrl.make_agent("sac", env="Pendulum-v1"), 1000) == (50, 5)


def test_image_envs_get_evaluations_that_render_at_most_half_the_runs_steps():
    from modelrl.experiment.runner import default_evaluation

    drq = modelrl.make_agent("drq", env="pixels/Pendulum-v1")  # 200-step episodes, each step rendered
    assert default_evaluation(drq, 60) == (60, 1)  # one episode, at the end (was 20 x 5 episodes)
    assert default_evaluation(drq, 2000) == (400, 1)  # 5 episodes: 1,000 rendered steps
    assert default_evaluation(drq, 20_000) == (1000, 2)  # 20 evaluations of 2 episodes
    assert default_evaluation(drq, 40_000) == (2000, 5)  # the default, once the run affords it


def test_a_planners_train_evaluates_as_its_default_says(tmp_path):
    result = train("mpc", "Pendulum-v1", total_steps=450, overrides={"population": 20, "iterations": 1,
                                                                     "horizon": 5}, run_dir=tmp_path / "run",
                   progress=False, tensorboard=False)
    config = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert (config["eval_every"], config["eval_episodes"]) == (450, 1)
    assert [row["env_steps"] for row in result.history] == [450]


def test_evaluation_reports_its_progress():
    agent = modelrl.make_agent("q-learning", env="GridWorld-v0", seed=0)
    calls = []
    agent.evaluate(2, max_steps=7, progress=lambda *call: calls.append(call))
    assert calls[:2] == [(0, 2, 1), (0, 2, 2)] and calls[-1] == (1, 2, 7) and len(calls) == 14


def test_every_agent_declares_the_metrics_it_logs():
    """compare checks a metric against these before any run starts, so they must be complete."""
    small = {"mpc": {"population": 8, "iterations": 1, "horizon": 3},
             "pets": {"population": 8, "iterations": 1, "horizon": 3, "random_steps": 40,
                      "model_max_epochs": 2, "model_hidden_size": 16, "train_every": 20},
             "sac": {"learning_starts": 20, "batch_size": 8, "hidden_size": 16},
             "mbpo": {"learning_starts": 20, "batch_size": 8, "hidden_size": 16, "model_train_every": 20,
                      "epoch_length": 20, "rollouts_per_step": 2, "model_max_epochs": 2,
                      "model_hidden_size": 16, "updates_per_step": 1},
             "dqn": {"learning_starts": 20, "train_freq": 10, "gradient_steps": 1, "batch_size": 8,
                     "hidden_size": 16},
             "deep-dyna-q": {"learning_starts": 20, "train_freq": 10, "gradient_steps": 1, "batch_size": 8,
                             "hidden_size": 16, "model_train_every": 20, "model_max_epochs": 2,
                             "model_hidden_size": 16, "planning_steps": 2},
             "dreamer": {"size": "tiny", "learning_starts": 20, "batch_size": 2, "batch_length": 8,
                         "train_ratio": 16, "horizon": 3},
             "planet": {"size": "tiny", "learning_starts": 20, "batch_size": 2, "batch_length": 8,
                        "train_ratio": 16, "horizon": 3, "population": 8, "iterations": 1},
             "drq": {"learning_starts": 20, "batch_size": 8, "hidden_size": 16, "depth": 2, "features": 8,
                     "augment_q": 1, "augment_target": 1},
             "td-mpc2": {"size": "tiny", "seed_steps": 20, "batch_size": 8, "num_samples": 16,
                         "num_elites": 4, "num_pi_trajs": 2, "iterations": 1},
             "alphazero": {"simulations": 4, "parallel_games": 4, "learning_starts": 8, "batch_size": 8},
             "muzero": {"simulations": 4, "learning_starts": 20, "batch_size": 8, "hidden_size": 16}}
    envs = {"mpc": "Pendulum-v1", "pets": "Pendulum-v1", "sac": "Pendulum-v1", "mbpo": "Pendulum-v1",
            "dqn": "CartPole-v1", "deep-dyna-q": "CartPole-v1", "dreamer": "Pendulum-v1",
            "drq": "pixels/Pendulum-v1", "planet": "Pendulum-v1", "td-mpc2": "Pendulum-v1",
            "alphazero": "TicTacToe-v0",
            "muzero": "CartPole-v1"}
    for agent_id, cls in modelrl.AGENTS.items():
        agent = modelrl.make_agent(agent_id, env=envs.get(agent_id, "GridWorld-v0"),
                                   **small.get(agent_id, {}))
        agent.learn(60)
        logged = set(agent.metrics())
        assert logged <= set(cls.metric_names), (agent_id, logged - set(cls.metric_names))
        assert logged, agent_id


def test_a_run_in_chunks_is_warned_once_that_it_learns_nothing_yet():
    agent = modelrl.make_agent("sac", env="Pendulum-v1", learning_starts=100, hidden_size=16, batch_size=8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            agent.learn(20)
    said = [str(w.message) for w in caught if "learns nothing" in str(w.message)]
    assert len(said) == 1 and "sac learns nothing before env step 100" in said[0]
    # a harness that knows the run's whole end (a study's budget) checks it first: its chunks say nothing
    agent = modelrl.make_agent("sac", env="Pendulum-v1", learning_starts=100, hidden_size=16, batch_size=8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        agent.warn_if_nothing_is_learned(200)
        agent.learn(20)
    assert not [w for w in caught if "learns nothing" in str(w.message)]


def test_a_resumed_run_rewrites_its_earlier_rows_as_they_were_written(tmp_path):
    run_dir = tmp_path / "run"
    train("dqn", "CartPole-v1", total_steps=400, eval_every=100, eval_episodes=1, run_dir=run_dir,
          progress=False, tensorboard=False, overrides={"learning_starts": 250})
    before = (run_dir / "metrics.csv").read_text().splitlines()
    assert before[1].endswith(",")  # no q_loss before the first update: an empty cell, not "nan"
    resume(run_dir, total_steps=500, progress=False, tensorboard=False)
    after = (run_dir / "metrics.csv").read_text().splitlines()
    assert after[:len(before)] == before and len(after) == len(before) + 1
