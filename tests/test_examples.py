"""Every example runs against the simulator, as a user would run it, so none can rot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("scan_to_jsonl.py", "dossiers in"),
        ("download_files.py", "files of SIRET"),
        ("create_and_wait.py", "created by process"),
        ("fault_drill.py", "no early request"),
    ],
)
def test_example_runs(script: str, expected: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EATTEST_")}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout
