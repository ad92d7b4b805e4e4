"""Shared fixtures: every test talks real HTTP to a simulator on 127.0.0.1."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

import eattest_async as ea
from eattest_async.simulator import Simulator


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(seed=42, dossiers=2_000, process_delay=0.05) as simulator:
        yield simulator


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


class SimulatorProcess:
    """The simulator in a process of its own, driven over HTTP as ``eattest simulator`` is.

    Tests that judge timing under load need it: in-process, client and server share one
    event loop, and a saturated loop delays both sides' reads and writes past the grace
    the simulator allows for requests already in flight when it answered 429.
    """

    def __init__(self, *args: str) -> None:
        self._args = args
        self._process: asyncio.subprocess.Process | None = None
        self.values: dict[str, str] = {}

    async def __aenter__(self) -> SimulatorProcess:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "eattest_async.simulator",
            "--port",
            "0",
            "--password",
            "pw",
            *self._args,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self._process.stdout is not None
        while "EATTEST_ACCOUNT_ID" not in self.values:
            line = (await asyncio.wait_for(self._process.stdout.readline(), 30)).decode()
            assert line, "the simulator process ended before printing its URLs"
            if "=" in line:
                key, _, value = line.strip().partition("=")
                self.values[key] = value
        self.origin = self.values["EATTEST_BASE_URL"].rsplit("/api/v1", 1)[0]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(self._process.wait(), 30)

    @property
    def environment(self) -> ea.Environment:
        return ea.Environment.custom(
            base_url=self.values["EATTEST_BASE_URL"], token_url=self.values["EATTEST_TOKEN_URL"]
        )

    def client(self, **options: Any) -> ea.Client:
        return ea.Client(
            self.environment,
            username=self.values["EATTEST_USERNAME"],
            password=self.values["EATTEST_PASSWORD"],
            **options,
        )

    async def faults(self, **fields: Any) -> None:
        async with (
            aiohttp.ClientSession() as http,
            http.put(self.origin + "/_simulator/faults", json=fields) as response,
        ):
            assert response.status == 200, await response.text()

    async def stats(self) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as http,
            http.get(self.origin + "/_simulator/stats") as response,
        ):
            return await response.json()  # type: ignore[no-any-return]
