"""The benchmarks' --merge: one seed per process, combined into one result without counting a seed twice or
mixing runs of different settings."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from common import merged_runs, shared_settings


def part(seeds, config):
    return {"config": config, "runs": [{"seed": seed, "returns": [float(seed)]} for seed in seeds]}


def test_merge_keeps_every_seed_in_order_and_the_shared_settings():
    parts = [part([0, 1], {"population": 200}), part([2], {"population": 200, "device": "cpu"})]
    assert [r["seed"] for r in merged_runs(parts, ["a", "b"], "runs")] == [0, 1, 2]
    assert shared_settings(parts, ["a", "b"], ("config",)) == {"config": {"population": 200}}


def test_merge_refuses_a_seed_in_two_results():
    parts = [part([0, 1], {}), part([1, 2], {})]
    with pytest.raises(SystemExit, match="seed 1 of 'runs' is in both 'a' and 'b'"):
        merged_runs(parts, ["a", "b"], "runs")


def test_merge_refuses_runs_of_different_settings():
    parts = [part([0], {"population": 200}), part([1], {"population": 500})]
    with pytest.raises(SystemExit, match="'config' differs between 'a'"):
        shared_settings(parts, ["a", "b"], ("config",))
    with pytest.raises(SystemExit, match="differs"):
        shared_settings([part([0], {}), part([1], {"device": "cuda"})], ["a", "b"], ("config",))
