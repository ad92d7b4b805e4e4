"""One simulated deployment: its state, the request pipeline (observe -> gate -> serve) and
the aiohttp application built from the route table.

The handlers live in ``_api`` (one module per resource), the token endpoint in
``_tokens``, the fault kinds in ``_faults``, the plan in ``_plan``; rendering in
``_render`` and data generation in ``_data``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import random
import time
from collections.abc import Sequence
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_urldispatcher import AbstractRoute

from .._exceptions import InvalidInputError
from . import _api  # noqa: F401 - registers the API's routes
from ._data import DataSet
from ._faults import FAULTS, FaultContext
from ._http import (
    ROUTES,
    BadRequest,
    NotFound,
    Refusal,
    json_response,
    spring_error,
)
from ._limiter import RateLimiter, ratelimit_headers, retry_after_header
from ._plan import FaultPlan, RecordedRequest, SimulatorStats, pick_random_fault
from ._render import Dialect, Renderer
from ._tokens import Tokens

__all__ = ["SimulatorService"]

Middleware = Any


class SimulatorService:
    """State of one simulated e-Attestations deployment, and its request pipeline."""

    def __init__(
        self,
        *,
        data: DataSet,
        faults: FaultPlan,
        username: str,
        password: str,
        access_lifetime: float,
        refresh_lifetime: float,
        process_delay: float,
        max_page_size: int,
        fault_seed: int,
        dialect: Dialect = "captured",
    ) -> None:
        self.render = Renderer(dialect)
        self.data = data
        self.faults = faults
        self.stats = SimulatorStats()
        self.tokens = Tokens(
            username=username,
            password=password,
            account_id=data.account_id,
            access_lifetime=access_lifetime,
            refresh_lifetime=refresh_lifetime,
        )
        self.process_delay = process_delay
        self.max_page_size = max_page_size
        self.limiter = RateLimiter()
        self.rng = random.Random(fault_seed)
        self.list_dossier_calls = 0
        self.touched: list[int] = []  # dossiers changed by drift_touch, in order
        self.timers: set[asyncio.TimerHandle] = set()
        self.arrivals: dict[int, float] = {}  # id(protocol) -> when its last request arrived
        self.page_cache_bytes = 0
        self.page_cache: dict[tuple[str, int, str], bytes] = {}
        self.page_cache_size = 0
        self._operations: dict[AbstractRoute, str] = {}

    @property
    def username(self) -> str:
        return self.tokens.username

    @property
    def password(self) -> str:
        return self.tokens.password

    # -- what the Simulator does to it -------------------------------------------------------

    def revoke_tokens(self) -> None:
        self.tokens.revoke()

    def expire_access_tokens(self) -> None:
        self.tokens.expire_access()

    def reset(self) -> None:
        self.stats = SimulatorStats()
        self.limiter.reset()
        self.faults.script.clear()

    def touch_dossiers(self, dossier_ids: Sequence[int]) -> None:
        """A change with no other effect: ``stateLastChangeDate`` becomes now."""
        for dossier_id in dossier_ids:
            if self.data.exists(dossier_id):
                self.data.update_dossier(dossier_id, {"changed": dt.datetime.now()})
                self.touched.append(dossier_id)

    def close(self) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()

    # -- application -------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = web.Application(
            middlewares=[self._observe, self._api_gate], client_max_size=4 * 1024 * 1024
        )
        # Literal paths before templated ones, so /dossiers/all is never dossier "all".
        for route in sorted(ROUTES.routes, key=lambda r: r.path.count("{")):
            added = app.router.add_route(
                route.method, route.path, functools.partial(route.handler, self)
            )
            self._operations[added] = route.name
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_shutdown(self, _: web.Application) -> None:
        self.close()

    def operation(self, request: web.Request) -> str:
        route = request.match_info.route
        return self._operations.get(route, "unknown")

    @web.middleware
    async def _observe(self, request: web.Request, handler: Any) -> web.StreamResponse:
        operation = self.operation(request)
        admin = operation.startswith("_")
        record = None
        if not admin:
            self.stats.requests[operation] += 1
            self.stats.in_flight += 1
            self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
            body = await request.read() if request.can_read_body else b""
            record = RecordedRequest(
                time=time.time(),
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=dict(request.headers),
                body=body,
                operation=operation,
            )
            self.stats.log.append(record)
        try:
            try:
                response: web.StreamResponse = await handler(request)
            except web.HTTPException as exc:
                if exc.status in (404, 405):  # no such route: answer as the Spring gateway does
                    response = json_response(
                        spring_error(request.path, exc.status, "No message available"), exc.status
                    )
                else:
                    raise
            if record is not None:
                record.status = response.status
                self.stats.statuses[response.status] += 1
            return response
        finally:
            if not admin:
                self.stats.in_flight -= 1

    @web.middleware
    async def _api_gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        operation = self.operation(request)
        if operation.startswith("_"):
            return await handler(request)  # type: ignore[no-any-return]
        plan = self.faults
        now = time.time()
        claims = self.tokens.claims(request) if operation != "token" else None
        key = claims["sid"] if claims else f"peer:{request.remote}"
        if plan.rate_scope == "global":
            key = "global"  # one window and one Retry-After for every session (per IP)
        headers: dict[str, str] = {}
        if operation != "token":
            arrived = min(self.arrivals.get(id(request.protocol), now), now)
            if self.limiter.note_arrival(key, arrived, plan.early_grace):
                self.stats.early_requests += 1
            if plan.latency or plan.jitter:
                await asyncio.sleep(plan.latency + self.rng.uniform(0, plan.jitter))
                now = time.time()
            if plan.rate_limit is not None:
                allowed, remaining, window_end = self.limiter.consume(key, plan, now)
                headers = ratelimit_headers(plan, remaining, window_end, now)
                if not allowed:
                    value, deadline = retry_after_header(
                        now, window_end - now, plan.retry_after_format
                    )
                    self.limiter.announce(key, now, deadline)
                    self.stats.rate_limited += 1
                    return json_response(
                        spring_error(request.path, 429, "Rate limit exceeded"),
                        429,
                        {**headers, "Retry-After": value},
                    )
        action = plan.take(operation)
        if action is None and operation != "token":
            action = pick_random_fault(plan, self.rng)
        context = None
        if action is not None:
            self.stats.faults[action.kind] += 1
            context = FaultContext(self, request, action, key, headers)
            faulted = await FAULTS[action.kind](context)
            if faulted is not None:
                return faulted
            if context.recheck_token:
                claims = self.tokens.claims(request)  # this very request meets the 401
        if operation != "token" and claims is None:
            response: web.StreamResponse = json_response(
                spring_error(
                    request.path, 401, "Full authentication is required to access this resource"
                ),
                401,
                {"WWW-Authenticate": 'Bearer realm="eat_realm"'},
            )
        else:
            response = await self._serve(request, operation, handler)
        for name, value in headers.items():
            response.headers[name] = value
        if context is not None and context.after is not None:
            return await context.after(request, response)
        return response

    async def _serve(
        self, request: web.Request, operation: str, handler: Any
    ) -> web.StreamResponse:
        try:
            if operation != "token" and "account_id" in request.match_info:
                account = request.match_info["account_id"]
                if not (account.isascii() and account.isdigit() and len(account) <= 19):
                    raise BadRequest(f"Failed to convert value '{account[:100]}' to long")
                if int(account) != self.data.account_id:
                    raise NotFound(f"No account with id {account}")
            response: web.StreamResponse = await handler(request)
        except Refusal as refusal:
            return json_response(self.render.refusal(refusal.errors), refusal.status)
        except NotFound as absent:
            return json_response(spring_error(request.path, 404, str(absent)), 404)
        except (BadRequest, InvalidInputError) as exc:
            return json_response(spring_error(request.path, 400, str(exc)), 400)
        if self.faults.warning and operation != "token":
            self._add_warning(response, self.faults.warning)
        return response

    @staticmethod
    def _add_warning(response: web.StreamResponse, text: str) -> None:
        """The docs' example: a warning (``W001``) in the messages of every JSON answer."""
        if not isinstance(response, web.Response) or response.content_type != "application/json":
            return
        body = response.body
        if not isinstance(body, bytes):
            return
        data = orjson.loads(body)
        if isinstance(data, dict):
            messages = data.setdefault("messages", {"info": [], "warning": [], "error": []})
            messages.setdefault("warning", []).append({"code": "W001", "message": text})
            response.body = orjson.dumps(data)
