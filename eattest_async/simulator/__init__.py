"""An embedded, faithful simulator of the e-Attestations service, for tests, demos and benchmarks.

::

    from eattest_async.simulator import Simulator, FaultAction

    async with Simulator(seed=7, dossiers=5_000) as sim:
        sim.faults.rate_limit = 100            # per session and window, answered with 429
        sim.faults.add(FaultAction(kind="status", status=503, retry_after=1))
        async with ea.Client(sim.environment, username=sim.username,
                             password=sim.password) as client:
            ...
        assert sim.stats.early_requests == 0

``dialect`` says how answers are written: ``"captured"`` (the default) answers as the
real service was captured answering (``/account`` as a list, naive datetimes where the
spec says date, nulls, ``size``, v1.3 list items; v1.3 documents with
``faults.document_shape = "v1.3"``), because that is what a client meets in production;
``"spec"`` answers exactly the v1.1 OpenAPI schemas (objects, dates, no nulls,
``pageSize``, octet-stream files), checked by an OpenAPI validator in the tests. A client
must cope with both; the test suite runs it against both.

It serves the token endpoint (Keycloak-style password and refresh_token grants issuing JWTs
with ``account_ids``), all 18 operations of API v1.1 and the 3 EDGE v1.3 reads, on
127.0.0.1 only. Data are generated on demand from ``seed``. The fault plan and statistics
are also reachable over HTTP: ``GET/PUT /_simulator/faults``, ``GET /_simulator/stats``,
``POST /_simulator/reset`` and ``POST /_simulator/revoke``.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl as _ssl
import time
from types import TracebackType
from typing import Any

from aiohttp import web

from .._config import Environment
from ._data import DOSSIER_ID_BASE, REQUIREMENTS, RESERVED_SIREN_PREFIXES, DataSet, Thirdparty
from ._http import API_PREFIX, TOKEN_PATH
from ._plan import FaultAction, FaultPlan, RecordedRequest, SimulatorStats
from ._process import SimulatorProcess
from ._render import DIALECTS, Dialect
from ._service import SimulatorService

__all__ = [
    "DIALECTS",
    "DOSSIER_ID_BASE",
    "REQUIREMENTS",
    "RESERVED_SIREN_PREFIXES",
    "Dialect",
    "FaultAction",
    "FaultPlan",
    "RecordedRequest",
    "Simulator",
    "SimulatorProcess",
    "SimulatorStats",
    "Thirdparty",
]


class _ArrivalStamp(asyncio.Protocol):
    """Delegates to aiohttp's protocol and notes when each request's bytes arrived.

    Under load a handler may start well after its request arrived; whether a request was
    sent before or after a 429 must be judged on arrival, not on when it was handled.
    """

    def __init__(self, inner: Any, arrivals: dict[int, float]) -> None:
        self._inner = inner
        self._arrivals = arrivals

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._arrivals[id(self._inner)] = time.time()
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()  # type: ignore[no-any-return]

    def connection_lost(self, exc: Exception | None) -> None:
        self._arrivals.pop(id(self._inner), None)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class Simulator:
    """The simulated service, served on ``host``:``port`` (0 picks a free port).

    Use as ``async with Simulator(...) as sim``; the server stops, and every connection and
    pending timer is released, when the block exits.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        dossiers: int = 1_000,
        thirdparties: int | None = None,
        latency: float = 0.0,
        jitter: float = 0.0,
        account_id: int = 119631,
        username: str = "api-user@simulator.test",
        password: str | None = None,
        access_token_lifetime: float = 1800,
        refresh_token_lifetime: float = 1800,
        process_delay: float = 0.2,
        max_page_size: int = 2000,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: FaultPlan | None = None,
        page_cache_mb: int = 0,
        ssl: _ssl.SSLContext | None = None,
        dialect: Dialect = "captured",
    ) -> None:
        self.data = DataSet(
            seed=seed, dossiers=dossiers, thirdparties=thirdparties, account_id=account_id
        )
        plan = faults if faults is not None else FaultPlan()
        if latency or jitter:
            plan.latency, plan.jitter = latency, jitter
        self._service = SimulatorService(
            data=self.data,
            faults=plan,
            username=username,
            password=password if password is not None else secrets.token_urlsafe(18),
            access_lifetime=access_token_lifetime,
            refresh_lifetime=refresh_token_lifetime,
            process_delay=process_delay,
            max_page_size=max_page_size,
            fault_seed=seed,
            dialect=dialect,
        )
        # Rendered pages of dossiers kept for repeated reads (benchmarks of the client's CPU).
        self._service.page_cache_bytes = page_cache_mb * 1024 * 1024
        self._ssl = ssl  # serve HTTPS with this context (tests of TLS verification)
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._server: asyncio.AbstractServer | None = None

    def __repr__(self) -> str:
        state = self.base_url if self._runner is not None else "stopped"
        return f"<Simulator {state} dossiers={self.data.base_dossiers} seed={self.data.seed}>"

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("simulator already started")
        runner = web.AppRunner(
            self._service.build_app(), access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await runner.setup()
        protocols = runner.server
        assert protocols is not None
        arrivals = self._service.arrivals
        try:
            self._server = await asyncio.get_running_loop().create_server(
                lambda: _ArrivalStamp(protocols(), arrivals), self._host, self._port, ssl=self._ssl
            )
        except BaseException:
            await runner.cleanup()
            raise
        self._port = int(self._server.sockets[0].getsockname()[1])
        self._runner = runner

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        server, self._server = self._server, None
        if server is not None:
            server.close()  # stop accepting; open connections are closed by the runner
        if runner is not None:
            await runner.cleanup()
        if server is not None:
            await server.wait_closed()
        self._service.close()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- what a client needs -----------------------------------------------------------

    @property
    def dialect(self) -> Dialect:
        return self._service.render.dialect

    @property
    def port(self) -> int:
        return self._port

    @property
    def origin(self) -> str:
        scheme = "https" if self._ssl is not None else "http"
        return f"{scheme}://{self._host}:{self._port}"

    @property
    def base_url(self) -> str:
        return self.origin + API_PREFIX

    @property
    def token_url(self) -> str:
        return self.origin + TOKEN_PATH

    @property
    def environment(self) -> Environment:
        return Environment.custom(
            base_url=self.base_url, token_url=self.token_url, name="simulator"
        )

    @property
    def username(self) -> str:
        return self._service.username

    @property
    def password(self) -> str:
        return self._service.password

    @property
    def account_id(self) -> int:
        return self.data.account_id

    # -- control -----------------------------------------------------------------------

    @property
    def faults(self) -> FaultPlan:
        """The live fault plan: change any field, or ``add()`` scripted actions."""
        return self._service.faults

    @property
    def stats(self) -> SimulatorStats:
        return self._service.stats

    @property
    def requests(self) -> list[RecordedRequest]:
        """The requests received (most recent 20,000), oldest first."""
        return list(self._service.stats.log)

    def revoke_tokens(self) -> None:
        """End every session: access and refresh tokens stop working; passwords still do."""
        self._service.revoke_tokens()

    def expire_access_tokens(self) -> None:
        """Make every access token issued so far expired (refresh tokens keep working)."""
        self._service.expire_access_tokens()

    def reset(self) -> None:
        """Forget statistics, rate-limit windows and scripted faults (data stay as they are)."""
        self._service.reset()

    def live_dossier_ids(self) -> list[int]:
        """Every dossier id currently listed, in listing order."""
        return list(self.data.order())

    def insert_dossiers(self, count: int, *, spread: bool = True) -> list[int]:
        """Insert dossiers now, scattered among existing ones (or appended)."""
        rng = self._service.rng
        created = []
        for _ in range(count):
            order = self.data.order()
            position = (
                float(order[rng.randrange(len(order))]) + 0.5 if spread and len(order) else None
            )
            tp = self.data.thirdparty(rng.randrange(self.data.base_thirdparties))
            created.append(
                self.data.insert_dossier(
                    thirdparty=tp,
                    fields={"dossierReference": f"INS-{secrets.token_hex(5)}"},
                    position=position,
                )
            )
        return created

    def touch_dossiers(self, dossier_ids: list[int]) -> None:
        """Change these dossiers now (their ``stateLastChangeDate``), as a user would."""
        self._service.touch_dossiers(dossier_ids)

    @property
    def touched(self) -> list[int]:
        """Dossiers changed by ``touch_dossiers`` or the ``drift_touch`` fault, in order."""
        return list(self._service.touched)

    def delete_dossiers(self, dossier_ids: list[int] | None = None, *, count: int = 0) -> list[int]:
        """Delete the given dossiers, or ``count`` random ones; returns the ids removed."""
        if dossier_ids is None:
            order = self.data.order()
            rng = self._service.rng
            dossier_ids = (
                sorted({order[rng.randrange(len(order))] for _ in range(count)})
                if len(order)
                else []
            )
        removed = [d for d in dossier_ids if self.data.exists(d)]
        self.data.delete_dossiers(removed)
        return removed
