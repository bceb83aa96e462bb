import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from modelrl.cli import main
from modelrl.errors import ConfigError, ModelRLError, RunDirError
from modelrl.experiment.sweep import plan_sweep, sweep

TESTS = Path(__file__).parent


def write_spec(path: Path, **spec) -> Path:
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def curves(out: Path) -> dict[str, list[str]]:
    """Each trial's metrics.csv without its wall-time column (the one value two identical runs differ in)."""
    result = {}
    for csv in sorted(out.glob("runs/*/metrics.csv")):
        lines = csv.read_text().splitlines()
        drop = lines[0].split(",").index("wall_time")
        result[csv.parent.name] = [",".join(v for i, v in enumerate(line.split(",")) if i != drop)
                                   for line in lines]
    return result


def records(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("trials/*.json"))}


def test_a_ray_sweep_retries_a_dead_worker_from_its_checkpoint_and_matches_an_undisturbed_one(
        tmp_path, monkeypatch):
    pytest.importorskip("ray")
    # Ray's workers import the env's module (tests/faulty_env.py) as the driver does.
    paths = [str(TESTS), os.environ.get("PYTHONPATH")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, paths)))
    monkeypatch.syspath_prepend(str(TESTS))
    marker = tmp_path / "died"
    spec = {"env": "faulty_env:DieOnce-v0", "agents": ["q-learning"], "seeds": [0, 1], "steps": 1500,
            "eval_every": 300, "eval_episodes": 2, "env_kwargs": {"marker": str(marker), "die_at": 2500}}
    # die_at counts the process's env steps, evaluations' too: the first evaluation (300 training steps and
    # up to 2 x 1,000 evaluation steps) is checkpointed before the worker dies.
    marker.touch()
    calm = sweep(write_spec(tmp_path / "calm.yaml", **spec, backend="processes"), tmp_path / "calm",
                 progress=False)
    marker.unlink()
    hit = sweep(write_spec(tmp_path / "hit.yaml", **spec), tmp_path / "hit", progress=False)
    assert marker.exists()  # a worker did die
    assert hit["trials"] == calm["trials"] == {"done": 2, "failed": 0, "stopped": 0, "missing": 0, "total": 2}
    resumed = [r["resumed_from"] for r in records(tmp_path / "hit").values()]
    assert sorted(resumed, key=str) == [300, None]  # retried from its checkpoint, not from step 0
    assert curves(tmp_path / "hit") == curves(tmp_path / "calm")
    assert all(r.get("node") for r in records(tmp_path / "hit").values())
    summary = hit["per_env"]["faulty_env:DieOnce-v0"]["summary"]
    assert summary[0]["seeds"] == 2 and summary[0]["final_eval_return_mean"] == 93
    assert Path(hit["per_env"]["faulty_env:DieOnce-v0"]["plot"]).is_file()
    assert "| q-learning | 2 | 93 |" in (tmp_path / "hit" / "sweep.md").read_text()


def test_resume_runs_only_the_trials_without_an_outcome(tmp_path):
    spec = write_spec(tmp_path / "s.yaml", envs=["GridWorld-v0"], agents=["q-learning", "dyna-q"],
                      seeds=[0, 1], steps=600, eval_every=200, eval_episodes=1, backend="processes")
    out = tmp_path / "out"
    first = sweep(spec, out, progress=False, jobs=1)
    assert first["ran_now"] == 4
    before = curves(out)
    kept = records(out)
    (out / "trials" / "dyna-q-modelrl_GridWorld-v0-s1.json").unlink()  # as if the driver died before it
    with pytest.raises(RunDirError, match="already holds a sweep; `modelrl sweep --resume"):
        sweep(spec, out, progress=False)
    again = sweep(resume=out, progress=False, jobs=1)
    assert again["ran_now"] == 1 and again["trials"]["done"] == 4 and len(again["segments"]) == 2
    after = records(out)
    assert after["dyna-q-modelrl_GridWorld-v0-s1"]["resumed_from"] == 600  # continued, not retrained
    assert {k: v for k, v in after.items() if k != "dyna-q-modelrl_GridWorld-v0-s1"} == \
        {k: v for k, v in kept.items() if k != "dyna-q-modelrl_GridWorld-v0-s1"}
    assert curves(out) == before


def test_a_trial_failing_with_a_user_error_is_recorded_while_the_others_finish(tmp_path):
    spec = write_spec(tmp_path / "s.yaml", env="GridWorld-v0", seeds=[0], steps=200, eval_every=100,
                      eval_episodes=1, backend="processes",
                      agents=["q-learning",
                              {"agent": "dyna-q-plus", "label": "bad", "config": {"kappa": 1e308}}])
    result = sweep(spec, tmp_path / "out", progress=False)
    assert result["trials"]["done"] == 1 and result["trials"]["failed"] == 1
    assert "diverged" in result["failed"][0]["error"] and "\n" not in result["failed"][0]["error"]
    assert "## Failed trials" in (tmp_path / "out" / "sweep.md").read_text()


@pytest.mark.parametrize("change, message", [
    ({"agents": ["dqnn"]}, "unknown agent 'dqnn'"),
    ({"agents": [{"agent": "dqn", "config": {"lrr": 0.1}}]}, "lrr"),
    ({"agents": [{"agent": "dqn", "grid": {"lr": []}}]}, "grid lr must be a non-empty list"),
    ({"envs": ["CartPol-v1"]}, "unknown environment 'CartPol-v1'"),
    ({"envs": ["Pendulum-v1"]}, "Discrete"),  # dqn needs discrete actions
    ({"stepz": 3}, "unknown key 'stepz'"),
    ({"agents": []}, "agents must be a non-empty list"),
    ({"scheduler": {"name": "hyperband"}}, "scheduler must be"),
    ({"agents": [{"agent": "dqn", "random": {"lr": {"loguniform": [0, 1]}}}]}, "low > 0"),
])
def test_a_bad_spec_is_refused_in_one_line_before_any_trial_starts(tmp_path, capsys, change, message):
    spec = {"envs": ["CartPole-v1"], "agents": ["dqn"], "steps": 100, **change}
    path = write_spec(tmp_path / "bad.yaml", **spec)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("modelrl: error:") and "\n" not in err and message in err
    assert not (tmp_path / "out").exists()


def test_a_local_sweep_asking_for_more_than_the_machine_has_is_refused(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    for resources, message in (({"cpu": 10_000}, "more than the"),
                               ({"gpu": 0.5}, "no GPU that torch can use")):
        spec = write_spec(tmp_path / "s.yaml", env="GridWorld-v0", agents=["q-learning"], steps=10,
                          resources=resources)
        with pytest.raises(ConfigError, match=message):
            sweep(spec, tmp_path / "out", progress=False)
        assert not (tmp_path / "out").exists()


def test_without_ray_a_sweep_names_the_extra_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails
    spec = write_spec(tmp_path / "s.yaml", env="GridWorld-v0", agents=["q-learning"], steps=10)
    with pytest.raises(ModelRLError, match=r"pip install 'modelrl\[ray\]'"):
        sweep(spec, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    assert sweep(spec, tmp_path / "out", backend="processes", progress=False)["trials"]["done"] == 1


def test_grid_and_random_search_make_reproducible_variants(tmp_path):
    spec = {"env": "CartPole-v1", "steps": 100, "seeds": [0, 1], "agents": [
        {"agent": "dqn", "grid": {"batch_size": [32, 64]},
         "random": {"lr": {"loguniform": [1e-4, 1e-2]}, "gamma": {"choice": [0.98, 0.99]}}, "samples": 3}]}
    plan = plan_sweep(spec, tmp_path)
    assert len(plan.variants) == 6 and len(plan.trials) == 12
    assert [v.label for v in plan.variants] == [v.label for v in plan_sweep(spec, tmp_path).variants]
    for variant in plan.variants:
        assert 1e-4 <= variant.overrides["lr"] <= 1e-2 and variant.overrides["gamma"] in (0.98, 0.99)
        assert variant.label.startswith(f"dqn batch_size={variant.overrides['batch_size']} lr=")
    assert plan_sweep({**spec, "search_seed": 1}, tmp_path).variants[0].label != plan.variants[0].label
    with pytest.raises(ConfigError, match="samples 2 without a random section"):
        plan_sweep({**spec, "agents": [{"agent": "dqn", "samples": 2}]}, tmp_path)


def test_asha_stops_weak_trials_early_and_lets_the_best_finish(tmp_path):
    pytest.importorskip("ray")
    spec = write_spec(tmp_path / "s.yaml", env="GridWorld-v0", seeds=[0], steps=3000, eval_every=300,
                      eval_episodes=1,
                      agents=[{"agent": "q-learning", "grid": {"lr": [0.5, 0.1, 0.01, 0.001]}}],
                      scheduler={"name": "asha", "grace_period": 300, "reduction_factor": 2})
    result = sweep(spec, tmp_path / "out", progress=False)
    outcomes = {r["label"]: r for r in records(tmp_path / "out").values()}
    assert outcomes["q-learning lr=0.5"]["status"] == "done"  # the best ranks first at every rung
    stopped = [r for r in outcomes.values() if r["status"] == "stopped"]
    assert stopped and all(r["env_steps"] < 3000 for r in stopped)
    assert result["trials"]["stopped"] == len(stopped) and "Stopped early" in result["table"]


def test_a_sweep_never_writes_over_files_it_did_not_make(tmp_path, capsys, monkeypatch):
    spec = write_spec(tmp_path / "s.yaml", env="GridWorld-v0", agents=["q-learning"], steps=10,
                      backend="processes")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "sweep.md").write_text("my notes")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out")]) == 2
    assert "already holds sweep.md" in capsys.readouterr().err
    assert (tmp_path / "out" / "sweep.md").read_text() == "my notes"
    assert main(["sweep", "--resume", str(tmp_path / "nowhere")]) == 2
    assert "holds no sweep to resume" in capsys.readouterr().err

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("modelrl.experiment.sweep.run_in_processes", interrupted)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "cut")]) == 130
    assert f"modelrl sweep --resume {tmp_path / 'cut'}" in capsys.readouterr().err
