"""Promises about the repository itself: the README's commands, exports, lint and types."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import eattest_async

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    setup = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", setup)


def test_readme_has_two_setup_commands_and_ci_runs_the_test_one() -> None:
    commands = readme_commands()
    assert len(commands) == 2
    assert commands[0].endswith("eattest demo")
    assert commands[1].endswith("python -m pytest")
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert commands[1] in ci_lines


def test_public_names_are_sorted_and_exported() -> None:
    names = eattest_async.__all__
    assert names == sorted(names)
    for name in names:
        assert hasattr(eattest_async, name), name
    public = {n for n in dir(eattest_async) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(names), public - set(names)
    assert (ROOT / "eattest_async" / "py.typed").exists()


@pytest.mark.parametrize(
    "command",
    [["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy"]],
    ids=["ruff", "ruff-format", "mypy-strict"],
)
def test_code_is_lint_and_type_clean(command: list[str]) -> None:
    executable = shutil.which(command[0], path=str(Path(sys.executable).parent))
    assert executable, f"{command[0]} is part of the test dependency group"
    result = subprocess.run(
        [executable, *command[1:]], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_public_name_is_documented() -> None:
    undocumented = []
    for name in eattest_async.__all__:
        obj = getattr(eattest_async, name)
        if callable(obj) and not (obj.__doc__ or "").strip():
            undocumented.append(name)
        for attribute, member in vars(obj).items() if isinstance(obj, type) else ():
            if (
                not attribute.startswith("_")
                and callable(member)
                and not (member.__doc__ or "").strip()
            ):
                undocumented.append(f"{name}.{attribute}")
    assert undocumented == []
