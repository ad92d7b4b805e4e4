"""Several real processes, one account, one per-IP limit, one Redis: as users deploy it.

The simulator runs in a process of its own with one rate window for every session
(``rate_scope="global"``: one outgoing IP) and RateLimit headers; the workers are
``python -m benchmarks.multiprocess worker`` processes started at one signal, each with
its own client and event loop, sharing a :class:`RedisCoordinator`. The simulator's own
counters judge: token grants, 429s, and requests that arrived before a Retry-After
deadline announced to anyone (``early_requests``: what gets an IP banned).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from benchmarks.multiprocess import run_workers
from eattest_async.simulator import DOSSIER_ID_BASE, SimulatorProcess

from .redis_server import RedisServer, redis_server

__all__ = ["redis_server"]  # the fixture, imported to be used here

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

LIMIT = 20  # requests per 1 s window, for all processes together


def digest(count: int) -> str:
    ids = list(range(DOSSIER_ID_BASE, DOSSIER_ID_BASE + count))
    return hashlib.sha256(repr(ids).encode()).hexdigest()


def assert_every_item_exactly_once(results: list[dict[str, Any]], count: int) -> None:
    for result in results:
        assert result["items"] == result["unique"] == count, result
        assert result["digest"] == digest(count)


async def test_four_processes_share_one_token_and_stay_within_one_limit(
    redis_server: RedisServer,
) -> None:
    async with SimulatorProcess("--dossiers", "1500", "--latency", "0.01") as sim:
        await sim.set_faults(rate_limit=LIMIT, rate_window=1.0, rate_scope="global")
        started = time.monotonic()
        results = await run_workers(sim, 4, redis_url=redis_server.url, page_size=100, bound=90)
        windows = math.ceil(time.monotonic() - started) + 1
        stats = await sim.stats()
    assert_every_item_exactly_once(results, 1500)
    assert stats["early_requests"] == 0
    assert stats["token_grants"] == {"password": 1}  # one sign-in for the four
    assert stats["rate_limited"] <= windows


async def test_a_redis_restart_mid_run_loses_nothing_and_hangs_nothing(
    redis_server: RedisServer,
) -> None:
    async with SimulatorProcess("--dossiers", "2000", "--latency", "0.01") as sim:
        await sim.set_faults(rate_limit=LIMIT, rate_window=1.0, rate_scope="global")

        async def served() -> int:
            return int((await sim.stats())["total_requests"])

        async def until(condition: Callable[[int], bool]) -> None:
            # Progress seen by a server in another process: no event to await, so a
            # bounded poll of its counters (a condition waited for, not a race papered over).
            with anyio.fail_after(60):
                while not condition(await served()):  # noqa: ASYNC110
                    await anyio.sleep(0.05)

        ready = anyio.Event()
        results: list[dict[str, Any]] = []

        async def workers() -> None:
            results.extend(
                await run_workers(
                    sim, 3, redis_url=redis_server.url, page_size=100, bound=90, ready=ready
                )
            )

        async with anyio.create_task_group() as group:
            group.start_soon(workers)
            await ready.wait()
            await until(lambda n: n >= 15)
            await anyio.to_thread.run_sync(redis_server.stop)
            down_at = await served()
            await until(lambda n: n >= down_at + 10)  # the workers go on without Redis
            await anyio.to_thread.run_sync(redis_server.start)  # same port, empty
        stats = await sim.stats()
    assert_every_item_exactly_once(results, 2000)
    assert any(r["coordination_failures"] > 0 for r in results)  # they did notice
    assert sum(stats["token_grants"].values()) == 1  # tokens outlived the outage
