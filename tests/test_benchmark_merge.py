"""The benchmarks' --merge: one seed per process, combined into one result without counting a seed twice or
mixing runs of different settings; a curve in progress continued by a later process."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from common import CurveRecorder, Ours, Protocol, merged_runs, shared_settings


def refused(call, capsys) -> str:
    """The one line a benchmark's bad input ends with (exit 2, as the CLI)."""
    with pytest.raises(SystemExit) as stop:
        call()
    assert stop.value.code == 2
    return capsys.readouterr().err


def part(seeds, config):
    return {"config": config, "runs": [{"seed": seed, "returns": [float(seed)]} for seed in seeds]}


def test_merge_keeps_every_seed_in_order_and_the_shared_settings():
    parts = [part([0, 1], {"population": 200}), part([2], {"population": 200, "device": "cpu"})]
    assert [r["seed"] for r in merged_runs(parts, ["a", "b"], "runs")] == [0, 1, 2]
    assert shared_settings(parts, ["a", "b"], ("config",)) == {"config": {"population": 200}}


def test_merge_refuses_a_seed_in_two_results(capsys):
    parts = [part([0, 1], {}), part([1, 2], {})]
    error = refused(lambda: merged_runs(parts, ["a", "b"], "runs"), capsys)
    assert "seed 1 of 'runs' is in both 'a' and 'b'" in error


def test_merge_refuses_runs_of_different_settings(capsys):
    parts = [part([0], {"population": 200}), part([1], {"population": 500})]
    error = refused(lambda: shared_settings(parts, ["a", "b"], ("config",)), capsys)
    assert "'config' differs between 'a'" in error
    on_cuda = [part([0], {}), part([1], {"device": "cuda"})]
    assert "differs" in refused(lambda: shared_settings(on_cuda, ["a", "b"], ("config",)), capsys)


def test_an_override_that_names_the_default_merges_with_none_and_another_value_does_not():
    from common import without_defaults

    named, unnamed = ({"library": "modelrl", "agent": "muzero", "budget": 20000, "overrides": overrides}
                      for overrides in ({"priority_exponent": "0", "td_steps": "50"}, {"td_steps": "50"}))
    assert without_defaults(named) == without_defaults(unnamed) == unnamed
    other = {**unnamed, "overrides": {"priority_exponent": "1", "td_steps": "50"}}
    assert without_defaults(other) != without_defaults(unnamed)
    # overrides that validate only together (a terminal value needs a discount below 1)
    valued = {"library": "modelrl", "agent": "pets", "budget": 1000,
              "overrides": {"terminal_value": "true", "gamma": "0.99"}}
    assert without_defaults(valued) == valued


def test_a_curve_cut_short_continues_from_its_checkpoint_as_if_never_stopped(tmp_path, monkeypatch, capsys):
    protocol = Protocol("GridWorld-v0", threshold=100.0, eval_every=200, episodes=2)  # never reached
    arm = Ours("q-learning", 1000, {"epsilon": 0.2})
    whole = arm.curve(protocol, 3, "q")
    checkpoint = tmp_path / "q-seed3.pt"
    add = CurveRecorder.add

    def stop_at_the_third(recorder, *args):
        if len(recorder.curve["env_steps"]) == 2:
            raise KeyboardInterrupt
        add(recorder, *args)

    monkeypatch.setattr(CurveRecorder, "add", stop_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        arm.curve(protocol, 3, "q", checkpoint)
    assert checkpoint.exists() and checkpoint.with_suffix(".json").exists()
    monkeypatch.setattr(CurveRecorder, "add", add)
    continued = arm.curve(protocol, 3, "q", checkpoint)
    assert continued["env_steps"] == whole["env_steps"] == [200, 400, 600, 800, 1000]
    assert continued["eval_return"] == whole["eval_return"] and continued["resumed_at"] == [400]
    assert continued["final_metrics"] == whole["final_metrics"]
    assert not checkpoint.exists() and not checkpoint.with_suffix(".json").exists()  # done: removed
    arm.curve(protocol, 3, "q", checkpoint)  # another partial curve, of other settings, is refused
    monkeypatch.setattr(CurveRecorder, "add", stop_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        arm.curve(protocol, 3, "q", checkpoint)
    other = Ours("q-learning", 1000, {"epsilon": 0.3})
    error = refused(lambda: other.curve(protocol, 3, "q", checkpoint), capsys)
    assert "holds a curve of other settings" in error


def test_a_full_budget_curve_runs_on_past_the_threshold_and_agrees_where_the_stopped_one_ends():
    protocol = Protocol("GridWorld-v0", threshold=-1e9, eval_every=200, episodes=2)  # held at once
    arm = Ours("q-learning", 1000, {"epsilon": 0.2})
    stopped, whole = arm.curve(protocol, 3, "q"), arm.curve(protocol, 3, "q", full_budget=True)
    assert stopped["env_steps"] == [200, 400] and whole["env_steps"] == [200, 400, 600, 800, 1000]
    assert whole["eval_return"][:2] == stopped["eval_return"]


def test_resume_without_a_results_file_starts_the_study(capsys):
    from common import resumed_study

    fresh = {"protocol": {}, "arms": {}, "curves": {}}
    assert resumed_study("parts/no_such_study_anywhere", fresh) is fresh
    assert "starting it" in capsys.readouterr().out


def test_a_study_cut_short_is_not_started_over_without_resume(tmp_path, monkeypatch, capsys):
    import json

    import common

    monkeypatch.setattr(common, "RESULTS", tmp_path)
    protocol = {"env_id": "Pendulum-v1", "threshold": -200.0, "eval_every": 500, "hold": 2, "episodes": 10}
    arms = {name: {"library": "modelrl", "agent": name, "budget": 1000} for name in ("td-mpc2", "sac")}
    curve = {"seed": 0, "env_steps": [500], "eval_return": [-900.0], "seconds": 1.0}
    cut_short = {"protocol": protocol, "arms": arms, "seeds": [0], "curves": {"td-mpc2": [curve], "sac": []}}
    (tmp_path / "study.json").write_text(json.dumps(cut_short))
    fresh = {"protocol": protocol, "arms": arms, "seeds": [0], "curves": {"td-mpc2": [], "sac": []}}
    assert "1 curves done, 1 to run, the first 'sac' seed 0): add --resume" in refused(
        lambda: common.refuse_to_restart_a_study_cut_short("study", fresh), capsys)
    # a finished study, or one of another protocol, is started over as asked
    (tmp_path / "study.json").write_text(json.dumps({**cut_short, "curves": {"td-mpc2": [curve],
                                                                            "sac": [curve]}}))
    common.refuse_to_restart_a_study_cut_short("study", fresh)
    (tmp_path / "study.json").write_text(json.dumps(cut_short))
    other = {**fresh, "protocol": {**protocol, "eval_every": 200}}
    common.refuse_to_restart_a_study_cut_short("study", other)


def test_a_bad_setting_ends_the_study_before_any_learner_runs(capsys):
    from common import check_configs

    check_configs({"q": Ours("q-learning", 1000, {"epsilon": 0.2})})
    arms = {"q": Ours("q-learning", 1000, {"epsilon": 0.2}),
            "bad": Ours("pets", 1000, {"value_source": "critic"})}
    error = refused(lambda: check_configs(arms), capsys)
    assert "error: bad: value_source='critic' takes the terminal value" in error


def test_a_merged_full_budget_study_reports_each_arms_return_at_the_budget(tmp_path, monkeypatch):
    import json

    import common

    monkeypatch.setattr(common, "RESULTS", tmp_path)
    protocol = {"env_id": "Pendulum-v1", "threshold": -200.0, "eval_every": 1000, "hold": 2, "episodes": 10}
    for seed, final in ((0, -130.0), (1, -150.0)):
        curve = {"seed": seed, "env_steps": [1000], "eval_return": [final], "seconds": 1.0}
        part = {"protocol": protocol, "full_budget": True, "comparisons": [],
                "arms": {"H=3": {"library": "modelrl", "agent": "pets", "budget": 1000}},
                "curves": {"H=3": [curve]}}
        (tmp_path / f"seed{seed}.json").write_text(json.dumps(part))
    record = common.merged_study(["seed0", "seed1"], into="both")
    arm = common.summarize(record)["arms"]["H=3"]
    assert arm["return_at_budget"] == {0: -130.0, 1: -150.0} and arm["median_return_at_budget"] == -140.0
    common.save_study(record, "both", "returns at the budget")
    saved = json.loads((tmp_path / "both.json").read_text())
    assert saved["full_budget"] and (tmp_path / "both.png").stat().st_size > 0


def test_a_published_figure_is_drawn_kept_through_a_merge_and_refreshed_on_resume(tmp_path, monkeypatch):
    import json

    import common
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setattr(common, "RESULTS", tmp_path)
    protocol = {"env_id": "dmc/walker-walk-v0", "threshold": 500.0, "eval_every": 5000, "hold": 2,
                "episodes": 10}
    published = [{"label": "paper", "env_steps": 100_000, "return": 475, "spread": None}]
    for seed in (0, 1):
        curve = {"seed": seed, "env_steps": [5000, 10000], "eval_return": [100.0, 200.0], "seconds": 1.0}
        part = {"protocol": protocol, "published": published, "comparisons": [], "seeds": [seed],
                "arms": {"dreamer": {"library": "modelrl", "agent": "dreamer", "budget": 10000}},
                "curves": {"dreamer": [curve]}}
        (tmp_path / f"seed{seed}.json").write_text(json.dumps(part))
    record = common.merged_study(["seed0", "seed1"], into="both")
    assert record["published"] == published
    record["summary"] = common.summarize(record)
    fig, ax = plt.subplots()
    common.plot_curves(record, ax, "title", log_x=False)
    assert "paper" in [text.get_text() for text in ax.get_legend().get_texts()]
    plt.close(fig)
    newer = [{**published[0], "return": 480}]
    fresh = {"protocol": protocol, "arms": {}, "comparisons": [], "seeds": [0], "published": newer}
    resumed = common.resumed_study("seed0", fresh)
    assert resumed["published"] == newer


def test_a_results_name_outside_the_results_folder_is_refused(capsys):
    import argparse

    from common import study_arguments

    parser = argparse.ArgumentParser()
    study_arguments(parser, default_name="study")
    args = parser.parse_args(["--name", "parts/study_seed0", "--merge", "parts/a", "b"])
    assert (args.name, args.merge) == ("parts/study_seed0", ["parts/a", "b"])
    for bad in (["--name", "/tmp/study"], ["--name", "../study"], ["--merge", "parts/../../study"],
                ["--name", ""]):
        assert "is not a name inside benchmarks/results" in refused(lambda bad=bad: parser.parse_args(bad),
                                                                    capsys)
