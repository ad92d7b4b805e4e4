"""Every fault x {single call, scan, download}: success with nothing lost or duplicated, or a
typed error; never a hang, an untyped exception, a partial file or a task left behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

import eattest_async as ea
from eattest_async.simulator import FaultAction, Simulator

from .conftest import client_tasks

pytestmark = pytest.mark.anyio

FAULTS: dict[str, dict[str, Any]] = {
    "429 seconds": {"kind": "status", "status": 429, "retry_after": 1},
    "429 http-date": {
        "kind": "status",
        "status": 429,
        "retry_after": 1,
        "retry_after_format": "http-date",
    },
    "500": {"kind": "status", "status": 500},
    "502": {"kind": "status", "status": 502},
    "503 with Retry-After": {"kind": "status", "status": 503, "retry_after": 1},
    "504": {"kind": "status", "status": 504},
    "dropped connection": {"kind": "drop"},
    "truncated body": {"kind": "truncate"},
    "slow body past the timeout": {"kind": "slow", "delay": 1.0},
    "token revoked": {"kind": "revoke"},
    "token expired": {"kind": "expire"},
    "refresh token expired": {"kind": "expire_refresh"},
    "HTML page from a proxy": {"kind": "html", "status": 502},
    "empty body with 200": {"kind": "empty"},
    "malformed JSON": {"kind": "malformed"},
}
OPERATIONS = ["single call", "scan", "download"]


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("fault", list(FAULTS))
async def test_fault_matrix(fault: str, operation: str, tmp_path: Path) -> None:
    async with (
        Simulator(dossiers=300, seed=9) as sim,
        ea.Client(
            sim.environment,
            username=sim.username,
            password=sim.password,
            timeouts=ea.Timeouts(json=0.5, file=0.5),
            retry=ea.RetryPolicy(initial_backoff=0.01, max_backoff=0.05),
        ) as client,
    ):
        baseline = client_tasks()
        # Know the truth first, fault-free.
        expected_ids = sim.live_dossier_ids()
        first = (await client.dossiers.list(page_size=20)).items
        dossier, document = next((d, doc) for d in first for doc in d.documents if doc.files)
        file = document.files[0]
        target_operation = "download_file" if operation == "download" else "list_dossiers"
        sim.faults.add(FaultAction(operation=target_operation, **FAULTS[fault]))
        outcome: object = None
        with anyio.fail_after(30):  # a hang fails the test
            try:
                if operation == "single call":
                    page = await client.dossiers.list(page=2, page_size=50)
                    assert [d.dossier_id for d in page] == expected_ids[100:150]
                elif operation == "scan":
                    async with client.dossiers.scan(page_size=50, concurrency=4) as scan:
                        ids = [d.dossier_id async for d in scan]
                    assert ids == expected_ids  # each exactly once, in order
                else:
                    path = await client.files.download(
                        dossier.dossier_id or 0,
                        document.document_id or 0,
                        file.file_id or 0,
                        dest=tmp_path,
                        expected_size=file.file_size,
                    )
                    assert path.stat().st_size == file.file_size
                outcome = "success"
            except ea.EattestError as error:  # typed at least; the final assertion says which
                outcome = error
        assert not sim.faults.script, "the fault was never met"
        if FAULTS[fault]["kind"] in ("revoke", "expire", "expire_refresh"):
            assert sim.stats.statuses[401] >= 1, "the token fault was not felt"
            assert sum(sim.stats.token_grants.values()) >= 2, "no renewal happened"
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []
    assert client_tasks() == baseline
    # Every fault here is passing: the retry policy is expected to see it through.
    assert outcome == "success", outcome
