"""The transport: a small protocol (one streamed exchange), and its only real implementation
over aiohttp (the only aiohttp import of the client, with the simulator's).

No retries, no status rules and no body reading policy here: the core (``_core``) owns
those. The protocol has one exchange method, ``stream``: JSON answers, token answers and
files are all read by the core, in chunks, under its size limits (a ``send`` reading a
whole body would be the unbounded path). This layer sends one request, follows redirects
by hand under strict rules (no credentials and no body cross to another origin, plain
http only to loopback), bounds one attempt by its timeout, and translates aiohttp's
errors into ours.

A session injected by the caller is used as it is, but every request sets
``raise_for_status=False``, ``allow_redirects=False``, ``middlewares=()`` and
``auto_decompress`` (on, but for files: the core checks their compressed stream is whole)
and disables its timeouts (ours apply); aiohttp's silent re-send
of idempotent requests on a dropped keep-alive connection is switched off on it too.
Such a session must not retry, redirect, or raise on statuses by other means (a subclass
overriding ``_request``, a custom connector): our single retry loop would be bypassed.
Its own credentials (default Authorization, Proxy-Authorization or Cookie headers,
``auth``, cookies for the target) would go with every request: a redirect to another
origin is then refused. Its connector's ``limit``/``limit_per_host`` bound our slots.
"""

from __future__ import annotations

import asyncio
import re
import ssl as _ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import aiohttp
import anyio
from yarl import URL

from ._config import is_loopback_host
from ._exceptions import (
    ClientClosedError,
    ConnectError,
    IncompleteResponseError,
    RedirectError,
    RequestTimeoutError,
    TransportError,
)

__all__ = ["AiohttpTransport", "Response", "Transport", "translate"]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 5
_CHUNK = 64 * 1024
_REASON_CHARS = 120  # of what a foreign error says, kept in ours
_FAILURES = (aiohttp.ClientError, asyncio.TimeoutError, TimeoutError, ConnectionError)
_NO_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=None, sock_read=None, sock_connect=None)


class Response(Protocol):
    """An answer whose headers arrived; its body is read by the caller, in chunks."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, decompressed (a chunk is at most a few hundred KiB)."""
        ...

    @property
    def raw_bytes(self) -> int:
        """Bytes of body received on the wire so far (before decompression)."""
        ...


class Transport(Protocol):
    """What the core needs of the network: one exchange at a time, streamed."""

    @property
    def closed(self) -> bool: ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def stream(
        self,
        method: str,
        url: str,
        *,
        path: str,
        headers: Mapping[str, str],
        params: tuple[tuple[str, str], ...] | None = None,
        body: bytes | None = None,
        form: Mapping[str, str] | None = None,
        timeout: float,
        decompress: bool = True,
    ) -> AbstractAsyncContextManager[Response]:
        """Send one request; within the block, read the answer. ``timeout`` bounds the whole
        exchange (the block included) but not the wait for a free connection. Without
        ``decompress``, ``chunks()`` are the body as sent (its Content-Encoding kept)."""
        ...


def translate(exc: BaseException, method: str, path: str) -> TransportError:
    """Our error for an aiohttp (or socket) failure; the caller raises it ``from exc``."""
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, aiohttp.ServerTimeoutError)):
        return RequestTimeoutError(
            "no complete response within the timeout", method=method, path=path
        )
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return ConnectError(
            f"TLS certificate refused: {exc.certificate_error}",
            method=method,
            path=path,
            transient=False,
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ConnectError(
            f"cannot connect to {exc.host}:{exc.port}: {exc.os_error}", method=method, path=path
        )
    if isinstance(exc, aiohttp.ClientSSLError):
        return ConnectError(f"TLS failure: {exc}", method=method, path=path, transient=False)
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError)):
        return IncompleteResponseError(
            f"connection closed before the whole response arrived ({exc})", method=method, path=path
        )
    if isinstance(exc, (aiohttp.ClientOSError, ConnectionError)):
        return IncompleteResponseError(
            f"connection failed mid-exchange ({exc})", method=method, path=path
        )
    reason = _describe(exc)
    return TransportError(
        f"HTTP exchange failed: {type(exc).__name__}" + (f": {reason}" if reason else ""),
        method=method,
        path=path,
    )


def _describe(exc: BaseException) -> str:
    """What went wrong, in aiohttp's words, without what it quotes: a parser error quotes
    the server's raw bytes ("Bad status line: Invalid status code: b'...'"), where a token
    written back would be, possibly cut where no redaction could recognise it."""
    text = exc.message if isinstance(exc, aiohttp.ClientResponseError) else str(exc)
    text = re.split(r"""(?:\bb)?['"`]""", str(text), maxsplit=1)[0]
    return " ".join(text.split()).rstrip(" :,")[:_REASON_CHARS]


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def _session_credentials(session: aiohttp.ClientSession, target: str) -> bool:
    """Whether ``session`` adds credentials of its own to a request for ``target``.

    aiohttp merges a session's default headers and ``auth`` into every request, so that
    removing Authorization from ours does not keep them from another origin.
    """
    if any(name in session.headers for name in ("Authorization", "Proxy-Authorization", "Cookie")):
        return True
    if session.auth is not None:
        return True
    jar = session.cookie_jar
    return not isinstance(jar, aiohttp.DummyCookieJar) and bool(jar.filter_cookies(URL(target)))


class _AiohttpResponse:
    __slots__ = ("_method", "_path", "_response", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse, method: str, path: str) -> None:
        self._response = response
        self._method = method
        self._path = path
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_chunked(_CHUNK):
                yield chunk
        except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError) as exc:
            raise translate(exc, self._method, self._path) from exc

    @property
    def raw_bytes(self) -> int:
        content = self._response.content
        return int(getattr(content, "total_raw_bytes", content.total_bytes))


class AiohttpTransport:
    """One aiohttp session for the client's whole life, created here or injected."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession | None = None,
        max_connections: int = 64,
        ssl: _ssl.SSLContext | None = None,
        user_agent: str = "eattest-async",
        allow_http: bool = False,
    ) -> None:
        self._session = session
        self._owns_session = session is None
        self._max_connections = max_connections
        self._ssl = ssl
        self._user_agent = user_agent
        self._allow_http = allow_http
        self._closed = False
        # Our own pool slots: a request waits for one before its timeout starts, so that a
        # busy pool is never mistaken for a slow server.
        self._slots = anyio.Semaphore(max_connections)

    async def open(self) -> None:
        if self._closed:
            raise ClientClosedError("this client was closed; create a new one")
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, ssl=self._ssl if self._ssl is not None else True
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": self._user_agent},
                auto_decompress=True,
                # The API authenticates by token: a server's cookies are not kept (a jar
                # would grow with every Set-Cookie a hostile server invents).
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        else:
            if getattr(self._session, "closed", False):
                raise ClientClosedError("the injected aiohttp session is closed")
            # The injected session's pool may be smaller than ours: waiting for one of its
            # connections must happen here too, before the timeout starts, not inside it.
            pool = self._session.connector
            sizes = [self._max_connections]
            if pool is not None:
                sizes += [n for n in (pool.limit, pool.limit_per_host) if n > 0]
            self._slots = anyio.Semaphore(min(sizes))
        # Our retry loop owns every re-send (injected sessions included: see the module doc).
        self._session._retry_connection = False

    async def close(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def _require(self) -> aiohttp.ClientSession:
        if self._session is None:
            if self._closed:
                raise ClientClosedError("this client was closed; create a new one")
            raise ClientClosedError(
                "the client is not open: use 'async with Client(...) as client'"
            )
        if self._session.closed:  # an injected session, closed by its owner
            raise ClientClosedError("the aiohttp session given to this client was closed")
        return self._session

    def _redirect_target(
        self, status: int, current: str, location: str, method: str, path: str
    ) -> str:
        def refuse(reason: str) -> RedirectError:
            return RedirectError(
                f"redirect not followed: {reason}", status=status, method=method, path=path
            )

        if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in location.strip()):
            raise refuse("malformed Location")
        try:
            target = urljoin(current, location.strip())
            parts = urlsplit(target)
            parts.port  # noqa: B018  (raises ValueError on a malformed port)
        except ValueError:
            raise refuse("malformed Location") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise refuse("Location is not an absolute http(s) URL")
        if parts.username or parts.password:
            raise refuse("Location carries credentials")
        if parts.scheme == "http":
            if urlsplit(current).scheme == "https":
                raise refuse("from https to plain http")
            if not self._allow_http and not is_loopback_host(parts.hostname):
                raise refuse("plain http is refused except on loopback")
        return target

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        path: str,
        headers: Mapping[str, str],
        params: tuple[tuple[str, str], ...] | None = None,
        body: bytes | None = None,
        form: Mapping[str, str] | None = None,
        timeout: float,
        decompress: bool = True,
    ) -> AsyncIterator[Response]:
        session = self._require()
        slots = self._slots
        try:
            # A free slot is taken without a turn of the event loop (``async with`` would
            # take one, per request); the request yields soon enough: it is sent.
            slots.acquire_nowait()
        except anyio.WouldBlock:
            await slots.acquire()
        try:
            with anyio.fail_after(timeout):
                async with self._follow(
                    session, method, url, path, headers, params, form or body, decompress
                ) as response:
                    yield _AiohttpResponse(response, method, path)
        except TransportError:
            raise
        except (
            aiohttp.ClientError,
            asyncio.TimeoutError,
            TimeoutError,
            ConnectionError,
        ) as exc:
            raise translate(exc, method, path) from exc
        finally:
            slots.release()

    @asynccontextmanager
    async def _follow(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        path: str,
        headers: Mapping[str, str],
        params: tuple[tuple[str, str], ...] | None,
        data: Any,
        decompress: bool,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        current_url, current_headers, current_method = url, dict(headers), method
        current_params = params
        for _ in range(_MAX_REDIRECTS + 1):
            async with session.request(
                current_method,
                current_url,
                params=current_params,
                data=data,
                headers=current_headers,
                allow_redirects=False,
                raise_for_status=False,
                middlewares=(),  # an injected session's (retrying?) middlewares: not ours
                auto_decompress=decompress,
                timeout=_NO_TIMEOUT,
                ssl=self._ssl if self._ssl is not None else True,
            ) as response:
                location = response.headers.get("Location")
                if response.status not in _REDIRECTS or location is None:
                    yield response
                    return
                status = response.status
                target = self._redirect_target(status, current_url, location, method, path)
            keeps_body = status in (307, 308)
            if _origin(target) != _origin(current_url):
                # Nothing secret follows a redirect to another origin: not the token, and
                # not a body (the password form of a token request, a dossier).
                current_headers.pop("Authorization", None)
                if _session_credentials(session, target):
                    raise RedirectError(
                        "redirect not followed: the injected session would send its own "
                        "credentials (Authorization, auth or cookies) to another origin",
                        status=status,
                        method=method,
                        path=path,
                    )
                if keeps_body and data is not None:
                    raise RedirectError(
                        "redirect not followed: it would re-send the request body to "
                        "another origin",
                        status=status,
                        method=method,
                        path=path,
                    )
            if not keeps_body and (status == 303 or current_method == "POST"):
                current_method, data = "GET", None
                current_headers.pop("Content-Type", None)
            current_url, current_params = target, None
        raise RedirectError(
            f"more than {_MAX_REDIRECTS} redirects", status=None, method=method, path=path
        )
