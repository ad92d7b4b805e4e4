"""Cancellation at every point of a call, a scan and a download leaks nothing."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

import eattest_async as ea
from eattest_async.simulator import Simulator

from .conftest import client_tasks

pytestmark = pytest.mark.anyio

# Cancel instants swept across the whole life of a request served with 20 ms of latency.
INSTANTS = [i * 0.004 for i in range(16)]


def connections_in_use(client: ea.Client) -> int:
    session = client._transport._session
    assert session is not None
    return len(session.connector._acquired)  # type: ignore[union-attr]


async def test_cancelled_anywhere_nothing_leaks(tmp_path: Path) -> None:
    async with (
        Simulator(dossiers=400, latency=0.02) as sim,
        ea.Client(sim.environment, username=sim.username, password=sim.password) as client,
    ):
        first = (await client.dossiers.list(page_size=20)).items
        dossier, document = next((d, doc) for d in first for doc in d.documents if doc.files)
        baseline = client_tasks()

        async def single() -> None:
            await client.dossiers.get(dossier.dossier_id or 0)

        async def scan() -> None:
            async for _ in client.dossiers.scan(page_size=20, concurrency=8):
                pass

        async def download() -> None:
            await client.files.download(
                dossier.dossier_id or 0,
                document.document_id or 0,
                document.files[0].file_id or 0,
                dest=tmp_path / "files/",
            )

        outcomes: dict[str, set[str]] = {}
        for name, work in {"single": single, "scan": scan, "download": download}.items():
            for instant in INSTANTS:
                with anyio.move_on_after(instant) as scope:
                    await work()
                outcomes.setdefault(name, set()).add(
                    "cancelled" if scope.cancelled_caught else "done"
                )
                assert client_tasks() == baseline, (name, instant)
                assert connections_in_use(client) == 0, (name, instant)
                leftovers = [p.name for p in tmp_path.rglob("*.part")]
                assert leftovers == [], (name, instant)
        # The sweep did cancel each kind of work somewhere in its life.
        assert all("cancelled" in seen for seen in outcomes.values()), outcomes
        # And the client is still perfectly usable afterwards.
        assert (await client.dossiers.get(dossier.dossier_id or 0)).dossier_id == dossier.dossier_id


async def test_calls_cancelled_in_the_rate_gate_leave_no_slot_behind() -> None:
    """Twenty calls queued in the gate (5 requests/s) and cancelled before any is sent:
    the next call waits for the next slot, not four seconds of calls that never went
    (what a web app's disconnected callers would cost everyone else)."""
    async with (
        Simulator(dossiers=20) as sim,
        ea.Client(
            sim.environment,
            username=sim.username,
            password=sim.password,
            limits=ea.Limits(max_rate=5.0),
        ) as client,
    ):
        await client.dossiers.list()
        async with anyio.create_task_group() as tasks:
            for _ in range(20):
                tasks.start_soon(client.dossiers.list)
            await anyio.wait_all_tasks_blocked()  # each asleep until its slot, or sent
            tasks.cancel_scope.cancel()
        sent = client.rate.requests
        assert sent <= 2  # the first call, and one of the twenty at most
        waited = client.rate.waited
        await client.dossiers.list()
        # One interval (0.2 s), with ample room for a slow loop; 4 s without the slots back.
        assert client.rate.waited - waited < 1.0
        assert client.rate.requests == sent + 1
