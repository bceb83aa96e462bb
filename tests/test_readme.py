from pathlib import Path

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
