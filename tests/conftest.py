"""Shared fixtures: every test talks real HTTP to a simulator on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

import eattest_async as ea
from eattest_async.simulator import Simulator, SimulatorProcess

# Retries fast, so that tests of faults take milliseconds, not seconds.
FAST = ea.RetryPolicy(initial_backoff=0.01, max_backoff=0.1, attempts=8)


def client_for(sim: Simulator | SimulatorProcess, **options: Any) -> ea.Client:
    """A client of the simulator (in process or not), retrying fast unless told otherwise."""
    options.setdefault("retry", FAST)
    return ea.Client(sim.environment, username=sim.username, password=sim.password, **options)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(seed=42, dossiers=2_000, process_delay=0.05) as simulator:
        yield simulator


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[ea.Client]:
    async with client_for(sim) as opened:
        yield opened


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A raw HTTP session, for tests of the simulator itself."""
    async with aiohttp.ClientSession() as session:
        yield session


async def bearer(sim: Simulator, http: aiohttp.ClientSession) -> dict[str, str]:
    form = {
        "client_id": "ea-api-edge",
        "grant_type": "password",
        "username": sim.username,
        "password": sim.password,
    }
    async with http.post(sim.token_url, data=form) as response:
        assert response.status == 200
        token = (await response.json())["access_token"]
    return {"Authorization": f"Bearer {token}"}


_SERVER_SIDE = {
    "RequestHandler.start",
    "RequestHandler._handle_request",
    "BaseSelectorEventLoop._accept_connection2",
}


def client_tasks() -> set[asyncio.Task[object]]:
    """Running tasks, less those of an in-process simulator (accepting and serving)."""
    return {
        t
        for t in asyncio.all_tasks()
        if getattr(t.get_coro(), "__qualname__", "") not in _SERVER_SIDE
    }
