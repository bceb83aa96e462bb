import subprocess
import sys

import pytest
import torch

import modelrl
from modelrl import threads
from modelrl.errors import ConfigError


@pytest.fixture
def unchosen(monkeypatch):
    """This process as if nothing had chosen its threads yet; torch's own count is put back afterwards."""
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "_chosen", False)
    monkeypatch.setattr(threads, "_torch_default", before)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    yield
    torch.set_num_threads(before)


def test_the_default_is_half_the_usable_cores_from_one_to_four(monkeypatch, unchosen):
    for cores, expected in ((1, 1), (2, 1), (3, 1), (8, 4), (64, 4)):
        monkeypatch.setattr(threads, "usable_cores", lambda cores=cores: cores)
        assert threads.default_threads() == expected
    monkeypatch.setattr(threads, "usable_cores", lambda: 4)
    modelrl.make_agent("q-learning", env="GridWorld-v0")
    assert torch.get_num_threads() == 2


def test_a_users_own_choice_wins(monkeypatch, unchosen):
    monkeypatch.setattr(threads, "usable_cores", lambda: 8)
    torch.set_num_threads(3)  # the user's own call, before modelrl's first agent
    modelrl.make_agent("q-learning", env="GridWorld-v0")
    assert torch.get_num_threads() == 3
    modelrl.make_agent("q-learning", env="GridWorld-v0", threads=2)  # an explicit argument always applies
    assert torch.get_num_threads() == 2
    modelrl.make_agent("q-learning", env="GridWorld-v0")  # ... and stays chosen
    assert torch.get_num_threads() == 2


def test_omp_num_threads_is_respected(monkeypatch, unchosen):
    monkeypatch.setattr(threads, "usable_cores", lambda: 8)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    torch.set_num_threads(3)
    modelrl.make_agent("q-learning", env="GridWorld-v0")
    assert torch.get_num_threads() == 3


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises(ConfigError, match="threads must be a whole number >= 1"):
        modelrl.make_agent("q-learning", env="GridWorld-v0", threads=bad)


def test_the_cli_sets_threads_in_a_fresh_process(tmp_path):
    code = ("import torch, modelrl.cli as c; c.main(['train', 'q-learning', '--env', 'GridWorld-v0', "
            f"'--steps', '20', '--run-dir', {str(tmp_path / 'run')!r}, '--no-progress', '--threads', '2']); "
            "print('threads', torch.get_num_threads())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                            env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert "threads 2" in result.stdout
    assert "threads: 2" in (tmp_path / "run" / "config.yaml").read_text()


def test_building_an_agent_flushes_denormal_floats_to_zero():
    # weight decay drives unused weights towards zero, where the CPU's arithmetic on denormals is slow
    code = ("import torch, modelrl; tiny = lambda: (torch.tensor([1e-40]) * 1.0).item(); before = tiny(); "
            "modelrl.make_agent('q-learning', env='GridWorld-v0'); print(before, tiny())")
    before, after = map(float, subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                              check=True).stdout.split())
    assert before > 0 and after == 0.0
