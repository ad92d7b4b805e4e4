"""Concurrent scans against the simulator: exactly once, never early, clean on every exit."""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import time
from collections.abc import AsyncIterator

import anyio
import orjson
import pytest

import eattest_async as ea
from eattest_async.simulator import DOSSIER_ID_BASE, Simulator, SimulatorProcess

from .conftest import client_for, client_tasks

pytestmark = pytest.mark.anyio


def assert_exactly_once(ids: list[int | None], expected: list[int]) -> None:
    assert len(ids) == len(set(ids)), "duplicates delivered"
    assert sorted(i for i in ids if i is not None) == sorted(expected)


@pytest.mark.slow
@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_10000_dossiers_through_429s_exactly_once_and_never_early(form: str) -> None:
    async with SimulatorProcess("--dossiers", "10000") as sim, client_for(sim) as client:
        # Nothing to pace by (no RateLimit headers) and a limit far below what any machine's
        # client asks for (10 pages/s, where a loaded 2-core box still sends 40): the client
        # meets 429s and must keep every worker away until each deadline.
        await sim.set_faults(
            rate_limit=10, rate_window=1.0, retry_after_format=form, ratelimit_headers="none"
        )
        scan = client.dossiers.scan(page_size=100, concurrency=16)
        ids = [d.dossier_id async for d in scan]
        stats = await sim.stats()
        assert_exactly_once(ids, list(range(DOSSIER_ID_BASE, DOSSIER_ID_BASE + 10_000)))
        assert stats["rate_limited"] > 0, "the test must actually meet 429s"
        assert stats["early_requests"] == 0
        assert scan.report.complete
        assert scan.report.retries["429"] == stats["rate_limited"]
        assert scan.report.responses_429 == stats["rate_limited"]
        assert client.stats.cooldowns >= 1


@pytest.mark.slow
@pytest.mark.parametrize("headers", ["draft", "ietf"])
async def test_ratelimit_headers_keep_it_to_at_most_one_429_per_window(headers: str) -> None:
    async with SimulatorProcess("--dossiers", "20000") as sim, client_for(sim) as client:
        await sim.set_faults(rate_limit=60, rate_window=1.0, ratelimit_headers=headers)
        started = time.monotonic()
        ids = [d.dossier_id async for d in client.dossiers.scan(page_size=100, concurrency=16)]
        windows = math.ceil(time.monotonic() - started) + 1
        stats = await sim.stats()
        assert_exactly_once(ids, list(range(DOSSIER_ID_BASE, DOSSIER_ID_BASE + 20_000)))
        assert stats["rate_limited"] <= windows
        assert stats["early_requests"] == 0


async def test_random_5xx_and_drops_lose_and_duplicate_nothing() -> None:
    async with Simulator(dossiers=20_000, seed=5) as sim, client_for(sim) as client:
        sim.faults.error_rate, sim.faults.drop_rate = 0.05, 0.01
        scan = client.dossiers.scan(page_size=100, concurrency=16, order="completed")
        ids = [d.dossier_id async for d in scan]
        assert_exactly_once(ids, sim.live_dossier_ids())
        assert sum(sim.stats.faults.values()) > 0
        assert scan.report.retries


async def test_page_order_and_progress(sim: Simulator, client: ea.Client) -> None:
    snapshots: list[ea.ScanProgress] = []
    scan = client.dossiers.scan(page_size=150, concurrency=4, on_progress=snapshots.append)
    ids = [d.dossier_id async for d in scan]
    assert ids == sim.live_dossier_ids()  # page order is listing order
    assert [s.pages_done for s in snapshots] == list(range(1, 15))
    assert snapshots[-1].pages_total == 14
    assert snapshots[-1].items == 2000
    assert scan.progress.items == 2000
    report = scan.report
    assert (report.pages_fetched, report.items, report.duplicates_dropped, report.drift) == (
        14,
        2000,
        0,
        False,
    )
    assert sim.stats.max_in_flight <= 4
    assert report.complete
    assert report.problems == ()
    assert report.request_rate > 0
    assert (report.rate_limit, report.responses_429) == (None, 0)


async def test_the_report_shows_the_configured_rate(sim: Simulator) -> None:
    async with client_for(sim, limits=ea.Limits(max_rate=5000)) as client:
        scan = client.dossiers.scan(page_size=500, concurrency=2)
        assert len([d async for d in scan]) == 2000
        assert (scan.report.rate_limit, scan.report.rate_limit_source) == (5000, "configured")
        assert scan.progress.request_rate > 0


async def test_inserted_and_deleted_mid_scan_drift_is_reported_without_duplicates(
    sim: Simulator, client: ea.Client, caplog: pytest.LogCaptureFixture
) -> None:
    before = set(sim.live_dossier_ids())
    ids: list[int | None] = []
    scan = client.dossiers.scan(page_size=50, concurrency=4)
    async for dossier in scan:
        ids.append(dossier.dossier_id)
        if len(ids) == 300:  # the data change under the scan's feet
            sim.insert_dossiers(40)
            sim.delete_dossiers(count=25)
    after = set(sim.live_dossier_ids())
    assert len(ids) == len(set(ids))
    assert before & after <= set(ids), "a dossier present throughout was missed"
    assert set(ids) <= before | after
    report = scan.report
    assert report.drift
    assert (report.initial_total, report.final_total) == (2000, len(after))
    assert report.repaired_pages > 0
    assert "changed during the scan" in caplog.text


async def test_break_with_async_with_leaves_no_task(sim: Simulator, client: ea.Client) -> None:
    sim.faults.latency = 0.05
    baseline = client_tasks()
    async with client.dossiers.scan(page_size=10, concurrency=8) as scan:
        count = 0
        async for _ in scan:
            count += 1
            if count == 10:
                break
    assert client_tasks() == baseline
    assert scan.report.items == 10 or scan.progress.items >= 10


async def test_bare_break_is_cleaned_up_by_the_generator_finaliser(
    sim: Simulator, client: ea.Client
) -> None:
    sim.faults.latency = 0.05
    baseline = client_tasks()
    scan = client.dossiers.scan(page_size=10, concurrency=8)
    async for number, _ in _enumerate(scan):
        if number == 9:
            break
    # asyncio runs the abandoned generator's aclose() as a task of its own: let it run.
    for _ in range(200):
        if client_tasks() == baseline:
            break
        await asyncio.sleep(0)
    assert client_tasks() == baseline
    assert scan.progress.items >= 10


async def _enumerate(iterable: ea.Scan[ea.Dossier]) -> AsyncIterator[tuple[int, ea.Dossier]]:
    number = 0
    async for item in iterable:
        yield number, item
        number += 1


async def test_cancellation_and_timeout_mid_flight_leave_nothing(
    sim: Simulator, client: ea.Client
) -> None:
    await client.account_id()
    sim.faults.latency = 0.2
    baseline = client_tasks()
    with anyio.move_on_after(0.5) as scope:
        async for _ in client.dossiers.scan(page_size=10, concurrency=8):
            pass
    assert scope.cancelled_caught
    assert client_tasks() == baseline
    with pytest.raises(TimeoutError):  # noqa: PT012 - the timeout must cover the whole loop
        with anyio.fail_after(0.3):
            async with client.dossiers.scan(page_size=10, concurrency=8) as scan:
                async for _ in scan:
                    pass
    assert client_tasks() == baseline

    async def consume() -> None:
        async for _ in client.dossiers.scan(page_size=10, concurrency=8):
            pass

    async with anyio.create_task_group() as group:
        group.start_soon(consume)
        await anyio.sleep(0.3)
        group.cancel_scope.cancel()
    assert client_tasks() == baseline


async def test_resume_from_a_checkpoint_fetches_only_the_missing_pages(
    sim: Simulator, client: ea.Client
) -> None:
    first: list[int | None] = []
    async with client.dossiers.scan(page_size=100, concurrency=4, monitored=True) as scan:
        async for dossier in scan:
            first.append(dossier.dossier_id)
            if len(first) == 300:
                break
    checkpoint = scan.checkpoint()
    assert checkpoint.done == ((0, 300),)
    saved = orjson.dumps(checkpoint.to_json())  # a checkpoint survives a restart
    sim.reset()
    resumed = client.dossiers.scan(
        page_size=100, concurrency=4, monitored=True, resume_from=orjson.loads(saved)
    )
    rest = [d.dossier_id async for d in resumed]
    pages = math.ceil((checkpoint.total_elements or 0) / 100)
    assert sim.stats.requests["list_dossiers"] == pages - 3
    expected = [d.dossier_id async for d in client.dossiers.scan(page_size=500, monitored=True)]
    assert_exactly_once(first + rest, [i for i in expected if i is not None])


async def test_a_page_that_keeps_failing_ends_the_scan_with_its_checkpoint(sim: Simulator) -> None:
    async with client_for(sim, retry=ea.RetryPolicy(attempts=2, initial_backoff=0.01)) as client:

        def sabotage(progress: ea.ScanProgress) -> None:
            if progress.pages_done == 3:
                sim.faults.error_rate, sim.faults.error_statuses = 1.0, (500,)

        delivered: list[int | None] = []
        scan = client.dossiers.scan(page_size=100, concurrency=1, on_progress=sabotage)
        with pytest.raises(ea.ScanError) as info:  # noqa: PT012 - the loop itself raises
            async for dossier in scan:
                delivered.append(dossier.dossier_id)
        error = info.value
        assert error.checkpoint.done == ((0, 300),)
        assert isinstance(error.__cause__, ea.ServerError)
        assert "page 3" in str(error)
        sim.faults.error_rate = 0.0
        resumed = client.dossiers.scan(page_size=100, concurrency=4, resume_from=error.checkpoint)
        rest = [d.dossier_id async for d in resumed]
        assert_exactly_once(delivered + rest, sim.live_dossier_ids())


async def test_scans_of_thirdparties_search_and_raw_dicts(
    sim: Simulator, client: ea.Client
) -> None:
    thirdparties = [
        t.thirdparty_id async for t in client.thirdparties.scan(page_size=200, concurrency=4)
    ]
    assert len(thirdparties) == len(set(thirdparties)) == sim.data.thirdparty_count()
    found = [t async for t in client.thirdparties.search_scan("workforce>400", page_size=50)]
    assert found
    assert all((t.workforce or 0) > 400 for t in found)
    raw = [d async for d in client.dossiers.scan(page_size=500, raw=True)]
    assert [d["dossierId"] for d in raw] == sim.live_dossier_ids()


async def test_scan_arguments_are_checked_before_anything_is_sent(
    sim: Simulator, client: ea.Client
) -> None:
    before = sim.stats.total_requests
    for kwargs in (
        {"siren": "123"},
        {"sirne": "123456789"},
        {"page_size": 0},
        {"concurrency": 0},
        {"order": "random"},
        {"resume_from": {"bogus": 1}},
        {"unknown_filter": 1},
    ):
        with pytest.raises(ea.InvalidInputError):
            client.dossiers.scan(**kwargs)
    # A misspelt filter is a mypy error (the ignores below would be unused otherwise) and
    # a clear InvalidInputError at run time.
    with pytest.raises(ea.InvalidInputError, match="sirne: not a filter"):
        client.dossiers.scan(sirne="123456789")  # type: ignore[call-overload]
    with pytest.raises(ea.InvalidInputError, match="siren"):
        await client.thirdparties.list(sirne="123456789")  # type: ignore[call-arg]
    other = client.thirdparties.scan(page_size=10).checkpoint()
    with pytest.raises(ea.InvalidInputError, match="another scan"):
        client.dossiers.scan(page_size=10, resume_from=other)
    assert sim.stats.total_requests == before


async def test_no_warning_or_error_is_logged_by_asyncio(
    sim: Simulator, client: ea.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="asyncio")
    sim.faults.latency = 0.02
    for _ in range(3):
        async with client.dossiers.scan(page_size=10, concurrency=8) as scan:
            async for number, _ in _enumerate(scan):
                if number == 25:
                    break
    assert [r for r in caplog.records if r.name == "asyncio"] == []


async def test_speculative_first_round_and_prefetch_one(sim: Simulator, client: ea.Client) -> None:
    await client.account_id()
    target = (await client.dossiers.list(page_size=1)).items[0]
    sim.reset()
    alone = [
        d.dossier_id
        async for d in client.dossiers.scan(siret=target.siret, concurrency=8, prefetch=1)
    ]
    assert sim.stats.requests["list_dossiers"] == 1
    assert target.dossier_id in alone
    sim.reset()
    found = [d.dossier_id async for d in client.dossiers.scan(siret=target.siret, concurrency=8)]
    assert found == alone
    # The first page and at most 7 past the end; cancelled ones that had left still arrive.
    assert sim.stats.requests["list_dossiers"] <= 8
    with pytest.raises(ea.InvalidInputError):
        client.dossiers.scan(concurrency=4, prefetch=5)


async def test_anext_then_aclose_leaves_no_task(sim: Simulator, client: ea.Client) -> None:
    sim.faults.latency = 0.05
    baseline = client_tasks()
    scan = client.dossiers.scan(page_size=10, concurrency=8)
    first = await anext(scan)
    assert first.dossier_id == DOSSIER_ID_BASE
    await scan.aclose()
    assert client_tasks() == baseline
    with pytest.raises(RuntimeError, match="iterated once"):
        async for _ in scan:
            pass


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager task factory: Python 3.12+")
async def test_a_scan_whose_pages_fail_at_once_ends_under_an_eager_task_factory() -> None:
    """With ``asyncio.eager_task_factory`` a page task that fails before awaiting anything
    (a closed client refuses at once) ends inside its creation: the scan must still end
    with its error, not wait for a wake-up that nothing will send."""
    from eattest_async._pagination import Scan
    from eattest_async._protocol import Envelope

    async def fetch(page: int, size: int, turn: object) -> Envelope:
        raise ea.UsageError("the client is closed")

    loop = asyncio.get_running_loop()
    factory = loop.get_task_factory()
    loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined,unused-ignore]
    try:
        scan = Scan(
            operation="/dossiers",
            filters=(),
            fetch=fetch,
            convert=tuple,
            key=lambda item: item.get("id"),
            retries=dict,
            cooldown=lambda: 0.0,
            page_size=10,
            concurrency=4,
        )
        with anyio.fail_after(10):
            with pytest.raises(ea.ScanError, match="closed"):
                async for _ in scan:
                    pass
    finally:
        loop.set_task_factory(factory)
