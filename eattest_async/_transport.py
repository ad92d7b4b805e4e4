"""The only aiohttp import of the client: send one request, translate aiohttp's errors.

No retries happen here: aiohttp's own silent re-send of idempotent requests on a dropped
keep-alive connection is switched off, so that the one retry loop (``_retry``) sees and
counts every failure. Redirects are followed here, by hand, so that ``Authorization``
never travels to another origin.
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
import attrs

from ._exceptions import (
    ClientClosedError,
    ConnectError,
    IncompleteResponseError,
    RequestTimeoutError,
    TransportError,
)

__all__ = ["RawResponse", "StreamingResponse", "Transport"]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 5


@attrs.frozen
class RawResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


@attrs.frozen
class StreamingResponse:
    """A response whose body is read in chunks by ``chunks()``."""

    status: int
    headers: Mapping[str, str]
    _response: aiohttp.ClientResponse = attrs.field(repr=False, alias="response")
    _method: str = attrs.field(repr=False, alias="method")
    _path: str = attrs.field(repr=False, alias="path")

    async def chunks(self, size: int = 64 * 1024) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_chunked(size):
                yield chunk
        except Exception as exc:
            raise translate(exc, self._method, self._path) from exc

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except Exception as exc:
            raise translate(exc, self._method, self._path) from exc


def translate(exc: BaseException, method: str, path: str) -> TransportError:
    """Our error for an aiohttp (or socket) failure; the caller raises it ``from exc``."""
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
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
    return TransportError(
        f"HTTP exchange failed: {type(exc).__name__}: {exc}", method=method, path=path
    )


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


class Transport:
    """One aiohttp session for the client's whole life, created here or injected."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession | None = None,
        max_connections: int = 64,
        ssl: _ssl.SSLContext | None = None,
        user_agent: str = "eattest-async",
    ) -> None:
        self._session = session
        self._owns_session = session is None
        self._max_connections = max_connections
        self._ssl = ssl
        self._user_agent = user_agent
        self._closed = False

    async def open(self) -> None:
        if self._closed:
            raise ClientClosedError("this client was closed; create a new one")
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, ssl=self._ssl if self._ssl is not None else True
            )
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": self._user_agent}, auto_decompress=True
            )
            self._session._retry_connection = False  # our retry loop owns every re-send
        elif self._owns_session is False and getattr(self._session, "closed", False):
            raise ClientClosedError("the injected aiohttp session is closed")

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
        return self._session

    @asynccontextmanager
    async def _exchange(
        self,
        method: str,
        url: str,
        *,
        path: str,
        headers: Mapping[str, str],
        params: Any = None,
        data: Any = None,
        timeout: float,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        session = self._require()
        current_url, current_headers, current_method, current_data = (
            url,
            dict(headers),
            method,
            data,
        )
        try:
            for _ in range(_MAX_REDIRECTS + 1):
                async with session.request(
                    current_method,
                    current_url,
                    params=params,
                    data=current_data,
                    headers=current_headers,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=timeout),
                    ssl=self._ssl if self._ssl is not None else True,
                ) as response:
                    location = response.headers.get("Location")
                    if response.status not in _REDIRECTS or not location:
                        yield response
                        return
                    target = urljoin(current_url, location)
                    if _origin(target) != _origin(current_url):
                        # Credentials never follow a redirect to another origin.
                        current_headers.pop("Authorization", None)
                        if (
                            urlsplit(current_url).scheme == "https"
                            and urlsplit(target).scheme != "https"
                        ):
                            raise ConnectError(
                                "refused a redirect from https to plain http",
                                method=method,
                                path=path,
                                transient=False,
                            )
                    if response.status == 303 or (
                        response.status in (301, 302) and current_method == "POST"
                    ):
                        current_method, current_data = "GET", None
                    current_url, params = target, None
            raise TransportError(f"more than {_MAX_REDIRECTS} redirects", method=method, path=path)
        except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError) as exc:
            raise translate(exc, method, path) from exc

    async def send(
        self,
        method: str,
        url: str,
        *,
        path: str,
        headers: Mapping[str, str],
        params: Any = None,
        body: bytes | None = None,
        form: Mapping[str, str] | None = None,
        timeout: float,
    ) -> RawResponse:
        """Send one request and read the whole answer."""
        data: Any = form if form is not None else body
        async with self._exchange(
            method, url, path=path, headers=headers, params=params, data=data, timeout=timeout
        ) as response:
            try:
                payload = await response.read()
            except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError) as exc:
                raise translate(exc, method, path) from exc
            return RawResponse(response.status, response.headers, payload)

    @asynccontextmanager
    async def stream(
        self, method: str, url: str, *, path: str, headers: Mapping[str, str], timeout: float
    ) -> AsyncIterator[StreamingResponse]:
        """Send one request; the body is read by the caller, in chunks, within ``timeout``."""
        async with self._exchange(
            method, url, path=path, headers=headers, timeout=timeout
        ) as response:
            yield StreamingResponse(
                response.status, response.headers, response=response, method=method, path=path
            )
