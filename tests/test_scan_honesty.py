"""A scan claims complete only when exactly-once could be checked against the server's word.

Loopback servers (tests/test_scan_servers.py) that contradict themselves or send items the
scan cannot deduplicate: the report says so, and is not complete.
"""

from __future__ import annotations

from typing import Any

import pytest

from .test_scan_servers import Answer, listing, scan_all, serve

pytestmark = pytest.mark.anyio


async def test_a_total_that_falls_below_what_was_read_is_not_complete() -> None:
    honest = listing(1000)
    answers = 0

    def shrinking(page: int, size: int) -> Answer:
        nonlocal answers
        answers += 1
        if answers == 1:
            return honest(page, size)
        return [], {"page": page, "size": size, "totalElements": 0}  # "there are none"

    _server, scan, ids = await scan_all(shrinking, page_size=100, concurrency=1)
    assert ids == list(range(100))
    report = scan.report
    assert not report.complete
    assert any("fell from 1000 to 0" in p for p in report.problems)


@pytest.mark.parametrize(
    ("item", "said"),
    [({"x": 1}, "without an id"), ("a", "not even objects"), (None, "not even objects")],
)
async def test_items_that_cannot_be_deduplicated_are_said_and_not_complete(
    item: Any, said: str
) -> None:
    def anonymous(page: int, size: int) -> Answer:
        count = max(0, min(size, 250 - page * size))
        return [item] * count, {"page": page, "size": size, "totalElements": 250}

    _server, scan, _ = await _all_items(anonymous)
    report = scan.report
    assert report.items == 250  # delivered all the same
    assert not report.complete
    assert any(said in p and "250" in p for p in report.problems)


async def test_an_honest_listing_is_still_complete() -> None:
    _server, scan, ids = await scan_all(listing(1000), page_size=100)
    assert sorted(ids) == list(range(1000))
    assert scan.report.complete
    assert scan.report.problems == ()


async def _all_items(behave: Any) -> Any:
    async for server, client in serve(behave):
        scan = client.dossiers.scan(raw=True, page_size=100)
        items = [item async for item in scan]
        return server, scan, items
    raise AssertionError("unreachable")
