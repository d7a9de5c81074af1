"""The README's Python example runs as it is written (from the repository's root)."""
import os
import re
import subprocess
import sys

SRC = os.environ.get("SRC", os.path.join(os.path.dirname(__file__), "..", ".."))


def readme_example():
    with open(os.path.join(SRC, "README.md")) as f:
        text = f.read()
    section = text.split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the Python section holds one example"
    return blocks[0]


def test_the_readme_example_is_at_most_20_lines():
    assert len(readme_example().strip().splitlines()) <= 20


def test_the_readme_example_runs():
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(os.path.abspath(p) for p in paths if p))
    r = subprocess.run([sys.executable, "-c", readme_example()], cwd=SRC, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "balancedness" in r.stdout and "copies to send" in r.stdout
