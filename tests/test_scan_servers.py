"""Scans against small loopback servers that misbehave: every item once, or an honest end.

Each server is a raw aiohttp.web app on 127.0.0.1 (port 0) serving a token and a listing
of dossiers; ``behave(page, size)`` says what each page answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import pytest
from aiohttp import web

import eattest_async as ea
from eattest_async.models.scans import environment_id

from . import hostile

pytestmark = pytest.mark.anyio

Answer = tuple[Any, dict[str, Any]]  # content, envelope fields (page, size, totalElements)
FAST = ea.RetryPolicy(initial_backoff=0.01, max_backoff=0.05, attempts=3)


def listing(count: int, *, cap: int | None = None, say_size: bool = True) -> Callable[..., Answer]:
    """An honest listing of ``count`` dossiers (its page size capped at ``cap``)."""

    def behave(page: int, size: int) -> Answer:
        size = min(size, cap or size)
        start = page * size
        content = [{"dossierId": i} for i in range(start, min(start + size, count))]
        fields: dict[str, Any] = {"page": page, "totalElements": count}
        if say_size:
            fields["size"] = size
        return content, fields

    return behave


class Server:
    def __init__(self, behave: Callable[[int, int], Answer]) -> None:
        self.behave = behave
        self.asked: list[tuple[int, int]] = []

    async def token(self, request: web.Request) -> web.Response:
        return web.json_response({"access_token": "not-a-jwt", "expires_in": 300})

    async def dossiers(self, request: web.Request) -> web.Response:
        page, size = int(request.query["page"]), int(request.query["pageSize"])
        self.asked.append((page, size))
        content, fields = self.behave(page, size)
        return web.json_response({"content": content, "messages": {}, **fields})

    def pages(self, page: int) -> int:
        return sum(1 for p, _ in self.asked if p == page)


async def serve(behave: Callable[[int, int], Answer]) -> AsyncIterator[tuple[Server, ea.Client]]:
    server = Server(behave)
    app = web.Application()
    app.router.add_post("/token", server.token)
    app.router.add_get("/api/v1/account/1/dossiers", server.dossiers)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    environment = ea.Environment.custom(
        base_url=f"http://127.0.0.1:{port}/api/v1", token_url=f"http://127.0.0.1:{port}/token"
    )
    try:
        async with ea.Client(
            environment, username="u", password="p", account_id=1, retry=FAST
        ) as client:
            yield server, client
    finally:
        await runner.cleanup()


async def scan_all(
    behave: Callable[[int, int], Answer], **options: Any
) -> tuple[Server, ea.Scan[dict[str, Any]], list[int]]:
    async for server, client in serve(behave):
        scan = client.dossiers.scan(raw=True, **options)
        ids = [d["dossierId"] async for d in scan]
        return server, scan, ids
    raise AssertionError("unreachable")


@pytest.mark.parametrize("content", [None, {"dossierId": 1}])
async def test_a_page_whose_content_is_not_a_list_is_retried_then_a_scan_error(
    content: Any,
) -> None:
    honest = listing(1000)

    def broken(page: int, size: int) -> Answer:
        items, fields = honest(page, size)
        return (content if page == 3 else items), fields

    async for server, client in serve(broken):
        delivered: list[int] = []
        scan = client.dossiers.scan(raw=True, page_size=100, concurrency=1)
        with pytest.raises(ea.ScanError) as info:  # noqa: PT012 - the loop raises
            async for dossier in scan:
                delivered.append(dossier["dossierId"])
        assert isinstance(info.value.__cause__, ea.UnexpectedResponseError)
        assert "not a list" in str(info.value)
        assert server.pages(3) == 3  # asked again, then given up
        assert delivered == list(range(300))
        assert info.value.checkpoint.done == ((0, 300),)
        assert not scan.report.complete


async def _stopped_after_150(client: ea.Client) -> tuple[list[int], dict[str, Any]]:
    """A first run of pages of 100, stopped after 150 items: its ids and its checkpoint."""
    first: list[int] = []
    async with client.dossiers.scan(raw=True, page_size=100, concurrency=1) as scan:
        async for dossier in scan:
            first.append(dossier["dossierId"])
            if len(first) == 150:
                break
        return first, scan.checkpoint().to_json()


async def test_a_resume_under_a_capped_page_size_delivers_each_item_once() -> None:
    # Asked 100, the server sends 50: the first run stops after 150 items, half-way
    # through a page of 100; the resumed scan's first pages of 100 hold positions 50-149.
    async for _server, client in serve(listing(400, cap=50)):
        first, saved = await _stopped_after_150(client)
        assert saved["done"] == [[0, 150]]
        resumed = client.dossiers.scan(raw=True, page_size=100, resume_from=saved)
        rest = [d["dossierId"] async for d in resumed]
        assert sorted(first + rest) == list(range(400))  # each once over both runs
        report = resumed.report
        assert report.complete, report.problems
        assert report.items == 250
        assert report.duplicates_dropped >= 100  # 50-149, read again and dropped


async def test_a_resume_after_the_listing_changed_delivers_everything_and_says_so() -> None:
    saved = {"version": 2, "operation": "list_dossiers", "filters": [], "page_size": 100}
    saved |= {"total_elements": 400, "done": [[0, 150]]}
    # Since the checkpoint, 5 dossiers came before the others: its positions moved.
    async for _server, client in serve(listing(405)):
        resumed = client.dossiers.scan(raw=True, page_size=100, resume_from=saved)
        ids = [d["dossierId"] async for d in resumed]
        assert sorted(ids) == list(range(405))  # nothing lost, each once in this run
        report = resumed.report
        assert not report.complete
        assert any("changed since the checkpoint (total 400 -> 405)" in p for p in report.problems)


async def test_a_page_once_null_is_asked_again_and_nothing_is_lost() -> None:
    honest, hiccups = listing(1000), {3, 7}

    def flaky(page: int, size: int) -> Answer:
        items, fields = honest(page, size)
        if page in hiccups:
            hiccups.discard(page)
            return None, fields
        return items, fields

    _server, scan, ids = await scan_all(flaky, page_size=100, concurrency=4)
    assert ids == list(range(1000))
    assert scan.report.complete
    assert scan.report.retries["bad-page"] == 2


@pytest.mark.parametrize("say_size", [True, False])
async def test_a_server_capping_the_page_size_loses_nothing(say_size: bool) -> None:
    async for _server, client in serve(listing(1000, cap=30, say_size=say_size)):
        scan = client.dossiers.scan(page_size=100, concurrency=4)  # models, not raw
        ids = [d.dossier_id async for d in scan]
        assert ids == list(range(1000))
        report = scan.report
        assert report.complete, report.problems
        assert report.page_size == 30
        assert report.duplicates_dropped < 100 * 4  # only what the first round overlapped


async def test_a_short_page_in_the_middle_is_reported_missing() -> None:
    honest = listing(1000)

    def short(page: int, size: int) -> Answer:
        items, fields = honest(page, size)
        return (items[:60] if page == 4 else items), fields

    server, scan, ids = await scan_all(short, page_size=100, concurrency=4)
    assert len(ids) == len(set(ids)) == 960
    report = scan.report
    assert not report.complete
    assert report.missing == 40
    assert any("short page" in p for p in report.problems)
    assert len(server.asked) <= 12


async def test_a_server_ignoring_page_ends_with_an_honest_report() -> None:
    honest = listing(1000)
    server, scan, ids = await scan_all(
        lambda page, size: honest(0, size), page_size=100, concurrency=4
    )
    assert sorted(ids) == list(range(100))
    report = scan.report
    assert report.duplicates_dropped >= 900
    assert (report.complete, report.missing, report.final_total) == (False, 900, 1000)
    assert any("contradicted" in p for p in report.problems)
    assert len(server.asked) <= 20


async def test_a_total_that_keeps_growing_ends_the_scan() -> None:
    grown = {"total": 1000}

    def growing(page: int, size: int) -> Answer:
        grown["total"] += 100
        return listing(grown["total"])(page, size)

    server, scan, ids = await scan_all(growing, page_size=100, concurrency=4)
    assert len(ids) == len(set(ids))
    report = scan.report
    assert not report.complete
    assert any("bound" in p for p in report.problems)
    # 4 x the plan (the first total read is 1,100 to 1,400: 11 to 14 pages), + slack.
    assert len(server.asked) <= 4 * (14 + 2 * 4 + 8) + 1


async def test_without_a_total_a_repeated_last_page_ends_the_scan() -> None:
    honest = listing(1000)

    def repeating(page: int, size: int) -> Answer:
        items, _ = honest(min(page, 9), size)
        return items, {}

    server, scan, ids = await scan_all(repeating, page_size=100, concurrency=4)
    assert ids == list(range(1000))
    assert not scan.report.complete
    assert any("repeated" in p for p in scan.report.problems)
    # The repeat shows once both copies are in: up to 4 pages in flight on either side.
    assert len(server.asked) <= 10 + 2 * 4


async def test_an_absurd_total_ends_at_the_first_empty_page() -> None:
    honest = listing(1000)

    def liar(page: int, size: int) -> Answer:
        items, fields = honest(page, size)
        return items, {**fields, "totalElements": 10**18}

    server, scan, ids = await scan_all(liar, page_size=100, concurrency=8)
    assert ids == list(range(1000))
    report = scan.report
    assert not report.complete
    assert any("empty page" in p for p in report.problems)
    assert len(server.asked) <= 10 + 2 * 8 + 2


async def test_a_total_one_too_many_without_a_size_ends_with_a_report() -> None:
    # 31 announced, 30 held, no size: the empty last page was once taken for a page size
    # of 0, and the scan died of a ZeroDivisionError after delivering everything.
    honest = listing(30, say_size=False)

    def overcount(page: int, size: int) -> Answer:
        items, fields = honest(page, size)
        return items, {**fields, "totalElements": 31}

    server, scan, ids = await scan_all(overcount, page_size=10, concurrency=1)
    assert ids == list(range(30))  # every item, once, in order
    report = scan.report
    assert not report.complete
    assert report.missing == 1
    assert report.page_size == 10
    assert any("empty page before the announced end" in p for p in report.problems)
    assert server.pages(3) == 2  # asked again once, then given up


async def test_a_consumer_that_stops_reading_holds_back_the_requests() -> None:
    async for server, client in serve(listing(100_000)):
        # Held ahead of the consumer: max(3,000, concurrency x page size) = 4,000 items,
        # plus what is in flight (4 pages of 1,000).
        async with client.dossiers.scan(raw=True, page_size=1000, concurrency=4) as scan:
            first = await anext(scan)
            for _ in range(5000):  # the consumer does something else; the loop runs on
                await asyncio.sleep(0)
            assert first["dossierId"] == 0
            assert len(server.asked) <= 1 + 4 + 4
            count = 1
            async for _ in scan:
                count += 1
                if count == 20_000:
                    break
        assert len(server.asked) <= 20 + 4 + 4


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_a_resume_without_a_total_or_a_size_under_a_cap_loses_nothing(
    concurrency: int,
) -> None:
    # Asked 100, the server sends 50 and says neither its size nor a total: the resumed
    # scan's first page (positions 50-99) was taken for the last one, and the report said
    # complete with 250 of the 400 dossiers never delivered.
    honest = listing(400, cap=50, say_size=False)

    def untold(page: int, size: int) -> Answer:
        content, fields = honest(page, size)
        del fields["totalElements"]
        return content, fields

    async for _server, client in serve(untold):
        first, saved = await _stopped_after_150(client)
        assert saved["done"] == [[0, 150]]
        resumed = client.dossiers.scan(
            raw=True, page_size=100, concurrency=concurrency, resume_from=saved
        )
        rest = [d["dossierId"] async for d in resumed]
        assert sorted(first + rest) == list(range(400))  # each once over both runs
        assert resumed.report.complete, resumed.report.problems


async def test_a_checkpoint_of_another_account_or_service_is_refused_before_any_page() -> None:
    # Account A's checkpoint resumed on B skipped B's first dossiers: 4 of 10, complete.
    async def ten(request: hostile.Request, out: hostile.Writer) -> None:
        if "/dossiers" in request.path:
            query = parse_qs(urlsplit(request.path).query)
            page, size = int(query["page"][0]), int(query["pageSize"][0])
            content = [{"dossierId": i} for i in range(page * size, min(10, (page + 1) * size))]
            await out.reply(200, {"content": content, "page": page, "totalElements": 10})
        else:
            await hostile.default_handler(request, out)

    async with hostile.serving(ten) as server:
        async with server.client() as client:  # the account: 4242, from the token
            async with client.dossiers.scan(raw=True, page_size=2, concurrency=1) as scan:
                async for dossier in scan:
                    if dossier["dossierId"] == 5:
                        break
                saved = scan.checkpoint()
            assert saved.account == hostile.ACCOUNT_ID
            assert saved.environment == environment_id(f"{server.url}/api/v1")
            assert ea.Checkpoint.from_json(saved.to_json()) == saved
            listed = server.count("/api/v1/account/")
            other = attrs.evolve(saved, account=1111).to_json()
            with pytest.raises(ea.InvalidInputError, match="account 1111") as info:
                _ = [
                    d async for d in client.dossiers.scan(raw=True, page_size=2, resume_from=other)
                ]
            assert info.value.field == "resume_from"
            assert server.count("/api/v1/account/") == listed  # not one page asked
            elsewhere = attrs.evolve(
                saved, environment=environment_id("https://rs.e-attestations.com/api/v1")
            )
            with pytest.raises(ea.InvalidInputError, match="another service"):
                client.dossiers.scan(raw=True, page_size=2, resume_from=elsewhere)
            # Written before checkpoints named them: read, not checked.
            old = {k: v for k, v in saved.to_json().items() if k not in ("account", "environment")}
            resumed = client.dossiers.scan(raw=True, page_size=2, resume_from=old)
            assert [d["dossierId"] async for d in resumed] == [6, 7, 8, 9]
            assert resumed.report.complete
        async with server.client(account_id=1111) as client:
            with pytest.raises(ea.InvalidInputError, match="account 4242"):
                client.dossiers.scan(raw=True, page_size=2, resume_from=saved)  # known: at once
