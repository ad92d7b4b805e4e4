"""Client: the async context manager users hold; owns session, token, rate gate, retries.

Per request: resource method -> ``_call`` -> retry loop -> (token -> rate gate ->
transport) -> ``_protocol.decipher``. Each arrow crosses one module.
"""

from __future__ import annotations

import collections
import logging
import ssl as _ssl
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import anyio
import attrs

from . import _protocol
from ._auth import Secret, Token, TokenManager
from ._config import Environment, Limits, RetryPolicy, Timeouts
from ._downloads import choose_target, write_atomically
from ._exceptions import ClientClosedError, EattestError, InvalidInputError
from ._protocol import ApiRequest, Envelope
from ._ratelimit import RateGate
from ._retry import retrying
from ._transport import RawResponse, Transport

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

logger = logging.getLogger("eattest_async")


class _Renewals:
    """Whether a 401 may be answered by renewing the token and replaying the request.

    Once per call; a second time only if the token refused is not the one already renewed
    (the renewal worked, and that new token was refused in turn: revoked again). The same
    token refused twice, or a third refusal, is final: no renewal storm is possible.
    """

    def __init__(self) -> None:
        self._refused: list[Token] = []

    def allow(self, token: Token) -> bool:
        if len(self._refused) >= 2 or (self._refused and self._refused[-1] is token):
            return False
        self._refused.append(token)
        return True


@attrs.define
class ClientStats:
    """What the client did: requests sent, retries by cause, token grants, cooldowns."""

    requests: int = 0
    retries: collections.Counter[str] = attrs.field(factory=collections.Counter)
    token_grants: collections.Counter[str] = attrs.field(factory=collections.Counter)
    cooldowns: int = 0
    waited_for_rate_limit: float = 0.0


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
        self._account_id = account_id
        self._account_lock = anyio.Lock()
        self._transport = Transport(
            session=session,
            max_connections=self.limits.max_connections,
            ssl=ssl,
            user_agent=user_agent or f"eattest-async/{__version__}",
        )
        self._gate = RateGate(max_rate=self.limits.max_rate)
        self._tokens: TokenManager | None = None
        if username is not None and password is not None:
            self._tokens = TokenManager(
                send_form=self._send_token_form,
                username=username,
                password=Secret(password),
                client_id=environment.client_id,
            )
            self.stats.token_grants = self._tokens.grants
        self._entered = False

        self.account: AccountResource = AccountResource(self)
        self.thirdparties: ThirdpartiesResource = ThirdpartiesResource(self)
        self.dossiers: DossiersResource = DossiersResource(self)
        self.documents: DocumentsResource = DocumentsResource(self)
        self.requirements: RequirementsResource = RequirementsResource(self)
        self.processes: ProcessesResource = ProcessesResource(self)
        self.files: FilesResource = FilesResource(self)

    def __repr__(self) -> str:
        state = "closed" if self._transport.closed else ("open" if self._entered else "not open")
        user = f" user={self._username!r}" if self._username else ""
        return f"<Client {self.environment.name} {self.environment.base_url}{user} {state}>"

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        await self._transport.open()
        self._entered = True
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
        self._entered = False
        await self._transport.close()

    def _require_open(self) -> None:
        if self._transport.closed:
            raise ClientClosedError("this client was closed; create a new one")
        if not self._entered:
            raise ClientClosedError(
                "the client is not open: use 'async with Client(...) as client'"
            )

    @property
    def token_lifetime(self) -> float | None:
        """Seconds the current access token was issued for (None before the first call)."""
        token = self._tokens.current if self._tokens is not None else None
        return token.lifetime if token is not None else None

    # -- identity --------------------------------------------------------------------------

    async def account_id(self) -> int:
        """The account every call is made for: given, else from the token, else GET /account."""
        known = self._account_id
        if known is not None:
            return known
        async with self._account_lock:
            known = self._known_account_id()  # another task may have resolved it meanwhile
            if known is not None:
                return known
            if self._tokens is not None:
                token = await self._tokens.get()
                if token.account_ids:
                    self._account_id = token.account_ids[0]
                    return self._account_id
            account = await self.account.get()
            if account.id is None:
                raise InvalidInputError(
                    "account_id", "the service did not say which account this is; pass it"
                )
            self._account_id = account.id
            return self._account_id

    def _known_account_id(self) -> int | None:
        return self._account_id

    # -- the core --------------------------------------------------------------------------

    def _on_retry(self, cause: str, error: EattestError) -> None:
        self.stats.retries[cause] += 1
        logger.info("retrying after %s: %s", cause, error)

    async def _send_token_form(self, form: Mapping[str, str]) -> tuple[int, bytes]:
        async def attempt() -> tuple[int, bytes]:
            self.stats.requests += 1
            raw = await self._transport.send(
                "POST",
                self.environment.token_url,
                path="token",
                headers={"Accept": "application/json"},
                form=form,
                timeout=self.timeouts.token,
            )
            if raw.status == 429 or raw.status >= 500:
                raise _protocol.error_from_response(
                    raw.status,
                    raw.headers,
                    raw.body,
                    method="POST",
                    request_path="token",
                    now=time.time(),
                )
            return raw.status, raw.body

        return await retrying(
            attempt, policy=self.retry_policy, may_repeat=True, on_retry=self._on_retry
        )

    async def _call(self, request: ApiRequest) -> Envelope:
        """Send one API request through the retry loop and decipher its answer."""
        self._require_open()
        url = self.environment.base_url + request.path
        timeout = request.timeout if request.timeout is not None else self.timeouts.json
        headers = {"Accept": "application/json"}
        if request.body is not None:
            headers["Content-Type"] = "application/json"
        renewals = _Renewals()

        async def attempt() -> Envelope:
            while True:
                token = await self._tokens.get() if self._tokens is not None else None
                raw = await self._exchange(request, url, headers, token, timeout)
                if raw.status == 401 and token is not None and renewals.allow(token):
                    await self._tokens.replace(token)  # type: ignore[union-attr]
                    continue
                # A 401 left (renewals spent, or no credentials of ours) is deciphered
                # like any error: UnauthorizedError with the server's message, as downloads do.
                return _protocol.decipher(
                    raw.status,
                    raw.headers,
                    raw.body,
                    method=request.method,
                    request_path=request.path,
                    now=time.time(),
                    expect_content=request.expect_content,
                )

        return await retrying(
            attempt,
            policy=self.retry_policy,
            may_repeat=request.idempotent or self.retry_policy.retry_non_idempotent,
            on_retry=self._on_retry,
        )

    async def _exchange(
        self,
        request: ApiRequest,
        url: str,
        headers: Mapping[str, str],
        token: Token | None,
        timeout: float,
    ) -> RawResponse:
        if token is not None:
            headers = {**headers, "Authorization": f"Bearer {token.access.reveal()}"}
        await self._gate.acquire()
        self.stats.requests += 1
        started = time.monotonic()
        try:
            raw = await self._transport.send(
                request.method,
                url,
                path=request.path,
                headers=headers,
                params=request.query or None,
                body=request.body,
                timeout=timeout,
            )
        except BaseException:
            self._gate.abandon()
            raise
        await self._note_answer(raw.status, raw.headers)
        logger.debug(
            "%s %s -> %s in %.0f ms",
            request.method,
            request.path,
            raw.status,
            1000 * (time.monotonic() - started),
        )
        return raw

    async def _note_answer(self, status: int, headers: Mapping[str, str]) -> None:
        now = time.time()
        retry_after = (
            _protocol.parse_retry_after(headers.get("Retry-After"), now)
            if status in (429, 503)
            else None
        )
        await self._gate.release(
            status=status, retry_after=retry_after, info=_protocol.parse_ratelimit(headers, now)
        )
        self.stats.cooldowns = self._gate.cooldowns
        self.stats.waited_for_rate_limit = self._gate.waited

    async def _download(
        self,
        request: ApiRequest,
        dest: Path,
        *,
        expected_size: int | None,
        fallback_name: str,
        filename: str | None = None,
        overwrite: bool = False,
    ) -> Path:
        """Stream a file into the folder ``dest`` atomically, with retries."""
        self._require_open()
        url = self.environment.base_url + request.path
        timeout = request.timeout if request.timeout is not None else self.timeouts.file
        renewals = _Renewals()

        async def attempt() -> Path:
            while True:
                token = await self._tokens.get() if self._tokens is not None else None
                headers = {"Accept": "*/*"}
                if token is not None:
                    headers["Authorization"] = f"Bearer {token.access.reveal()}"
                await self._gate.acquire()
                self.stats.requests += 1
                released = False
                try:
                    async with self._transport.stream(
                        "GET", url, path=request.path, headers=headers, timeout=timeout
                    ) as response:
                        released = True
                        await self._note_answer(response.status, response.headers)
                        if response.status == 401 and token is not None and renewals.allow(token):
                            await self._tokens.replace(token)  # type: ignore[union-attr]
                            continue
                        if not 200 <= response.status < 300:
                            raise _protocol.error_from_response(
                                response.status,
                                response.headers,
                                await response.read(),
                                method="GET",
                                request_path=request.path,
                                now=time.time(),
                            )
                        target = choose_target(
                            dest, response.headers, fallback_name, filename=filename
                        )
                        announced = response.headers.get("Content-Length")
                        size = expected_size
                        if announced is not None and announced.isdigit():
                            size = int(announced) if size is None else size
                        return await write_atomically(
                            response.chunks(),
                            target,
                            expected_size=size,
                            method="GET",
                            path=request.path,
                            overwrite=overwrite,
                        )
                finally:
                    if not released:
                        self._gate.abandon()

        return await retrying(
            attempt, policy=self.retry_policy, may_repeat=True, on_retry=self._on_retry
        )
