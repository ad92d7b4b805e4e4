"""The eattest command line, run as users run it (a process of its own)."""

from __future__ import annotations

import asyncio
import csv
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from eattest_async.simulator import SimulatorProcess

pytestmark = pytest.mark.anyio


async def eattest(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from eattest_async.cli import main; main()",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "120", **(env or {})},
        cwd=cwd,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, out.decode(), err.decode()


async def test_demo_scans_every_dossier_once_and_writes_them(tmp_path: Path) -> None:
    code, out, err = await eattest("demo", "--dossiers", "3000", "--rate-limit", "20", cwd=tmp_path)
    assert code == 0, err
    assert "3,000 of 3,000, each exactly once: yes" in out
    assert "requests before a Retry-After deadline: 0" in out
    lines = (tmp_path / "dossiers.jsonl").read_bytes().splitlines()
    assert len({orjson.loads(line)["dossierId"] for line in lines}) == 3000


@pytest.fixture
async def remote() -> AsyncIterator[SimulatorProcess]:
    async with SimulatorProcess("--dossiers", "700", "--password", "cli-secret-pw") as sim:
        yield sim


def connection(sim: SimulatorProcess) -> dict[str, str]:
    return {
        "EATTEST_BASE_URL": sim.base_url,
        "EATTEST_TOKEN_URL": sim.values["EATTEST_TOKEN_URL"],
        "EATTEST_USERNAME": sim.username,
        "EATTEST_PASSWORD": sim.password,
    }


async def test_scan_to_jsonl_csv_and_stdout(remote: SimulatorProcess, tmp_path: Path) -> None:
    env = connection(remote)
    code, _, err = await eattest(
        "scan", "dossiers", "--out", str(tmp_path / "d.jsonl"), "--page-size", "50", env=env
    )
    assert code == 0, err
    assert len((tmp_path / "d.jsonl").read_bytes().splitlines()) == 700
    code, _, err = await eattest("scan", "dossiers", "--out", str(tmp_path / "d.csv"), env=env)
    assert code == 0, err
    with (tmp_path / "d.csv").open(encoding="utf-8") as exported:
        rows = list(csv.DictReader(exported))
    assert len(rows) == 700
    assert {"dossierId", "siret", "I001", "documents_missing"} <= set(rows[0])
    code, out, err = await eattest("scan", "thirdparties", "--monitored", env=env)
    assert code == 0, err
    assert all(orjson.loads(line)["monitored"] for line in out.splitlines())
    assert "cli-secret-pw" not in out + err


async def test_whoami_and_clear_errors_with_exit_codes(remote: SimulatorProcess) -> None:
    env = connection(remote)
    code, out, _ = await eattest("whoami", env=env)
    assert code == 0
    assert "account 119631" in out
    assert "token lifetime: 1800 s" in out
    code, _, err = await eattest("whoami", env={**env, "EATTEST_PASSWORD": "wrong"})
    assert code == 3
    assert "invalid_grant" in err
    assert "Traceback" not in err
    code, _, err = await eattest("scan", "dossiers", "--siren", "123", env=env)
    assert code == 2
    assert "siren" in err
    code, _, err = await eattest(
        "whoami", env={k: v for k, v in env.items() if k != "EATTEST_PASSWORD"}
    )
    assert code == 2
    assert "EATTEST_PASSWORD" in err
