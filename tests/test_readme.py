from pathlib import Path

import gymnasium as gym

README = Path(__file__).resolve().parents[1] / "README.md"


def python_block_after(heading: str) -> str:
    section = README.read_text(encoding="utf-8").split(heading, 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readmes_python_api_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # it saves under runs/
    namespace: dict = {}
    code = compile(python_block_after("## Python API"), str(README), "exec")
    exec(code, namespace)  # noqa: S102  (the README's own code, run as a user would)
    assert namespace["history"][-1]["eval_return"] == 1.0  # as its comment says
    assert namespace["agent"].env_steps >= 3000 and (tmp_path / "runs" / "dyna" / "ckpt.pt").is_file()


def test_the_readmes_other_python_examples_run_as_written():
    """The agents made in the API section's later blocks, and Dreamer's `policy` call, as a user copies
    them (each block runs after the ones before it, as in one session)."""
    section = README.read_text(encoding="utf-8").split("## Python API", 1)[1].split("## Command line", 1)[0]
    blocks = [part.split("```", 1)[0] for part in section.split("```python\n")[1:]]
    assert len(blocks) >= 3
    if "MyEnv-v0" not in gym.registry:  # the README's stand-in for a user's own env
        gym.register("MyEnv-v0", entry_point="gymnasium.envs.classic_control.pendulum:PendulumEnv",
                     max_episode_steps=200)
    namespace: dict = {}
    exec(compile("import modelrl\n" + "\n".join(blocks[1:]), str(README), "exec"), namespace)  # noqa: S102
    assert namespace["agent"].agent_id == "dreamer" and namespace["state"]["deter"].shape[0] == 1
