"""The kinds of scripted fault: one handler each, registered beside itself.

A new fault is one entry here: ``@fault("name")`` on an ``async def`` that gets the
:class:`FaultContext` and returns the answer to send instead of serving (or None to
serve). It may set ``context.after`` to damage the served answer on its way out, or
``context.recheck_token`` when it changed the token state the request must meet.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import attrs
from aiohttp import web

from ._http import REASONS, json_response, spring_error
from ._limiter import retry_after_header

if TYPE_CHECKING:
    from ._plan import FaultAction
    from ._service import SimulatorService

__all__ = ["FAULTS", "FaultContext", "fault"]

Damage = Callable[[web.Request, web.StreamResponse], Awaitable[web.StreamResponse]]


@attrs.define
class FaultContext:
    sim: SimulatorService
    request: web.Request
    action: FaultAction
    key: str  # the rate-limit key of the request (session or global)
    headers: dict[str, str]  # RateLimit headers the answer carries
    after: Damage | None = None
    recheck_token: bool = False


Fault = Callable[[FaultContext], Awaitable[web.StreamResponse | None]]
FAULTS: dict[str, Fault] = {}


def fault(kind: str) -> Callable[[Fault], Fault]:
    def register(handler: Fault) -> Fault:
        FAULTS[kind] = handler
        return handler

    return register


@fault("status")
async def _status(context: FaultContext) -> web.StreamResponse | None:
    """Answer with ``status`` (and ``Retry-After`` when ``retry_after`` is given)."""
    action, sim = context.action, context.sim
    status = action.status or 500
    headers = dict(context.headers)
    if action.retry_after is not None:
        now = time.time()
        value, deadline = retry_after_header(now, action.retry_after, action.retry_after_format)
        headers["Retry-After"] = value
        sim.limiter.announce(context.key, now, deadline)
        if status == 429:
            sim.stats.rate_limited += 1
    path = context.request.path
    return json_response(spring_error(path, status, REASONS.get(status, "Error")), status, headers)


@fault("html")
async def _html(context: FaultContext) -> web.StreamResponse | None:
    """A proxy's HTML error page with ``status`` (default 502)."""
    status = context.action.status or 502
    page = (
        f"<html><head><title>{status}</title></head><body>"
        f"<h1>{status} {REASONS.get(status, '')}</h1>"
        "<hr><center>nginx</center></body></html>"
    )
    return web.Response(text=page, status=status, content_type="text/html")


@fault("empty")
async def _empty(context: FaultContext) -> web.StreamResponse | None:
    """200 with an empty body."""
    return web.Response(body=b"", status=200, content_type="application/json")


@fault("malformed")
async def _malformed(context: FaultContext) -> web.StreamResponse | None:
    """200 with a body that is not JSON."""
    return web.Response(
        body=b'{"content": [{"dossierId": 1,', status=200, content_type="application/json"
    )


@fault("drop")
async def _drop(context: FaultContext) -> web.StreamResponse | None:
    """Close the connection without answering."""
    if context.request.transport is not None:
        context.request.transport.close()
    raise asyncio.CancelledError  # aiohttp treats it as a client gone; nothing is sent


@fault("delay")
async def _delay(context: FaultContext) -> web.StreamResponse | None:
    """Wait ``delay`` seconds, then serve normally."""
    await asyncio.sleep(context.action.delay)
    return None


@fault("revoke")
async def _revoke(context: FaultContext) -> web.StreamResponse | None:
    """Revoke every session, then serve (so the request meets a 401)."""
    context.sim.tokens.revoke()
    context.recheck_token = True
    return None


@fault("expire")
async def _expire(context: FaultContext) -> web.StreamResponse | None:
    """Expire every access token (refresh tokens stay valid), then serve."""
    context.sim.tokens.expire_access()
    context.recheck_token = True
    return None


@fault("expire_refresh")
async def _expire_refresh(context: FaultContext) -> web.StreamResponse | None:
    """Expire every access and refresh token (sign-in still works), then serve."""
    context.sim.tokens.expire_refresh()
    context.recheck_token = True
    return None


async def _send_half(
    request: web.Request, response: web.StreamResponse
) -> tuple[web.StreamResponse, bytes] | None:
    body = response.body if isinstance(response, web.Response) else None
    if not isinstance(body, bytes) or not body:
        return None
    stream = web.StreamResponse(status=response.status, headers=response.headers)
    stream.content_length = len(body)  # the full length is announced
    await stream.prepare(request)
    await stream.write(body[: len(body) // 2])
    return stream, body[len(body) // 2 :]


@fault("truncate")
async def _truncate(context: FaultContext) -> web.StreamResponse | None:
    """Announce the full Content-Length, send half the body, close."""

    async def cut(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        if await _send_half(request, response) is None:
            return response
        if request.transport is not None:
            request.transport.close()
        raise asyncio.CancelledError  # the peer sees a body cut short

    context.after = cut
    return None


@fault("slow")
async def _slow(context: FaultContext) -> web.StreamResponse | None:
    """Send half the body, stall ``delay`` seconds, then the rest."""
    delay = context.action.delay

    async def stall(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        sent = await _send_half(request, response)
        if sent is None:
            return response
        stream, rest = sent
        await asyncio.sleep(delay)
        await stream.write(rest)
        await stream.write_eof()
        return stream

    context.after = stall
    return None
