"""`eattest scan` survives kill -9; `eattest sync` keeps a watermark. Real processes, real files."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import anyio
import orjson
import pytest

from eattest_async.simulator import Simulator

pytestmark = pytest.mark.anyio

COMMAND = "from eattest_async.cli import main; main()"


def connection(sim: Simulator) -> dict[str, str]:
    return {
        **os.environ,
        "COLUMNS": "80",
        "EATTEST_BASE_URL": sim.base_url,
        "EATTEST_TOKEN_URL": sim.token_url,
        "EATTEST_USERNAME": sim.username,
        "EATTEST_PASSWORD": sim.password,
    }


async def start(sim: Simulator, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        COMMAND,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env=connection(sim),
    )


async def eattest(sim: Simulator, *args: str) -> tuple[int, str, str]:
    process = await start(sim, *args)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, out.decode(), err.decode()


def items_in(checkpoint: Path) -> int:
    try:
        data = orjson.loads(checkpoint.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return 0  # not there yet (it is replaced atomically, never seen half written)
    return sum(stop - start for start, stop in data["done"])


async def test_kill_9_mid_scan_then_resume_loses_and_repeats_nothing(tmp_path: Path) -> None:
    async with Simulator(seed=3, dossiers=3000, latency=0.02) as sim:
        out = tmp_path / "dossiers.jsonl"
        checkpoint = tmp_path / "dossiers.jsonl.checkpoint.json"
        args = ("scan", "dossiers", "--out", str(out), "--page-size", "20", "--concurrency", "2")
        process = await start(sim, *args)
        try:
            with anyio.fail_after(90):  # a checkpoint written while the scan runs
                while items_in(checkpoint) < 100:  # noqa: ASYNC110 - another process writes
                    await asyncio.sleep(0.02)
        finally:
            process.kill()
            await process.communicate()
        assert process.returncode == -signal.SIGKILL
        written = out.read_bytes().count(b"\n")
        assert items_in(checkpoint) <= written < 3000
        with out.open("ab") as handle:  # what a kill in the middle of a write leaves
            handle.write(b'{"dossierId": 12')
        code, _, err = await eattest(sim, *args, "--resume", str(checkpoint))
        assert code == 0, err
        ids = [orjson.loads(line)["dossierId"] for line in out.read_bytes().splitlines()]
        assert len(ids) == len(set(ids)), "duplicated"
        assert sorted(ids) == sorted(sim.live_dossier_ids()), "lost"
        assert not checkpoint.exists()  # complete: nothing left to resume


async def test_sync_twice_appends_exactly_the_changed_dossiers(tmp_path: Path) -> None:
    async with Simulator(seed=4, dossiers=1500) as sim:
        state, out = tmp_path / "sync.state.json", tmp_path / "changes.jsonl"
        args = ("sync", "--state", str(state), "--out", str(out))
        code, _, err = await eattest(sim, *args)
        assert code == 0, err
        assert "1500 changed dossiers" in err
        assert out.read_bytes().count(b"\n") == 1500
        first_state = state.read_bytes()
        changed = sim.live_dossier_ids()[10:17]
        sim.touch_dossiers(changed)
        code, _, err = await eattest(sim, *args)
        assert code == 0, err
        lines = out.read_bytes().splitlines()
        assert sorted(orjson.loads(line)["dossierId"] for line in lines[1500:]) == changed
        assert state.read_bytes() != first_state
        code, _, err = await eattest(sim, *args)  # nothing changed since
        assert code == 0, err
        assert "0 changed dossiers" in err
        state.write_text("{not json")
        code, _, err = await eattest(sim, *args)
        assert code == 2
        assert "not a sync state file" in err
