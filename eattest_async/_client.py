"""Client: the async context manager users hold. It keeps the arguments, the lifecycle and
the resource namespaces; every request goes through the one pipeline of ``_core``.
"""

from __future__ import annotations

import ssl as _ssl
from types import TracebackType
from typing import TYPE_CHECKING

from ._auth import Secret, TokenManager
from ._config import Environment, Limits, RetryPolicy, Timeouts
from ._coordination import Coordinator, LocalCoordinator, coordination_key
from ._core import ClientStats, Core
from ._exceptions import InvalidInputError, UsageError
from ._ratelimit import RateGate, RateSnapshot
from ._redact import redacted_url
from ._transport import AiohttpTransport

if TYPE_CHECKING:
    import aiohttp

    from .resources import (
        AccountResource,
        DocumentsResource,
        DossiersResource,
        FilesResource,
        ProcessesResource,
        RequirementsResource,
        ThirdpartiesResource,
    )

__all__ = ["Client", "ClientStats"]


class Client:
    """An authenticated connection to the e-Attestations API.

    ::

        async with Client(Environment.TEST, username="...", password="...") as client:
            page = await client.dossiers.list(siren="503829368")

    ``username``/``password`` sign in by the OIDC password grant; alternatively (or as
    well) pass an ``aiohttp.ClientSession`` of your own (``session=``), which the client
    uses but never closes. ``account_id`` skips discovering it (JWT claim, then
    ``GET /account``). ``timeouts``, ``retry`` and ``limits`` tune the behaviour; ``ssl``
    takes an ``ssl.SSLContext`` (a custom CA, client certificates). TLS is verified always.

    ``timeouts`` bound each attempt; ``retry.deadline`` bounds each call, retries, token
    grants and rate-limit waits included; ``limits`` bound every body read (see README,
    "Limits"). An injected session is used with ``raise_for_status=False`` and
    ``allow_redirects=False`` per request and must not retry or redirect by other means.
    A client belongs to the event loop that opened it.

    ``coordinator`` shares the token and the rate gate with the other processes of the
    account (``RedisCoordinator(url)``; see "Running several workers" in the README).
    """

    def __init__(
        self,
        environment: Environment,
        *,
        username: str | None = None,
        password: str | None = None,
        account_id: int | None = None,
        session: aiohttp.ClientSession | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        limits: Limits | None = None,
        ssl: _ssl.SSLContext | None = None,
        user_agent: str | None = None,
        coordinator: Coordinator | None = None,
    ) -> None:
        if not isinstance(environment, Environment):
            raise InvalidInputError(
                "environment", "expected an Environment (TEST, PROD or custom(...))"
            )
        if (username is None) != (password is None):
            raise InvalidInputError(
                "password" if password is None else "username",
                "give both username and password, or neither",
            )
        if username is None and session is None:
            raise InvalidInputError(
                "username", "credentials, or an aiohttp session that authenticates, needed"
            )
        if account_id is not None and (
            isinstance(account_id, bool) or not isinstance(account_id, int) or account_id <= 0
        ):
            raise InvalidInputError("account_id", "expected a positive integer")
        if coordinator is not None and not all(
            hasattr(coordinator, name) for name in ("gate_store", "token_store", "aclose")
        ):
            raise InvalidInputError("coordinator", "expected a RedisCoordinator or a Coordinator")
        from . import __version__
        from .resources import (
            AccountResource,
            DocumentsResource,
            DossiersResource,
            FilesResource,
            ProcessesResource,
            RequirementsResource,
            ThirdpartiesResource,
        )

        self.environment = environment
        self.timeouts = timeouts or Timeouts()
        self.retry_policy = retry or RetryPolicy()
        self.limits = limits or Limits()
        self.stats = ClientStats()
        self._username = username
        self._transport = AiohttpTransport(
            session=session,
            max_connections=self.limits.max_connections,
            ssl=ssl,
            user_agent=user_agent or f"eattest-async/{__version__}",
            allow_http=environment.allow_http,
        )
        # What this client shares with other processes of the account (nothing by default).
        self._coordinator = coordinator or LocalCoordinator()
        shared = coordination_key(environment, username)
        self._core = core = Core(
            environment=environment,
            transport=self._transport,
            timeouts=self.timeouts,
            retry=self.retry_policy,
            limits=self.limits,
            stats=self.stats,
            gate=RateGate(
                max_rate=self.limits.max_rate, store=self._coordinator.gate_store(shared)
            ),
            account_id=account_id,
        )
        if username is not None and password is not None:
            core.tokens = TokenManager(
                send_form=core.send_token_form,
                username=username,
                password=Secret(password),
                client_id=environment.client_id,
                store=self._coordinator.token_store(shared, password=password),
            )
            self.stats.token_grants = core.tokens.grants

        self.account: AccountResource = AccountResource(core)
        self.thirdparties: ThirdpartiesResource = ThirdpartiesResource(core)
        self.dossiers: DossiersResource = DossiersResource(core)
        self.documents: DocumentsResource = DocumentsResource(core)
        self.requirements: RequirementsResource = RequirementsResource(core)
        self.processes: ProcessesResource = ProcessesResource(core)
        self.files: FilesResource = FilesResource(core)

    def __repr__(self) -> str:
        state = "open" if self._core.opened else "not open"
        state = "closed" if self._transport.closed else state
        user = f" user={self._username!r}" if self._username else ""
        url = redacted_url(self.environment.base_url)
        return f"<Client {self.environment.name} {url}{user} {state}>"

    @property
    def _tokens(self) -> TokenManager | None:
        return self._core.tokens

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        if self._core.opened:
            # A nested ``async with client`` would close the client on its exit, under
            # the outer block still using it.
            raise UsageError("this client is open already: enter it once, use it inside")
        await self._core.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close what the client opened (an injected session stays open). Idempotent."""
        try:
            await self._core.close()
        finally:
            await self._coordinator.aclose()

    @property
    def token_lifetime(self) -> float | None:
        """Seconds the current access token was issued for (None before the first call)."""
        tokens = self._core.tokens
        token = tokens.current if tokens is not None else None
        return token.lifetime if token is not None else None

    @property
    def rate(self) -> RateSnapshot:
        """What the client's rate gate did and knows: requests sent, 429s met, the rate
        achieved, the limit (announced, learned or configured) and the time spent waiting."""
        return self._core.gate.snapshot()

    async def account_id(self) -> int:
        """The account every call is made for: given, else from the token, else GET /account."""
        return await self._core.account_id()
