"""Incremental sync: the dossiers changed since the last run, each once, and a watermark."""

from __future__ import annotations

import datetime as dt
import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest

import eattest_async as ea
from eattest_async._sync import DEFAULT_MARGIN, MAX_MARGIN, ChangeTracker, ChangeWindow
from eattest_async.cli import _load_watermark
from eattest_async.models.scans import MAX_EDGE, WATERMARK_BYTES, environment_id
from eattest_async.simulator import Simulator

from . import hostile
from .conftest import client_for
from .test_scan_servers import Answer, serve

pytestmark = pytest.mark.anyio

PROD_URL = "https://rs.e-attestations.com/api/v1"


async def sync(
    client: ea.Client, since: ea.Watermark | None, **options: object
) -> tuple[list[int], ea.Changes[ea.Dossier]]:
    changes = client.dossiers.changes(since=since, **options)  # type: ignore[call-overload]
    ids = [d.dossier_id or 0 async for d in changes]
    return ids, changes


def saved(watermark: ea.Watermark | None) -> ea.Watermark:
    """Through JSON, as a state file keeps it."""
    assert watermark is not None
    return ea.Watermark.from_json(orjson.loads(orjson.dumps(watermark.to_json())))


async def test_a_second_run_sees_exactly_the_dossiers_changed_since(
    sim: Simulator, client: ea.Client
) -> None:
    first, changes = await sync(client, None)
    assert sorted(first) == sorted(sim.live_dossier_ids())
    assert changes.report.complete
    watermark = saved(changes.next_watermark)

    # Changes happen: updates and stops through the API, creations.
    monitored = [
        d.dossier_id or 0 async for d in client.dossiers.scan(monitored=True, page_size=500)
    ]
    changed = set(monitored[100:105]) | set(monitored[700:702])
    for dossier_id in sorted(changed)[:5]:
        await client.dossiers.update(dossier_id, description="changed by the test")
    for dossier_id in sorted(changed)[5:]:
        await client.dossiers.stop(dossier_id)
    changed |= set(sim.insert_dossiers(3))

    second, changes = await sync(client, watermark)
    assert sorted(second) == sorted(changed)  # exactly those, each once
    watermark = saved(changes.next_watermark)
    third, changes = await sync(client, watermark)
    assert third == []
    assert changes.next_watermark is not None


async def test_changes_during_a_run_are_caught_by_the_next(sim: Simulator) -> None:
    async with client_for(sim) as client:
        _, changes = await sync(client, None)
        watermark = saved(changes.next_watermark)
        # Every 3rd page request, 4 dossiers change: some under the scan's feet.
        sim.faults.drift_every, sim.faults.drift_touch = 3, 4
        during, changes = await sync(client, watermark, page_size=20)
        sim.faults.drift_every = 0
        touched = set(sim.touched)
        assert touched
        after, _ = await sync(client, saved(changes.next_watermark))
        # No change lost: each touched dossier came with its last change in one run or
        # the other; nothing twice in a run.
        assert len(during) == len(set(during))
        assert touched <= set(during) | set(after)


async def test_an_interrupted_run_gives_no_watermark(sim: Simulator) -> None:
    async with client_for(sim, retry=ea.RetryPolicy(attempts=2, initial_backoff=0.01)) as client:
        changes = client.dossiers.changes(page_size=100, concurrency=1)
        with pytest.raises(ea.ScanError):  # noqa: PT012 - the loop raises
            async for dossier in changes:
                if dossier.dossier_id == sim.live_dossier_ids()[250]:
                    sim.faults.error_rate, sim.faults.error_statuses = 1.0, (500,)
        assert changes.next_watermark is None


async def test_sync_arguments_are_checked_before_anything_is_sent(
    sim: Simulator, client: ea.Client
) -> None:
    before = sim.stats.total_requests
    mark = ea.Watermark(changed_at=dt.datetime(2024, 1, 1), filters=(("monitored", "true"),))
    for kwargs in (
        {"since": dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)},
        {"since": mark},  # made with other filters
        {"since": "2024-01-01"},
        {"since": {"version": 99}},
        {"margin": dt.timedelta(seconds=-1)},
        {"margin": MAX_MARGIN + dt.timedelta(seconds=1)},  # seconds given as days, say
        {"margin": dt.timedelta.max},
        {"state_last_change_date": "2024-01-01"},
        {"dossier_reference": "x" * 5000},  # more than a watermark keeps
    ):
        with pytest.raises(ea.InvalidInputError):
            client.dossiers.changes(**kwargs)
    assert sim.stats.total_requests == before


# -- a stamp from a broken node's clock -----------------------------------------------------

FAR = "9999-12-31T23:59:59"


def stamped(stamps: dict[int, str]) -> Callable[[int, int], Answer]:
    """A listing of the dossiers in ``stamps`` (read at each request: it may change)."""

    def behave(page: int, size: int) -> Answer:
        items = [{"dossierId": k, "stateLastChangeDate": v} for k, v in sorted(stamps.items())]
        content = items[page * size : (page + 1) * size]
        return content, {"page": page, "size": size, "totalElements": len(items)}

    return behave


async def test_a_stamp_in_the_future_loses_no_later_change() -> None:
    stamps = {1: "2026-01-20T10:00:00", 2: "2026-01-21T10:00:00", 3: FAR}
    async for _server, client in serve(stamped(stamps)):
        changes = client.dossiers.changes(raw=True)
        assert sorted([d["dossierId"] async for d in changes]) == [1, 2, 3]
        assert changes.report.complete
        watermark = saved(changes.next_watermark)
        assert watermark.changed_at == dt.datetime(2026, 1, 21, 10)  # not 9999
        assert any(FAR in w for w in changes.report.warnings)  # delivered, said, not trusted

        stamps[4] = dt.datetime.now().replace(microsecond=0).isoformat()  # a real change
        changes = client.dossiers.changes(since=watermark, raw=True)
        assert sorted([d["dossierId"] async for d in changes]) == [3, 4]
        assert saved(changes.next_watermark).changed_at.isoformat() == stamps[4]


def test_a_saved_watermark_in_the_future_is_not_trusted() -> None:
    now = dt.datetime(2026, 11, 29, 18, 0)
    poisoned = ea.Watermark(changed_at=dt.datetime(9999, 12, 31, 23, 59, 59), edge=((3, FAR),))
    window = ChangeWindow.of(poisoned, margin=DEFAULT_MARGIN, filters=(), now=now)
    assert window.since is None  # everything is read again
    assert window.query_filters() == {}
    assert window.warnings
    # Within the margin of the run's start (clocks differ), a stamp is trusted.
    tracker = ChangeTracker(ChangeWindow.of(None, margin=DEFAULT_MARGIN, filters=(), now=now))
    for item_id, stamp in ((1, now + DEFAULT_MARGIN), (2, now + DEFAULT_MARGIN * 2)):
        assert tracker.admit({"dossierId": item_id, "stateLastChangeDate": stamp.isoformat()})
    watermark = tracker.watermark()
    assert watermark is not None
    assert watermark.changed_at == now + DEFAULT_MARGIN
    assert tracker.future == 1


# -- stamps and watermarks at the edges of datetime's range ---------------------------------


async def test_a_watermark_at_year_1_reads_everything_and_a_stamp_there_is_kept() -> None:
    stamps = {1: "0001-01-01T00:00:00", 2: "0001-01-01T00:05:00", 3: "2026-01-20T10:00:00"}
    async for _server, client in serve(stamped(stamps)):
        for since in (None, dt.datetime.min, ea.Watermark(changed_at=dt.datetime.min)):
            changes = client.dossiers.changes(since=since, margin=MAX_MARGIN, raw=True)
            assert sorted([d["dossierId"] async for d in changes]) == [1, 2, 3]
            assert saved(changes.next_watermark).changed_at == dt.datetime(2026, 1, 20, 10)
        del stamps[3]  # the latest change at year 1: its margin reaches before year 1
        changes = client.dossiers.changes(raw=True)
        assert sorted([d["dossierId"] async for d in changes]) == [1, 2]
        watermark = saved(changes.next_watermark)
        assert watermark.changed_at == dt.datetime(1, 1, 1, 0, 5)
        assert sorted(watermark.edge) == [(1, stamps[1]), (2, stamps[2])]
        changes = client.dossiers.changes(since=watermark, raw=True)
        assert [d async for d in changes] == []  # each once


def test_a_run_starting_at_year_9999_trusts_stamps_up_to_its_end() -> None:
    now = dt.datetime.max - dt.timedelta(minutes=1)
    tracker = ChangeTracker(ChangeWindow.of(None, margin=MAX_MARGIN, filters=(), now=now))
    assert tracker.window.ceiling == dt.datetime.max
    assert tracker.admit({"dossierId": 1, "stateLastChangeDate": dt.datetime.max.isoformat()})
    assert tracker.future == 0
    watermark = tracker.watermark()
    assert watermark is not None
    assert watermark.changed_at == dt.datetime.max


# -- many dossiers sharing one stamp (a bulk update) ----------------------------------------


def test_a_watermark_always_fits_what_the_cli_reads_back(tmp_path: Path) -> None:
    # The longest watermark there can be: every pair at its longest, filters at the bound.
    largest = ea.Watermark(
        changed_at=dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
        edge=tuple((2**62, f"9999-12-31T23:59:59.{i:06d}") for i in range(MAX_EDGE)),
        filters=(("q", "\x00" * 2700),),
        account=2**62,
        environment="f" * 16,
    )
    for written in (orjson.dumps(largest.to_json()), json.dumps(largest.to_json()).encode()):
        assert len(written) <= WATERMARK_BYTES
    state = tmp_path / "state.json"
    state.write_bytes(orjson.dumps(largest.to_json()))
    assert _load_watermark(state) == largest  # the CLI's own reader, its own cap
    for bad in (
        {"edge": ((1, "2026-01-01T00:00:00"),) * (MAX_EDGE + 1)},
        {"edge": ((2**62 + 1, "2026-01-01T00:00:00"),)},
        {"edge": ((True, "2026-01-01T00:00:00"),)},
        {"edge": ((1, "x" * 100),)},
        {"filters": (("q", "x" * 20_000),)},
        {"account": 0},
        {"environment": "https://rs.e-attestations.com/api/v1"},
    ):
        with pytest.raises(ea.InvalidInputError):
            ea.Watermark(changed_at=dt.datetime(2026, 1, 1), **bad)


def test_an_edge_written_longer_by_an_earlier_version_is_read_not_refused() -> None:
    old = {
        "version": 1,
        "changed_at": "2026-01-01T12:00:00",
        "edge": [
            [i, "2026-01-01T11:59:00" if i % 2 else "2026-01-01T12:00:00"] for i in range(30_000)
        ],
        "filters": [],
    }
    watermark = ea.Watermark.from_json(old)
    assert len(watermark.edge) == MAX_EDGE
    # The pairs of the latest stamp are all kept: the older ones' dossiers come again.
    assert sum(stamp == "2026-01-01T12:00:00" for _, stamp in watermark.edge) == 15_000


def test_the_tracker_keeps_bounded_memory_and_says_what_comes_again() -> None:
    now = dt.datetime(2026, 11, 29, 18, 0)
    stamp = (now - dt.timedelta(hours=1)).isoformat()
    tracker = ChangeTracker(ChangeWindow.of(None, margin=DEFAULT_MARGIN, filters=(), now=now))
    tracemalloc.start()
    try:
        for i in range(120_000):
            assert tracker.admit({"dossierId": 10**12 + i, "stateLastChangeDate": stamp})
        watermark = tracker.watermark()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000  # every change remembered took 30 MB, and grew with them
    assert watermark is not None
    assert len(watermark.edge) == MAX_EDGE
    assert any(f"up to {120_000 - MAX_EDGE} dossiers" in w for w in tracker.warnings())
    # Ids a watermark cannot hold are delivered, and not remembered.
    for odd in (True, -1, 2**63):
        assert tracker.admit({"dossierId": odd, "stateLastChangeDate": stamp})
    assert saved(tracker.watermark()) == tracker.watermark()


async def test_a_bulk_update_sharing_one_stamp_syncs_run_after_run_losing_nothing() -> None:
    stamp = (dt.datetime.now() - dt.timedelta(hours=1)).replace(microsecond=0).isoformat()
    bulk = 25_000
    stamps = {10**12 + i: stamp for i in range(bulk)}
    async for _server, client in serve(stamped(stamps)):
        first, changes = await raw_sync(client, None)
        assert sorted(first) == sorted(stamps)
        assert changes.report.complete
        assert any("come again next run" in w for w in changes.report.warnings)
        state = orjson.dumps(changes.next_watermark and changes.next_watermark.to_json())
        assert len(state) <= WATERMARK_BYTES  # what the CLI reads a state file within
        watermark = ea.Watermark.from_json(orjson.loads(state))

        late = dt.datetime.now().replace(microsecond=0).isoformat()
        stamps[1] = late  # a change after the bulk update
        second, changes = await raw_sync(client, watermark)
        named = {dossier_id for dossier_id, _ in watermark.edge}
        # The changes the watermark could not name come again (at least once, never lost);
        # those it named do not; the new change comes.
        assert sorted(second) == sorted({1} | (set(stamps) - named - {1}))
        assert len(second) == len(set(second)) == bulk - MAX_EDGE + 1
        watermark = saved(changes.next_watermark)
        assert watermark.changed_at.isoformat() == late
        third, changes = await raw_sync(client, watermark)
        assert third == []  # the bulk is beyond the margin of the latest change now
        assert changes.next_watermark is not None


async def raw_sync(
    client: ea.Client, since: ea.Watermark | None
) -> tuple[list[int], ea.Changes[dict[str, Any]]]:
    changes = client.dossiers.changes(since=since, page_size=2000, raw=True)
    return [d["dossierId"] async for d in changes], changes


async def test_a_total_below_what_the_pages_hold_gives_no_watermark() -> None:
    # The newest changes first, a total of 5 over 30: the 25 past it were dropped, the run
    # said complete, and its watermark skipped them in every later run.
    stamps = {k: f"2026-01-{k:02d}T10:00:00" for k in range(1, 31)}
    honest = stamped(stamps)

    def lagging(page: int, size: int) -> Answer:
        content, fields = honest(page, size)
        return content, {**fields, "totalElements": 5}

    async for _server, client in serve(lagging):
        changes = client.dossiers.changes(raw=True, page_size=10, concurrency=2)
        assert sorted([d["dossierId"] async for d in changes]) == list(range(1, 31))
        assert not changes.report.complete
        assert any("more items than the total" in p for p in changes.report.problems)
        assert changes.next_watermark is None  # the next run reads them all again


async def test_dossiers_without_a_usable_stamp_come_again_and_are_said() -> None:
    stamps = {1: "2026-01-20T10:00:00", 2: "garbage", 3: "31/12/2024", 4: ""}
    async for _server, client in serve(stamped(stamps)):
        for since in (None, dt.datetime(2026, 1, 20, 10)):
            changes = client.dossiers.changes(since=since, raw=True)
            ids = sorted([d["dossierId"] async for d in changes])
            assert ids == [1, 2, 3, 4]
            assert changes.report.complete
            # Delivered every run: once unannounced, now counted in the warnings.
            unstamped = [w for w in changes.report.warnings if "usable" in w]
            assert len(unstamped) == 1
            assert unstamped[0].startswith("3 dossiers")


async def test_a_watermark_of_another_account_or_service_is_refused_before_any_listing() -> None:
    # Account A's latest change, on B, asked B only for what changed after it: B's older
    # changes were never delivered, the run complete, and its watermark kept them out.
    listed = "/api/v1/account/"

    one = {"dossierId": 7, "stateLastChangeDate": "2026-01-20T10:00:00"}

    async def one_dossier(request: hostile.Request, out: hostile.Writer) -> None:
        if "/dossiers" in request.path:
            first = "page=0&" in request.path
            content = [one] if first else []
            await out.reply(200, {"content": content, "page": 0, "size": 100, "totalElements": 1})
        else:
            await hostile.default_handler(request, out)

    async with hostile.serving(one_dossier) as server:
        async with server.client() as client:  # the account: 4242, from the token
            changes = client.dossiers.changes(raw=True, concurrency=1)
            assert [d async for d in changes] == [one]
            mark = changes.next_watermark
            assert mark is not None
            assert mark.account == hostile.ACCOUNT_ID
            assert mark.environment == environment_id(f"{server.url}/api/v1")
            assert saved(mark) == mark
            asked = server.count(listed)
            other = attrs.evolve(mark, account=1111)
            with pytest.raises(ea.InvalidInputError, match="account 1111") as info:
                _ = [d async for d in client.dossiers.changes(since=other.to_json(), raw=True)]
            assert info.value.field == "since"
            assert server.count(listed) == asked  # found from the token: nothing listed
            elsewhere = attrs.evolve(mark, environment=environment_id(PROD_URL))
            with pytest.raises(ea.InvalidInputError, match="another service"):
                client.dossiers.changes(since=elsewhere, raw=True)
            # Written before watermarks named them: read, not checked.
            old = {k: v for k, v in mark.to_json().items() if k not in ("account", "environment")}
            changes = client.dossiers.changes(since=old, raw=True, concurrency=1)
            assert [d async for d in changes] == []  # delivered last run
            assert changes.report.complete
        async with server.client(account_id=1111) as client:
            with pytest.raises(ea.InvalidInputError, match="account 4242"):
                client.dossiers.changes(since=mark, raw=True)  # known: refused at once
