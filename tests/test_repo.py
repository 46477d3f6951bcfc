"""The repository's promises about itself: README commands and CI agree."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _commands(text):
    return re.findall(r"```bash\n(.*?)\n```", text, flags=re.S)


def test_ci_runs_the_readme_test_command_after_the_readme_install():
    readme = (ROOT / "README.md").read_text()
    setup, tests = _commands(readme)[:2]
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests.strip() in ci.splitlines()
    assert "pip install --quiet --disable-pip-version-check torch==2.13.0 triton==3.6.0 -e \".[test]\"" in ci
    assert "pip install torch==2.13.0 triton==3.6.0 -e \".[test]\"" in setup
    assert "kernelgen build specs/tq4.yaml" in setup and "kernelgen demo" in setup
