"""Clients sharing one account through Redis: one token grant, one renewal after a 401,
one gate; and the one setting (``EATTEST_REDIS_URL``) read by the CLI and FastAPI.

Clients here stand for processes (each has its own coordinator, connection and token
manager); the tests with real processes are in ``test_redis_multiprocess.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi import FastAPI

import eattest_async as ea
from eattest_async._coordination import coordination_key
from eattest_async._ratelimit import RateGate, Reservation
from eattest_async.fastapi import lifespan
from eattest_async.simulator import FaultAction, Simulator

from .conftest import client_for
from .redis_server import RedisServer, redis_server
from .test_cli import eattest
from .test_ratelimit import deadline_in

__all__ = ["redis_server"]  # the fixture, imported to be used here

pytestmark = pytest.mark.anyio

Workers = Callable[[int], AsyncIterator[list[ea.Client]]]


async def open_workers(
    stack: AsyncExitStack, sim: Simulator, url: str, count: int
) -> list[ea.Client]:
    return [
        await stack.enter_async_context(client_for(sim, coordinator=ea.RedisCoordinator(url)))
        for _ in range(count)
    ]


async def test_workers_sign_in_once_for_all(sim: Simulator, redis_server: RedisServer) -> None:
    async with AsyncExitStack() as stack:
        workers = await open_workers(stack, sim, redis_server.url, 4)
        async with anyio.create_task_group() as group:
            for worker in workers:
                for _ in range(5):
                    group.start_soon(worker.account.get)
    assert sim.stats.token_grants == {"password": 1}
    assert sim.stats.requests["get_account"] == 20


async def test_a_revoked_token_is_renewed_once_for_every_worker(
    sim: Simulator, redis_server: RedisServer
) -> None:
    async with AsyncExitStack() as stack:
        workers = await open_workers(stack, sim, redis_server.url, 3)
        for worker in workers:
            await worker.account.get()
        sim.revoke_tokens()  # every worker's token now meets a 401
        async with anyio.create_task_group() as group:
            for worker in workers:
                group.start_soon(worker.account.get)
        for worker in workers:
            await worker.account.get()
    assert sum(sim.stats.token_grants.values()) == 2  # the first sign-in, one renewal
    assert sim.stats.statuses[401] == 3  # one per worker holding the revoked token


async def test_a_429_seen_by_one_worker_holds_every_worker(
    sim: Simulator, redis_server: RedisServer
) -> None:
    sim.faults.rate_scope = "global"  # one IP: a deadline told to one worker holds all
    sim.faults.early_grace = 0.0  # any request before the deadline counts as early
    watcher = ea.RedisCoordinator(redis_server.url)
    shared = watcher.gate_store(coordination_key(sim.environment, sim.username))
    async with AsyncExitStack() as stack:
        first, second = await open_workers(stack, sim, redis_server.url, 2)
        await first.account.get()
        await second.account.get()
        sim.faults.add(FaultAction(kind="status", status=429, retry_after=1))
        async with anyio.create_task_group() as group:
            group.start_soon(first.account.get)  # meets the 429, retried after it
            # The deadline is in Redis (a condition in another component: polled, bounded).
            with anyio.fail_after(30):
                while await deadline_in(shared) <= time.time():  # noqa: ASYNC110
                    await anyio.sleep(0.01)
            await second.account.get()  # never met the 429, yet held until the deadline
    await watcher.aclose()
    assert sim.stats.rate_limited == 1
    assert sim.stats.early_requests == 0
    assert sim.stats.requests["get_account"] == 5


async def test_the_first_request_goes_alone_even_when_the_store_awaits(
    redis_server: RedisServer,
) -> None:
    # Redis makes every reservation await: the tasks behind the first one must still wait
    # for its answer (its headers tell the budget) instead of slipping past meanwhile.
    coordinator = ea.RedisCoordinator(redis_server.url)
    store = coordinator.gate_store(coordination_key(ea.Environment.TEST, "u"))
    reserved_before_answer = 0
    answered = False
    others_reserved = anyio.Event()

    class Watched:
        async def reserve(self, **arguments: Any) -> Reservation:
            nonlocal reserved_before_answer
            if not answered:
                reserved_before_answer += 1
                if reserved_before_answer == 8:
                    others_reserved.set()
            return await store.reserve(**arguments)

        extend_deadline = store.extend_deadline
        give_back = store.give_back
        report = store.report
        holds = store.holds
        shares_budget = True

    never = anyio.Event()

    async def sleep(seconds: float) -> None:
        if seconds >= 0.5:
            await never.wait()  # the first answer's wait never times out here
        await anyio.sleep(seconds)

    gate = RateGate(store=Watched(), sleep=sleep)
    first = True

    async def request() -> None:
        nonlocal first, answered
        await gate.acquire()
        if first:
            first = False
            # Give the others every chance to slip past (they should not: then no event).
            with anyio.move_on_after(0.5):
                await others_reserved.wait()
            answered = True
        await gate.release(status=200)

    async with anyio.create_task_group() as group:
        for _ in range(8):
            group.start_soon(request)
    await coordinator.aclose()
    assert reserved_before_answer == 1


# -- the one setting: EATTEST_REDIS_URL --------------------------------------------------------


async def test_fastapi_workers_share_the_token_through_the_environment_variable(
    sim: Simulator, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EATTEST_REDIS_URL", redis_server.url)
    apps = [FastAPI(), FastAPI()]  # two workers of one app
    async with AsyncExitStack() as stack:
        for app in apps:
            run = lifespan(sim.environment, username=sim.username, password=sim.password)
            await stack.enter_async_context(run(app))
            await app.state.eattest_client.account.get()
    assert sim.stats.token_grants == {"password": 1}


async def test_cli_processes_share_the_token_through_the_environment_variable(
    sim: Simulator, redis_server: RedisServer
) -> None:
    env = {
        "EATTEST_BASE_URL": sim.base_url,
        "EATTEST_TOKEN_URL": sim.token_url,
        "EATTEST_USERNAME": sim.username,
        "EATTEST_PASSWORD": sim.password,
        "EATTEST_REDIS_URL": redis_server.url,
    }

    async def whoami() -> None:
        code, out, err = await eattest("whoami", env=env)
        assert code == 0, err
        assert f"account {sim.account_id}" in out

    await asyncio.gather(whoami(), whoami())  # two processes at once: one signs in
    assert sim.stats.token_grants == {"password": 1}  # the other one waited, then adopted it


async def test_every_cli_command_adopts_the_token_another_process_holds(
    sim: Simulator, redis_server: RedisServer, tmp_path: Path
) -> None:
    # A worker of the account signed in: its token is in Redis. Each command sharing the
    # Redis store uses it (sync built its client without the store, and signed in again).
    async with client_for(sim, coordinator=ea.RedisCoordinator(redis_server.url)) as worker:
        dossier = (await worker.dossiers.list(page_size=1)).items[0].dossier_id
    env = {
        "EATTEST_BASE_URL": sim.base_url,
        "EATTEST_TOKEN_URL": sim.token_url,
        "EATTEST_USERNAME": sim.username,
        "EATTEST_PASSWORD": sim.password,
        "EATTEST_REDIS_URL": redis_server.url,
    }
    for args in (
        ("sync", "--state", str(tmp_path / "state.json"), "--out", str(tmp_path / "changed")),
        ("scan", "dossiers", "--monitored", "--out", str(tmp_path / "scanned.jsonl")),
        ("download", "--dossier", str(dossier), "--to", str(tmp_path / "files")),
    ):
        code, _, err = await eattest(*args, env=env)
        assert code == 0, err
    assert (tmp_path / "state.json").exists()
    assert sim.stats.token_grants == {"password": 1}


async def test_a_redis_url_redis_py_cannot_read_is_a_usage_error_in_the_cli(sim: Simulator) -> None:
    env = {
        "EATTEST_BASE_URL": sim.base_url,
        "EATTEST_TOKEN_URL": sim.token_url,
        "EATTEST_USERNAME": sim.username,
        "EATTEST_PASSWORD": sim.password,
        "EATTEST_REDIS_URL": "redis://:s3cret-pw@127.0.0.1:99999/0",  # no such port
    }
    code, _, shown = await eattest("whoami", env=env)
    assert code == 2, shown  # as for any other bad setting: not an API failure
    assert shown.startswith("error: url: ")
    assert len(shown.splitlines()) == 1
    assert "s3cret" not in shown
    assert sum(sim.stats.token_grants.values()) == 0  # nobody signed in


def test_a_coordinator_must_be_one() -> None:
    with pytest.raises(ea.InvalidInputError):
        ea.Client(ea.Environment.TEST, username="u", password="p", coordinator="redis://x")  # type: ignore[arg-type]
