"""The README's examples run as written, and its test command is .ci/run's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import assert_child_ok, run_python

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.M | re.S)


def test_readme_has_examples() -> None:
    assert len(python_blocks()) >= 3


@pytest.mark.parametrize("number", range(len(python_blocks())))
def test_readme_example_runs(number: int) -> None:
    code = python_blocks()[number]
    if "numpy" in code:
        pytest.importorskip("numpy")
    assert_child_ok(run_python(code, timeout=60))


def test_ci_runs_the_readme_test_command() -> None:
    commands = re.findall(r"^```sh\n(.*?)\n```", README.read_text(), flags=re.M | re.S)
    test_command = next(c for c in commands if "pytest" in c)
    ci = ROOT / ".ci" / "run"
    if not ci.exists():
        pytest.skip("not a source checkout (e.g. testing an installed wheel)")
    # The same line, whatever its indentation in the script.
    assert test_command in [line.strip() for line in ci.read_text().splitlines()]
