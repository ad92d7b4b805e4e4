"""The simulator in a process of its own, driven over HTTP (its admin endpoints).

Use it where timing matters under load: in one process, client and server share an
event loop and one core, and neither can be measured fairly. ::

    async with SimulatorProcess("--dossiers", "50000") as sim:
        await sim.set_faults(rate_limit=60, rate_window=1.0)
        async with ea.Client(sim.environment, username=sim.username,
                             password=sim.password) as client:
            ...
        assert (await sim.stats())["early_requests"] == 0
"""

from __future__ import annotations

import asyncio
import signal
import sys
from types import TracebackType
from typing import Any

import aiohttp

from .._config import Environment

__all__ = ["SimulatorProcess"]


class SimulatorProcess:
    """``python -m eattest_async.simulator`` on a free loopback port, stopped on exit.

    ``args`` are its command-line options (``--dossiers``, ``--latency``, ``--seed``...).
    """

    def __init__(self, *args: str, startup_timeout: float = 30.0) -> None:
        self._args = args
        self._startup_timeout = startup_timeout
        self._process: asyncio.subprocess.Process | None = None
        self.values: dict[str, str] = {}

    async def __aenter__(self) -> SimulatorProcess:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "eattest_async.simulator",
            "--port",
            "0",
            *self._args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            assert self._process.stdout is not None
            while "EATTEST_ACCOUNT_ID" not in self.values:
                line = (
                    await asyncio.wait_for(self._process.stdout.readline(), self._startup_timeout)
                ).decode()
                if not line:
                    raise RuntimeError("the simulator process ended before printing its URLs")
                key, sep, value = line.strip().partition("=")
                if sep:
                    self.values[key] = value
        except BaseException:
            await self._stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop()

    async def _stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()

    @property
    def base_url(self) -> str:
        return self.values["EATTEST_BASE_URL"]

    @property
    def origin(self) -> str:
        return self.base_url.rsplit("/api/v1", 1)[0]

    @property
    def environment(self) -> Environment:
        return Environment.custom(
            base_url=self.base_url, token_url=self.values["EATTEST_TOKEN_URL"], name="simulator"
        )

    @property
    def username(self) -> str:
        return self.values["EATTEST_USERNAME"]

    @property
    def password(self) -> str:
        return self.values["EATTEST_PASSWORD"]

    async def set_faults(self, **fields: Any) -> dict[str, Any]:
        """Change fields of the live fault plan (``PUT /_simulator/faults``)."""
        return await self._admin("PUT", "/_simulator/faults", fields)

    async def stats(self) -> dict[str, Any]:
        """The simulator's statistics (``GET /_simulator/stats``)."""
        return await self._admin("GET", "/_simulator/stats")

    async def reset(self) -> None:
        """Forget statistics, rate-limit windows and scripted faults."""
        await self._admin("POST", "/_simulator/reset")

    async def _admin(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, self.origin + path, json=body) as response,
        ):
            data = await response.json()
            if response.status != 200:
                raise RuntimeError(f"simulator refused {method} {path}: {data}")
            return data  # type: ignore[no-any-return]
