"""The single request pipeline. JSON calls, downloads and token grants all go through it::

    retry loop (one per call, bounded by the call's deadline)
      └─ attempt: token (AuthFlow) -> rate gate -> transport -> note the answer
                  -> 401 rule -> consume (read a JSON body, stream to a file, or a token
                  answer) -> finish (decipher JSON once the connection is free again, on
                  the caller's turn if it decodes one answer at a time: a scan)

A token grant is one exchange of this pipeline made inside the attempt of the call that
needs the token, so it is bounded by that call's deadline and retried by that call's loop;
there is no loop inside another. Every body is read in chunks under a limit counted after
decompression (``Limits``); every text a server sends into an error or a log line is
redacted of the secrets the client knows.

Resources hold a :class:`Core`, never the ``Client``: the client only keeps arguments,
lifecycle and namespaces.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import random
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Protocol, TypeVar

import anyio
import attrs

from . import _protocol
from ._auth import AuthFlow, Token, TokenManager
from ._config import Environment, Limits, RetryPolicy, Timeouts
from ._converter import structure
from ._downloads import Inflater, choose_target, write_atomically
from ._exceptions import (
    ApiError,
    ClientClosedError,
    EattestError,
    EventLoopError,
    IncompleteResponseError,
    InvalidInputError,
    RateLimitError,
    RequestTimeoutError,
    ResponseTooLargeError,
    UnexpectedResponseError,
)
from ._protocol import ApiRequest, DecodeTurn, Envelope
from ._ratelimit import RateGate
from ._redact import Redactor
from ._retry import retrying
from ._transport import Response, Transport
from .models import Account

__all__ = ["ClientStats", "Core", "read_body"]

logger = logging.getLogger("eattest_async")

T = TypeVar("T")
R = TypeVar("R")


async def _as_is(value: T) -> T:
    return value


# How much a compressed file may expand over its bytes on the wire: far above what documents
# compress by (PDFs barely, text ~10 times), far below a gzip bomb (~1000 times). Judged
# only past the floor, so that a small, very compressible file is never refused.
_MAX_EXPANSION = 100
_CHUNK_OUT = 256 * 1024  # bytes of a compressed file decoded at a time
_EXPANSION_FLOOR = 8 * 1024 * 1024


@attrs.define
class ClientStats:
    """What the client did: requests sent, retries by cause, token grants, cooldowns."""

    requests: int = 0
    retries: collections.Counter[str] = attrs.field(factory=collections.Counter)
    token_grants: collections.Counter[str] = attrs.field(factory=collections.Counter)
    cooldowns: int = 0
    waited_for_rate_limit: float = 0.0


def _content_length(headers: Mapping[str, str]) -> int | None:
    value = headers.get("Content-Length")
    if value is None or not value.strip().isdigit() or not value.strip().isascii():
        return None
    return int(value.strip())


def _identity(headers: Mapping[str, str]) -> bool:
    return headers.get("Content-Encoding", "identity").strip().lower() in ("", "identity")


async def read_body(
    response: Response, *, limit: int, truncate: bool, method: str, path: str
) -> bytes:
    """The body, read in chunks, at most ``limit`` bytes after decompression.

    Beyond it: with ``truncate`` (error answers, whose status says what matters) the rest
    is dropped unread; otherwise it is a :class:`ResponseTooLargeError`. A Content-Length
    beyond the limit is refused before reading anything.
    """

    def too_large(what: str) -> ResponseTooLargeError:
        return ResponseTooLargeError(
            f"the answer {what}, more than the limit of {limit} bytes (see Limits)",
            status=response.status,
            method=method,
            path=path,
        )

    announced = _content_length(response.headers)
    if not truncate and announced is not None and announced > limit:
        raise too_large(f"announces {announced} bytes")
    # The chunks kept as they come and joined once: one copy of the body, not a growing
    # buffer's copies and then another.
    parts: list[bytes] = []
    size = 0
    async for chunk in response.chunks():
        if size + len(chunk) > limit:
            if truncate:
                parts.append(chunk[: limit - size])
                break
            del parts  # before raising: the traceback must not keep it alive
            raise too_large("is longer")
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


class Gate(Protocol):
    """What the pipeline needs of a gate (``RateGate`` for the API, see ``_ratelimit``)."""

    async def acquire(self, *, deadline: float | None = None) -> None: ...

    async def release(
        self,
        *,
        status: int,
        retry_after: float | None = None,
        info: _protocol.RateLimitInfo | None = None,
    ) -> None: ...

    def abandon(self) -> None: ...


class CooldownGate:
    """The token endpoint's gate: its ``Retry-After`` only. No pacing (grants are single
    flight already), so that a dead identity provider is reported as what it is."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = anyio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._until = -math.inf

    async def acquire(self, *, deadline: float | None = None) -> None:
        while (wait := self._until - self._clock()) > 0:
            if deadline is not None and self._until > deadline:
                raise RateLimitError(
                    "the token endpoint asked to wait past this call's deadline",
                    status=None,
                    method="POST",
                    path="token",
                    retry_after=wait,
                )
            await self._sleep(wait)

    async def release(
        self,
        *,
        status: int,
        retry_after: float | None = None,
        info: _protocol.RateLimitInfo | None = None,
    ) -> None:
        if retry_after:
            self._until = max(self._until, self._clock() + retry_after)

    def abandon(self) -> None:
        pass


class _Replay:
    """The answer was a 401 to renew the token for; the request goes again."""


_REPLAY = _Replay()


@attrs.frozen
class _Body:
    """A 2xx JSON answer read whole, its connection free again: deciphered next."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class Core:
    """What resources need of a client: send a call, download a file, know the account.

    Owns the pipeline (transport, rate gates, token manager, retry policy) and the
    lifecycle checks (open, closed, bound to one event loop).
    """

    def __init__(
        self,
        *,
        environment: Environment,
        transport: Transport,
        timeouts: Timeouts,
        retry: RetryPolicy,
        limits: Limits,
        stats: ClientStats | None = None,
        gate: RateGate | None = None,
        token_gate: Gate | None = None,
        account_id: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[object]] = anyio.sleep,
    ) -> None:
        self.environment = environment
        self.transport = transport
        self.timeouts = timeouts
        self.retry_policy = retry
        self.limits = limits
        self.stats = stats or ClientStats()
        self.gate = gate or RateGate()
        # The token endpoint is another service: its own Retry-After must not hold API calls
        # that already have a token (nor the reverse).
        self.token_gate = token_gate or CooldownGate(clock=clock, sleep=sleep)
        self.tokens: TokenManager | None = None
        self.redactor = Redactor(self._secrets)
        self._clock = clock
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._account_id = account_id
        self._account_lock = anyio.Lock()
        self._opened = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def knows_account_id(self) -> bool:
        return self._account_id is not None

    @property
    def known_account_id(self) -> int | None:
        """The account id if given or discovered already (None: not yet)."""
        return self._account_id

    def clock(self) -> float:
        """The core's clock (monotonic): deadlines are on it."""
        return self._clock()

    def _secrets(self) -> Iterable[str]:
        return self.tokens.secrets() if self.tokens is not None else ()

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        await self.transport.open()
        self._loop = asyncio.get_running_loop()
        self._opened = True

    async def close(self) -> None:
        self._opened = False
        await self.transport.close()

    @property
    def opened(self) -> bool:
        return self._opened

    def require_open(self) -> None:
        if self.transport.closed:
            raise ClientClosedError("this client was closed; create a new one")
        if not self._opened:
            raise ClientClosedError(
                "the client is not open: use 'async with Client(...) as client'"
            )
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not self._loop:
            raise EventLoopError(
                "this client belongs to another event loop (or to one that is closed): "
                "open one client per event loop"
            )

    # -- identity ------------------------------------------------------------------------

    async def account_id(self, *, started: float | None = None) -> int:
        """The account every call is made for: given, else from the token, else GET /account.

        ``started``: when the user's call that needs it began (on :meth:`clock`). The whole
        discovery (the token, waiting for another task's discovery, GET /account) then
        counts in that call's deadline: one deadline per user call, never one per step.

        No lock is held while the token is fetched (its renewal is single-flight already
        and bounded by a deadline); only the GET /account fallback is made once for all.
        """
        self.require_open()
        known = self._account_id
        if known is not None:
            return known
        if started is None:
            started = self._clock()
        if self.tokens is not None:
            token = await self._token_within_deadline(started)
            if token.account_ids:
                self._account_id = token.account_ids[0]
                return self._account_id
        remaining = started + self.retry_policy.deadline - self._clock()
        with anyio.move_on_after(max(remaining, 0.0)) as waiting:
            await self._account_lock.acquire()
        if waiting.cancelled_caught:
            raise RequestTimeoutError("the account id could not be found within the deadline")
        try:
            if self._account_id is not None:  # another task resolved it meanwhile
                return self._account_id
            request = ApiRequest(
                method="GET", path="/account", operation="get_account", started=started
            )
            envelope = await self.call(request)
            data = _protocol.single_content(envelope, method="GET", request_path="/account")
            found = structure(data, Account, method="GET", path="/account").id
            if found is None:
                raise InvalidInputError(
                    "account_id", "the service did not say which account this is; pass it"
                )
            self._account_id = found
            return found
        finally:
            self._account_lock.release()

    async def _token_within_deadline(self, started: float) -> Token:
        assert self.tokens is not None
        tokens = self.tokens

        async def attempt(deadline: float) -> Token:
            return await tokens.get(deadline=deadline)

        with self._scrubbing():
            return await retrying(
                attempt,
                policy=self.retry_policy,
                may_repeat=True,
                on_retry=self._on_retry,
                clock=self._clock,
                rng=self._rng,
                sleep=self._sleep,
                method="POST",
                path="token",
                started=started,
            )

    # -- the pipeline --------------------------------------------------------------------

    def _on_retry(self, cause: str, error: EattestError) -> None:
        self.stats.retries[cause] += 1
        self.redactor.scrub(error)
        logger.info("retrying after %s: %s", cause, error)

    @contextlib.contextmanager
    def _scrubbing(self) -> Iterator[None]:
        """The safety net where errors leave the core: no secret in any of their texts,
        however a server wrote it back, and wherever it was copied from."""
        try:
            yield
        except EattestError as error:
            self.redactor.scrub(error)
            raise

    async def _exchange(
        self,
        gate: Gate,
        method: str,
        url: str,
        *,
        path: str,
        headers: Mapping[str, str],
        deadline: float,
        timeout: float,
        consume: Callable[[Response], Awaitable[T]],
        params: tuple[tuple[str, str], ...] | None = None,
        body: bytes | None = None,
        form: Mapping[str, str] | None = None,
        decompress: bool = True,
    ) -> T:
        """gate -> transport -> note the answer -> consume. No retry here."""
        await gate.acquire(deadline=deadline)
        answered = False
        started = self._clock()
        try:
            self.stats.requests += 1
            async with self.transport.stream(
                method,
                url,
                path=path,
                headers=headers,
                params=params,
                body=body,
                form=form,
                timeout=timeout,
                decompress=decompress,
            ) as response:
                answered = True
                await self._note_answer(gate, response.status, response.headers)
                logger.debug(
                    "%s %s -> %s in %.0f ms",
                    method,
                    path,
                    response.status,
                    1000 * (self._clock() - started),
                )
                return await consume(response)
        finally:
            if not answered:
                gate.abandon()

    async def _note_answer(self, gate: Gate, status: int, headers: Mapping[str, str]) -> None:
        now = time.time()
        retry_after = (
            _protocol.parse_retry_after(_protocol.header(headers, "Retry-After"), now)
            if status in (429, 503)
            else None
        )
        await gate.release(
            status=status, retry_after=retry_after, info=_protocol.parse_ratelimit(headers, now)
        )
        if gate is self.gate:
            self.stats.cooldowns = self.gate.cooldowns
            self.stats.waited_for_rate_limit = self.gate.waited

    async def _error(self, response: Response, *, method: str, path: str) -> ApiError:
        """The typed error of a non-2xx answer: a bounded, redacted read of its body."""
        body = await read_body(
            response,
            limit=self.limits.max_error_body_bytes,
            truncate=True,
            method=method,
            path=path,
        )
        return _protocol.error_from_response(
            response.status,
            response.headers,
            self.redactor.bytes(body),
            method=method,
            request_path=path,
            now=time.time(),
        )

    async def _authenticated(
        self,
        request: ApiRequest,
        url: str,
        headers: Mapping[str, str],
        *,
        timeout: float,
        consume: Callable[[Response], Awaitable[R]],
        finish: Callable[[R], Awaitable[T]],
        may_repeat: bool,
        decompress: bool = True,
    ) -> T:
        """One call: the retry loop around attempts of token -> exchange -> 401 rule ->
        ``finish`` (what is done with the answer once its connection went back to the pool:
        deciphering; its errors are retried like the exchange's)."""
        self.require_open()
        flow = AuthFlow(self.tokens)

        async def attempt(deadline: float) -> T:
            while True:  # at most twice more: the AuthFlow allows two renewals per call
                token = await flow.token(deadline=deadline)
                sent = dict(headers)
                if token is not None:
                    sent["Authorization"] = f"Bearer {token.access.reveal()}"

                async def handle(response: Response, token: Token | None = token) -> R | _Replay:
                    if flow.wants_replay(response.status, token):
                        return _REPLAY  # renew after this exchange closed its connection
                    return await consume(response)

                try:
                    outcome = await self._exchange(
                        self.gate,
                        request.method,
                        url,
                        path=request.path,
                        headers=sent,
                        params=request.query or None,
                        body=request.body,
                        deadline=deadline,
                        timeout=timeout,
                        consume=handle,
                        decompress=decompress,
                    )
                    if not isinstance(outcome, _Replay):
                        return await finish(outcome)
                except EattestError as error:
                    # Redacted with the token this request carried: while it was on its
                    # way, renewals may have pushed it out of what the manager remembers.
                    if token is not None:
                        self.redactor.also(token.access.reveal()).scrub(error)
                    raise
                assert token is not None
                await flow.renew(token, deadline=deadline)

        with self._scrubbing():
            return await retrying(
                attempt,
                policy=self.retry_policy,
                may_repeat=may_repeat,
                on_retry=self._on_retry,
                clock=self._clock,
                rng=self._rng,
                sleep=self._sleep,
                method=request.method,
                path=request.path,
                started=request.started,
            )

    async def call(self, request: ApiRequest, *, turn: DecodeTurn | None = None) -> Envelope:
        """Send one API request through the pipeline and decipher its answer.

        ``turn``: the answer is deciphered only once it is acquired (see
        :class:`~eattest_async._protocol.DecodeTurn`); the caller releases it."""
        url = self.environment.base_url + request.path
        timeout = request.timeout if request.timeout is not None else self.timeouts.json
        headers = {"Accept": "application/json"}
        if request.body is not None:
            headers["Content-Type"] = "application/json"

        async def consume(response: Response) -> _Body:
            if not 200 <= response.status < 300:
                raise await self._error(response, method=request.method, path=request.path)
            body = await read_body(
                response,
                limit=self.limits.max_body_bytes,
                truncate=False,
                method=request.method,
                path=request.path,
            )
            return _Body(response.status, response.headers, body)

        def decipher(answer: _Body, data: bytes) -> Envelope:
            return _protocol.decipher(
                answer.status,
                answer.headers,
                data,
                method=request.method,
                request_path=request.path,
                now=time.time(),
                expect_content=request.expect_content,
            )

        async def finish(answer: _Body) -> Envelope:
            if turn is not None:
                await turn.acquire()
            try:
                try:
                    return decipher(answer, answer.body)
                except ApiError:
                    # A 2xx carrying errors quotes server text: decipher it again, redacted.
                    # (Data itself is never redacted: a short password could be in a name.)
                    return decipher(answer, self.redactor.bytes(answer.body))
            except BaseException:
                if turn is not None:
                    turn.release()
                raise

        return await self._authenticated(
            request,
            url,
            headers,
            timeout=timeout,
            consume=consume,
            finish=finish,
            may_repeat=request.idempotent or self.retry_policy.retry_non_idempotent,
        )

    async def download(
        self,
        request: ApiRequest,
        dest: Path,
        *,
        expected_size: int | None,
        fallback_name: str,
        filename: str | None = None,
        overwrite: bool = False,
    ) -> Path:
        """Stream a file into the folder ``dest`` atomically, with retries.

        Only a 200 is a file: any other 2xx (206 part of one, 204 nothing, 202 not ready)
        and an HTML page (a login or proxy page) are :class:`UnexpectedResponseError`, as
        for JSON calls. The write stops as soon as it passes a bound (see ``_file_chunks``).
        """
        url = self.environment.base_url + request.path
        timeout = request.timeout if request.timeout is not None else self.timeouts.file

        async def consume(response: Response) -> Path:
            if not 200 <= response.status < 300:
                raise await self._error(response, method="GET", path=request.path)
            if response.status != 200:
                raise UnexpectedResponseError(
                    f"unexpected response: HTTP {response.status} where a whole file was due",
                    status=response.status,
                    method="GET",
                    path=request.path,
                )
            if "html" in response.headers.get("Content-Type", "").lower():
                raise UnexpectedResponseError(
                    "unexpected response: an HTML page instead of a file (a proxy or login page?)",
                    status=response.status,
                    method="GET",
                    path=request.path,
                )
            target = choose_target(dest, response.headers, fallback_name, filename=filename)
            size = expected_size
            if size is None and _identity(response.headers):
                size = _content_length(response.headers)
            return await write_atomically(
                self._file_chunks(response, path=request.path),
                target,
                expected_size=size,
                method="GET",
                path=request.path,
                overwrite=overwrite,
            )

        # Files are sent as they are (PDFs do not compress): a server that compresses anyway
        # is still read right, its Content-Length then counting the bytes on the wire.
        headers = {"Accept": "*/*", "Accept-Encoding": "identity"}
        return await self._authenticated(
            request,
            url,
            headers,
            timeout=timeout,
            consume=consume,
            finish=_as_is,
            may_repeat=True,
            decompress=False,  # undone by _file_chunks, which checks the stream ends whole
        )

    async def _file_chunks(self, response: Response, *, path: str) -> AsyncIterator[bytes]:
        """A file body, decoded and bounded whatever the server announces (or does not).

        Always ``Limits.max_download_bytes`` as written (decoded); an identity body's
        Content-Length beyond it is refused unread. A compressed body (sent although we
        asked for none) is decoded here, a piece of at most ``_CHUNK_OUT`` bytes at a time:
        it may not expand more than ``_MAX_EXPANSION`` times its bytes on the wire (a gzip
        bomb: ~1000 times), its wire bytes must be the Content-Length, and its stream must
        end whole (a gzip cut short is otherwise a shorter file, as good as any). A piece
        past a bound is never yielded, so never written.
        """
        cap = self.limits.max_download_bytes

        def too_large(what: str) -> ResponseTooLargeError:
            return ResponseTooLargeError(
                f"the file {what}; stopped", status=response.status, method="GET", path=path
            )

        def incomplete(what: str) -> IncompleteResponseError:
            return IncompleteResponseError(f"the file {what}", method="GET", path=path)

        encoding = response.headers.get("Content-Encoding", "")
        try:
            inflater = Inflater(encoding)
        except ValueError:
            raise UnexpectedResponseError(
                f"unexpected response: a file sent with Content-Encoding {encoding[:40]!r}, "
                "which this client does not decode",
                status=response.status,
                method="GET",
                path=path,
            ) from None
        announced = _content_length(response.headers)
        if inflater.identity and announced is not None and announced > cap:
            raise too_large(f"announces {announced} bytes, more than the limit of {cap} bytes")
        wire = decoded = 0

        def checked(piece: bytes) -> bytes:
            nonlocal decoded
            decoded += len(piece)
            if decoded > cap:
                raise too_large(f"is more than {cap} bytes (Limits.max_download_bytes)")
            if not inflater.identity and decoded > max(_EXPANSION_FLOOR, _MAX_EXPANSION * wire):
                raise too_large(
                    f"expands more than {_MAX_EXPANSION} times its {wire} compressed bytes "
                    "(a decompression bomb?)"
                )
            return piece

        try:
            async for chunk in response.chunks():
                wire += len(chunk)
                for piece in inflater.feed(chunk, _CHUNK_OUT):
                    yield checked(piece)
            for piece in inflater.finish(_CHUNK_OUT):
                yield checked(piece)
        except zlib.error as error:
            raise incomplete(f"is not a whole {encoding.strip()} stream ({error})") from None
        if not inflater.complete:
            raise incomplete(f"ended before its {encoding.strip()} stream did ({wire} bytes)")
        if not inflater.identity and announced is not None and wire != announced:
            raise incomplete(f"came in {wire} compressed bytes, {announced} were announced")

    async def send_token_form(
        self, form: Mapping[str, str], *, deadline: float
    ) -> tuple[int, bytes]:
        """One exchange with the token endpoint (the TokenManager's ``send_form``).

        No retry here: a 429 or 5xx raises its typed error, and the call that needed the
        token retries (within its deadline). Other refusals are returned for the token
        manager to turn into an :class:`AuthenticationError`, their text redacted.
        """

        async def consume(response: Response) -> tuple[int, bytes]:
            if response.status == 429 or response.status >= 500:
                raise await self._error(response, method="POST", path="token")
            ok = response.status == 200
            body = await read_body(
                response,
                limit=self.limits.max_token_body_bytes if ok else self.limits.max_error_body_bytes,
                truncate=not ok,
                method="POST",
                path="token",
            )
            return response.status, body if ok else self.redactor.bytes(body)

        return await self._exchange(
            self.token_gate,
            "POST",
            self.environment.token_url,
            path="token",
            headers={"Accept": "application/json"},
            form=form,
            deadline=deadline,
            timeout=self.timeouts.token,
            consume=consume,
        )
