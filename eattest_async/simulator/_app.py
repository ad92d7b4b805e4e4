"""aiohttp.web application of the simulator: token endpoint, API v1.1 + EDGE reads, faults."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import quote

import attrs
import orjson
from aiohttp import web

from .._exceptions import InvalidInputError
from .._validation import (
    MAX_PAGE_SIZE,
    check_duns,
    check_email,
    check_siren,
    check_siret,
    check_vat,
)
from ..resources._filters import DOSSIER_FILTERS, THIRDPARTY_FILTERS
from . import _jwt
from ._data import (
    REQUIREMENTS,
    REQUIREMENTS_BY_CODE,
    RESERVED_SIREN_PREFIXES,
    DataSet,
    Process,
    pdf_bytes,
)
from ._faults import (
    FaultAction,
    FaultPlan,
    RateLimiter,
    RecordedRequest,
    SimulatorStats,
    pick_random_fault,
    ratelimit_headers,
    retry_after_header,
)
from ._render import Dialect, Renderer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

TOKEN_PATH = "/auth/realms/eat_realm/protocol/openid-connect/token"
API_PREFIX = "/api/v1"
CLIENT_ID = "ea-api-edge"

_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

_ECODE_TEXT = {
    "E001": "Missing parameter",
    "E002": "Unknown parameter",
    "E003": "Empty parameter",
    "E010": "Incorrect format",
    "E011": "Maximum size exceeded",
    "E021": "Expiration date in the past",
    "E022": "Date in the future",
    "E030": "Invalid email domain",
    "E112": "The supplier code (thirdpartyCode) already used for another supplier",
    "E121": "Impossible to create a dossier based on TVA for a french thirdparty. "
    "Please use SIRET number",
    "E122": "Impossible to import a non French thirdparty, "
    "subscription is inactive for international third parties",
    "E200": "There is no dossier for this criteria",
    "E201": "This dossier is disabled",
    "E202": "This dossier reference already exists for this client / supplier couple",
    "E204": "This dossier is already active",
    "E205": "This dossier to reactivate has an outdated date for its re-activation. "
    "Please provide a date in the future.",
    "E301": "This document/requirement is deactivated",
    "E302": "This document/requirement is not authorized",
}
_BLOCKED_EMAIL_DOMAINS = ("invalid", "mailinator.com", "example.invalid")

_NEW_DOSSIER_FIELDS = {
    "companyIdType",
    "companyIdValue",
    "thirdpartyCode",
    "dossierReference",
    "description",
    "purchasingCategory",
    "expirationDate",
    "requiredDocuments",
    "thirdpartyEmail",
    "userInCharge",
}
_UPDATE_FIELDS = {
    "dossierReference",
    "description",
    "purchasingCategory",
    "expirationDate",
    "thirdpartyCode",
    "thirdpartyEmail",
}
# The parameters the client declares for each list operation: one table for both sides.
_DOSSIER_FILTERS = {f.param for f in DOSSIER_FILTERS.values()}
_THIRDPARTY_FILTERS = {f.param for f in THIRDPARTY_FILTERS.values()}
_TEXT_MATCH: dict[str, Callable[[str, str], bool]] = {
    "like": lambda value, text: text.lower() in value.lower(),
    "starts": str.startswith,
    "ends": str.endswith,
}


class _Refusal(Exception):
    """E-coded 400 raised by validation helpers."""

    def __init__(self, errors: list[tuple[str, str]], status: int = 400) -> None:
        self.errors = errors
        self.status = status
        super().__init__(errors)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


def _messages(errors: Sequence[tuple[str, str]] = (), info: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "info": [{"code": "I000", "message": m} for m in info],
        "warning": [],
        "error": [{"code": c, "message": m} for c, m in errors],
    }


def spring_error(path: str, status: int, message: str) -> dict[str, Any]:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:23] + "+0000"
    return {
        "timestamp": stamp,
        "status": status,
        "error": _REASONS.get(status, "Error"),
        "message": message,
        "path": path,
    }


def _e(code: str, detail: str) -> tuple[str, str]:
    return code, f"{_ECODE_TEXT.get(code, 'Error')}: {detail}"


@attrs.define
class _Session:
    sid: str
    refresh_expires_at: float
    revoked: bool = False


class SimulatorService:
    """State and handlers of one simulated e-Attestations deployment."""

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
        self.username = username
        self.password = password
        self.access_lifetime = access_lifetime
        self.refresh_lifetime = refresh_lifetime
        self.process_delay = process_delay
        self.max_page_size = max_page_size
        self._secret = secrets.token_bytes(32)
        self._sessions: dict[str, _Session] = {}
        self._access_expiry: dict[str, float] = {}  # jti -> wall-clock expiry
        self._expired_before = 0.0  # access tokens issued before this instant are expired
        self._limiter = RateLimiter()
        self._rng = random.Random(fault_seed)
        self._list_dossier_calls = 0
        self.touched: list[int] = []  # dossiers changed by drift_touch, in order
        self._timers: set[asyncio.TimerHandle] = set()
        self.arrivals: dict[int, float] = {}  # id(protocol) -> when its last request arrived
        self.page_cache_bytes = 0
        self._page_cache: dict[tuple[str, int, str], bytes] = {}
        self._page_cache_size = 0

    # -- public helpers (used by Simulator) ------------------------------------------

    def revoke_tokens(self) -> None:
        for session in self._sessions.values():
            session.revoked = True

    def expire_access_tokens(self) -> None:
        self._expired_before = time.time()

    def reset(self) -> None:
        self.stats = SimulatorStats()
        self._limiter.reset()
        self.faults.script.clear()

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    # -- application -----------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = web.Application(
            middlewares=[self._observe, self._api_gate], client_max_size=4 * 1024 * 1024
        )
        app.router.add_post(TOKEN_PATH, self.token, name="token")
        a = API_PREFIX + "/account"
        acc = a + "/{account_id}"
        routes: list[tuple[str, str, Handler, str]] = [
            ("GET", a, self.get_account, "get_account"),
            ("GET", acc, self.get_account_statistics, "get_account_statistics"),
            ("GET", acc + "/thirdparties", self.list_thirdparties, "list_thirdparties"),
            ("GET", acc + "/thirdparties/q", self.search_thirdparties, "search_thirdparties"),
            ("GET", acc + "/thirdparties/{thirdparty_id}", self.get_thirdparty, "get_thirdparty"),
            ("GET", acc + "/requirements", self.list_requirements, "list_requirements"),
            ("GET", acc + "/dossiers/processes", self.list_processes, "list_processes"),
            ("GET", acc + "/dossier/processes", self.list_processes, "list_processes_alias"),
            ("GET", acc + "/dossiers/process/{process_id}", self.get_process, "get_process"),
            ("GET", acc + "/dossier/process/{process_id}", self.get_process, "get_process_alias"),
            ("GET", acc + "/dossier/{process_id}", self.get_process, "get_process_alias2"),
            ("GET", acc + "/dossiers/all", self.list_dossiers, "list_dossiers_all"),
            ("GET", acc + "/dossiers", self.list_dossiers, "list_dossiers"),
            ("POST", acc + "/dossiers", self.create_dossier, "create_dossier"),
            ("GET", acc + "/dossiers/{dossier_id}", self.get_dossier, "get_dossier"),
            ("POST", acc + "/dossiers/{dossier_id}", self.update_dossier, "update_dossier"),
            ("POST", acc + "/dossiers/{dossier_id}/stop", self.stop_dossier, "stop_dossier"),
            (
                "POST",
                acc + "/dossiers/{dossier_id}/reactivate",
                self.reactivate_dossier,
                "reactivate_dossier",
            ),
            (
                "GET",
                acc + "/dossiers/{dossier_id}/requirements",
                self.list_dossier_requirements,
                "list_dossier_requirements",
            ),
            (
                "POST",
                acc + "/dossiers/{dossier_id}/requirements",
                self.update_dossier_requirements,
                "update_dossier_requirements",
            ),
            (
                "GET",
                acc + "/dossiers/{dossier_id}/documents",
                self.list_documents,
                "list_documents",
            ),
            (
                "GET",
                acc + "/dossiers/{dossier_id}/documents/{document_id}",
                self.get_document,
                "get_document",
            ),
            (
                "GET",
                acc + "/dossiers/{dossier_id}/documents/{document_id}/files",
                self.list_files,
                "list_files",
            ),
            (
                "GET",
                acc + "/dossiers/{dossier_id}/documents/{document_id}/evidences",
                self.list_evidences,
                "list_evidences",
            ),
            (
                "GET",
                acc + "/dossiers/{dossier_id}/documents/{document_id}/files/{file_id}",
                self.download_file,
                "download_file",
            ),
        ]
        for method, path, handler, name in routes:
            app.router.add_route(method, path, handler, name=name)
        app.router.add_get("/_simulator/faults", self.admin_get_faults, name="_admin")
        app.router.add_put("/_simulator/faults", self.admin_put_faults, name="_admin_put")
        app.router.add_get("/_simulator/stats", self.admin_stats, name="_admin_stats")
        app.router.add_post("/_simulator/reset", self.admin_reset, name="_admin_reset")
        app.router.add_post("/_simulator/revoke", self.admin_revoke, name="_admin_revoke")
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_shutdown(self, _: web.Application) -> None:
        self.close()

    @staticmethod
    def operation(request: web.Request) -> str:
        route = request.match_info.route
        name = route.name if route is not None else None
        if not name:
            return "unknown"
        return (
            name.replace("_alias2", "")
            .replace("_alias", "")
            .replace("list_dossiers_all", "list_dossiers")
        )

    @web.middleware
    async def _observe(self, request: web.Request, handler: Handler) -> web.StreamResponse:
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
                response = await handler(request)
            except web.HTTPException as exc:
                if exc.status in (404, 405):  # no such route: answer as the Spring gateway does
                    response = _json(
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
    async def _api_gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        operation = self.operation(request)
        if operation.startswith("_"):
            return await handler(request)
        plan = self.faults
        now = time.time()
        claims = self._valid_claims(request) if operation != "token" else None
        key = claims["sid"] if claims else f"peer:{request.remote}"
        if plan.rate_scope == "global":
            key = "global"  # one window and one Retry-After for every session (per IP)
        headers: dict[str, str] = {}
        if operation != "token":
            arrived = min(self.arrivals.get(id(request.protocol), now), now)
            if self._limiter.note_arrival(key, arrived, plan.early_grace):
                self.stats.early_requests += 1
            if plan.latency or plan.jitter:
                await asyncio.sleep(plan.latency + self._rng.uniform(0, plan.jitter))
                now = time.time()
            if plan.rate_limit is not None:
                allowed, remaining, window_end = self._limiter.consume(key, plan, now)
                headers = ratelimit_headers(plan, remaining, window_end, now)
                if not allowed:
                    value, deadline = retry_after_header(
                        now, window_end - now, plan.retry_after_format
                    )
                    self._limiter.announce(key, now, deadline)
                    self.stats.rate_limited += 1
                    return _json(
                        spring_error(request.path, 429, "Rate limit exceeded"),
                        429,
                        {**headers, "Retry-After": value},
                    )
        action = plan.take(operation)
        if action is None and operation != "token":
            action = pick_random_fault(plan, self._rng)
        if action is not None:
            self.stats.faults[action.kind] += 1
            faulted = await self._apply_fault(request, action, key, headers)
            if faulted is not None:
                return faulted
            if action.kind in ("revoke", "expire", "expire_refresh"):
                claims = self._valid_claims(request)  # this very request meets the 401
        if operation != "token" and claims is None:
            response: web.StreamResponse = _json(
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
        if action is not None and action.kind in ("truncate", "slow"):
            return await self._damage(request, response, action)
        return response

    async def _serve(
        self, request: web.Request, operation: str, handler: Handler
    ) -> web.StreamResponse:
        if operation != "token" and "account_id" in request.match_info:
            account = request.match_info["account_id"]
            if not account.isdigit():
                return _json(
                    spring_error(request.path, 400, f"Failed to convert value '{account}' to long"),
                    400,
                )
            if int(account) != self.data.account_id:
                return _json(spring_error(request.path, 404, f"No account with id {account}"), 404)
        try:
            response = await handler(request)
            if self.faults.warning and operation != "token":
                self._add_warning(response, self.faults.warning)
            return response
        except _Refusal as refusal:
            return _json(self.render.refusal(refusal.errors), refusal.status)
        except InvalidInputError as exc:
            return _json(spring_error(request.path, 400, str(exc)), 400)

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

    async def _apply_fault(
        self, request: web.Request, action: FaultAction, key: str, headers: dict[str, str]
    ) -> web.StreamResponse | None:
        kind = action.kind
        if kind == "delay":
            await asyncio.sleep(action.delay)
            return None
        if kind == "revoke":
            self.revoke_tokens()
            return None
        if kind == "expire":
            self.expire_access_tokens()
            return None
        if kind == "expire_refresh":
            self.expire_access_tokens()
            now = time.time()
            for session in self._sessions.values():
                session.refresh_expires_at = min(session.refresh_expires_at, now)
            return None
        if kind == "status":
            status = action.status or 500
            extra = dict(headers)
            if action.retry_after is not None:
                now = time.time()
                value, deadline = retry_after_header(
                    now, action.retry_after, action.retry_after_format
                )
                extra["Retry-After"] = value
                self._limiter.announce(key, now, deadline)
                if status == 429:
                    self.stats.rate_limited += 1
            return _json(
                spring_error(request.path, status, _REASONS.get(status, "Error")), status, extra
            )
        if kind == "html":
            status = action.status or 502
            page = (
                f"<html><head><title>{status}</title></head><body>"
                f"<h1>{status} {_REASONS.get(status, '')}</h1>"
                "<hr><center>nginx</center></body></html>"
            )
            return web.Response(text=page, status=status, content_type="text/html")
        if kind == "empty":
            return web.Response(body=b"", status=200, content_type="application/json")
        if kind == "malformed":
            return web.Response(
                body=b'{"content": [{"dossierId": 1,', status=200, content_type="application/json"
            )
        if kind == "drop":
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError  # aiohttp treats it as a client gone; nothing is sent
        return None  # truncate / slow: served normally, damaged on the way out (_damage)

    async def _damage(
        self, request: web.Request, response: web.StreamResponse, action: FaultAction
    ) -> web.StreamResponse:
        body = response.body if isinstance(response, web.Response) else None
        if not isinstance(body, bytes) or not body:
            return response
        stream = web.StreamResponse(status=response.status, headers=response.headers)
        stream.content_length = len(body)
        await stream.prepare(request)
        half = len(body) // 2
        await stream.write(body[:half])
        if action.kind == "slow":
            await asyncio.sleep(action.delay)
            await stream.write(body[half:])
            await stream.write_eof()
            return stream
        if request.transport is not None:
            request.transport.close()
        raise asyncio.CancelledError  # the peer sees a body cut short

    # -- tokens ----------------------------------------------------------------------

    def _issue(self, session: _Session) -> dict[str, Any]:
        now = time.time()
        jti = str(uuid.uuid4())
        access_expiry = now + self.access_lifetime
        self._access_expiry[jti] = access_expiry
        if len(self._access_expiry) > 100_000:  # forget long-dead tokens
            self._access_expiry = {k: v for k, v in self._access_expiry.items() if v > now}
        base = {
            "iat": int(now),
            "iss": "http://simulator/auth/realms/eat_realm",
            "azp": CLIENT_ID,
            "sid": session.sid,
            "session_state": session.sid,
            "sub": "c848abbb-sim-user",
        }
        access = _jwt.encode(
            {
                **base,
                "jti": jti,
                "exp": int(access_expiry) + 1,
                "typ": "Bearer",
                "aud": "account",
                "scope": "profile email",
                "account_ids": str(self.data.account_id),
                "preferred_username": self.username,
                "iat_precise": now,
            },
            self._secret,
        )
        refresh = _jwt.encode(
            {
                **base,
                "jti": str(uuid.uuid4()),
                "exp": int(session.refresh_expires_at) + 1,
                "typ": "Refresh",
                "exp_precise": session.refresh_expires_at,
            },
            self._secret,
        )

        def seconds(value: float, configured: float) -> float | int:
            # Keycloak sends whole seconds; sub-second lifetimes exist only for fast tests.
            return round(value) if float(configured).is_integer() else round(value, 3)

        refresh_left = max(0.0, session.refresh_expires_at - now)
        return {
            "access_token": access,
            "expires_in": seconds(self.access_lifetime, self.access_lifetime),
            "refresh_expires_in": seconds(refresh_left, self.refresh_lifetime),
            "refresh_token": refresh,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "session_state": session.sid,
            "scope": "profile email",
        }

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()

        def refuse(status: int, error: str, description: str) -> web.Response:
            self.stats.token_refusals[error] += 1
            return _json({"error": error, "error_description": description}, status)

        if form.get("client_id") != CLIENT_ID:
            return refuse(401, "invalid_client", "Invalid client or Invalid client credentials")
        grant = form.get("grant_type")
        if grant is None:
            return refuse(400, "invalid_request", "Missing form parameter: grant_type")
        now = time.time()
        if grant == "password":
            if form.get("username") != self.username or form.get("password") != self.password:
                return refuse(401, "invalid_grant", "Invalid user credentials")
            session = _Session(
                sid=str(uuid.uuid4()), refresh_expires_at=now + self.refresh_lifetime
            )
            self._sessions[session.sid] = session
        elif grant == "refresh_token":
            claims = _jwt.decode(str(form.get("refresh_token", "")), self._secret)
            if claims is None or claims.get("typ") != "Refresh":
                return refuse(400, "invalid_grant", "Invalid refresh token")
            found = self._sessions.get(str(claims.get("sid")))
            if found is None or found.revoked:
                return refuse(400, "invalid_grant", "Session not active")
            if now >= min(
                float(claims.get("exp_precise", claims.get("exp", 0))), found.refresh_expires_at
            ):
                return refuse(400, "invalid_grant", "Token is not active")
            session = found
        else:
            return refuse(400, "unsupported_grant_type", "Unsupported grant_type")
        self.stats.token_grants[str(grant)] += 1
        return _json(self._issue(session))

    def _valid_claims(self, request: web.Request) -> dict[str, Any] | None:
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("bearer "):
            return None
        claims = _jwt.decode(header[7:].strip(), self._secret)
        if claims is None or claims.get("typ") != "Bearer":
            return None
        session = self._sessions.get(str(claims.get("sid")))
        expiry = self._access_expiry.get(str(claims.get("jti")))
        now = time.time()
        if session is None or session.revoked or expiry is None or now >= expiry:
            return None
        if float(claims.get("iat_precise", 0)) < self._expired_before:
            return None
        return claims

    # -- parameter helpers ---------------------------------------------------------------

    def _query(self, request: web.Request, allowed: set[str]) -> dict[str, str]:
        errors = []
        params: dict[str, str] = {}
        for name, value in request.query.items():
            if name not in allowed and name not in ("page", "pageSize", "size"):
                errors.append(_e("E002", name))
            elif value.strip() == "":
                errors.append(_e("E003", name))
            else:
                params[name] = value.strip()
        if errors:
            raise _Refusal(errors)
        return params

    def _paging(self, params: dict[str, str]) -> tuple[int, int]:
        errors = []
        page, size = 0, 10
        raw_page = params.pop("page", None)
        raw_size = params.pop("pageSize", None) or params.pop("size", None)
        if raw_page is not None:
            if not raw_page.isdigit():
                errors.append(_e("E010", "page"))
            else:
                page = int(raw_page)
        if raw_size is not None:
            if not raw_size.isdigit() or int(raw_size) < 1:
                errors.append(_e("E010", "pageSize"))
            elif int(raw_size) > self.max_page_size:
                errors.append(_e("E011", f"pageSize (max {self.max_page_size})"))
            else:
                size = int(raw_size)
        if errors:
            raise _Refusal(errors)
        return page, size

    @staticmethod
    def _bool(params: dict[str, str], name: str) -> bool | None:
        if name not in params:
            return None
        value = params[name].lower()
        if value not in ("true", "false"):
            raise _Refusal([_e("E010", f"{name} must be true or false")])
        return value == "true"

    @staticmethod
    def _date(value: str, name: str) -> dt.date:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise _Refusal([_e("E010", f"{name} must be a date YYYY-MM-DD")]) from None

    @staticmethod
    def _identifier_checks(params: dict[str, str]) -> None:
        errors = []
        checks: dict[str, Callable[[object, str], str]] = {
            "siren": check_siren,
            "siret": check_siret,
            "tva": check_vat,
        }
        for name, check in checks.items():
            if name in params:
                try:
                    params[name] = check(params[name], name)
                except InvalidInputError as exc:
                    errors.append(_e("E010", str(exc)))
        if "companyIdType" in params and params["companyIdType"] not in (
            "CIT001",
            "CIT002",
            "CIT003",
        ):
            errors.append(_e("E010", "companyIdType must be CIT001, CIT002 or CIT003"))
        if errors:
            raise _Refusal(errors)

    async def _page_envelope(
        self, items: Sequence[int], page: int, size: int, render: Callable[[int], dict[str, Any]]
    ) -> web.Response:
        start = page * size
        content = []
        for index, item in enumerate(items[start : start + size]):
            content.append(render(item))
            if index % 25 == 24:
                # Render cooperatively: concurrent requests progress together and arrive on
                # time, as with a real server, instead of queueing behind one big page.
                await asyncio.sleep(0)
        return _json(self.render.page(content, page, size, len(items)))

    def _path_int(self, request: web.Request, name: str) -> int:
        raw = request.match_info[name]
        if not raw.isdigit():
            raise _Refusal([_e("E010", f"{name} must be a number")])
        return int(raw)

    def _dossier_or_404(self, request: web.Request) -> int | web.Response:
        dossier_id = self._path_int(request, "dossier_id")
        if not self.data.exists(dossier_id):
            return _json(
                spring_error(request.path, 404, f"Dossier not found with id: {dossier_id}"), 404
            )
        return dossier_id

    def _body_json(self, raw: bytes) -> Any:
        if not raw.strip():
            return None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise _Refusal([_e("E010", "body is not valid JSON")]) from None

    # -- account ---------------------------------------------------------------------

    async def get_account(self, request: web.Request) -> web.Response:
        return _json({"content": self.render.account(self.data), "messages": _messages()})

    async def get_account_statistics(self, request: web.Request) -> web.Response:
        return _json({"content": self.render.statistics(self.data), "messages": _messages()})

    # -- third parties -----------------------------------------------------------------

    async def list_thirdparties(self, request: web.Request) -> web.Response:
        params = self._query(request, _THIRDPARTY_FILTERS)
        page, size = self._paging(params)
        self._identifier_checks(params)
        since = (
            self._date(params["stateLastChangeDate"], "stateLastChangeDate")
            if "stateLastChangeDate" in params
            else None
        )
        monitored = self._bool(params, "monitored")
        global_state = self._bool(params, "thirdpartyGlobalState")
        subscription = self._bool(params, "subscriptionState")
        direct = {k: params[k] for k in ("siren", "siret", "tva") if k in params}
        if "companyIdValue" in params:
            value = params["companyIdValue"]
            direct["siret" if value.isdigit() else "tva"] = value
        name = params.get("name", "").lower()
        id_type = params.get("companyIdType")
        searched = _compile_search(params["q"]) if "q" in params else None
        account = self.data.account_id

        def matches(tp: Any) -> bool:
            return (
                (monitored is None or tp.monitored == monitored)
                and (global_state is None or tp.global_state == global_state)
                and (subscription is None or tp.subscription_state == subscription)
                and (id_type is None or tp.company_id_type == id_type)
                and (not name or name in tp.name.lower())
                and (searched is None or searched({"accountId": account, **tp.details()}))
                and (
                    since is None
                    or self.data.thirdparty(tp.index).details()["stateLastChangeDate"] >= since
                )
            )

        ids: Sequence[int]
        if direct:
            found = self.data.find_thirdparty(**direct)
            ids = [found.index] if found is not None and matches(found) else []
        else:
            active = (
                any(
                    x is not None
                    for x in (monitored, global_state, subscription, id_type, since, searched)
                )
                or name
            )
            ids = self.data.thirdparty_ids(
                matches if active else None, tuple(sorted(params.items()))
            )
        return await self._page_envelope(
            ids, page, size, lambda j: self.render.thirdparty_item(self.data.thirdparty(j))
        )

    async def search_thirdparties(self, request: web.Request) -> web.Response:
        params = self._query(request, {"search"})
        page, size = self._paging(params)
        if "search" not in params:
            raise _Refusal([_e("E001", "search")])
        predicate = _compile_search(params["search"])
        account = self.data.account_id
        ids = self.data.thirdparty_ids(
            lambda tp: predicate({"accountId": account, **tp.details()}), ("q", params["search"])
        )
        return await self._page_envelope(
            ids, page, size, lambda j: self.render.thirdparty(self.data.thirdparty(j), account)
        )

    async def get_thirdparty(self, request: web.Request) -> web.Response:
        thirdparty_id = self._path_int(request, "thirdparty_id")
        tp = self.data.thirdparty_by_id(thirdparty_id)
        if tp is None:
            return _json(
                spring_error(request.path, 404, f"Thirdparty not found with id: {thirdparty_id}"),
                404,
            )
        return _json(
            {
                "content": self.render.thirdparty(tp, self.data.account_id),
                "messages": _messages(),
            }
        )

    # -- dossiers ----------------------------------------------------------------------

    def _maybe_drift(self) -> None:
        plan = self.faults
        self._list_dossier_calls += 1
        if plan.drift_every <= 0 or self._list_dossier_calls % plan.drift_every:
            return
        order = self.data.order()
        if plan.drift_delete and len(order):
            victims = [order[self._rng.randrange(len(order))] for _ in range(plan.drift_delete)]
            self.data.delete_dossiers(victims)
        if plan.drift_touch and len(order):
            victims = [order[self._rng.randrange(len(order))] for _ in range(plan.drift_touch)]
            self.touch_dossiers(victims)
        for _ in range(plan.drift_insert):
            order = self.data.order()
            anchor = float(order[self._rng.randrange(len(order))]) + 0.5 if len(order) else None
            tp = self.data.thirdparty(self._rng.randrange(self.data.base_thirdparties))
            self.data.insert_dossier(
                thirdparty=tp,
                fields={"dossierReference": f"DRIFT-{uuid.uuid4().hex[:10]}"},
                position=anchor,
            )

    def touch_dossiers(self, dossier_ids: Sequence[int]) -> None:
        """A change with no other effect: ``stateLastChangeDate`` becomes now."""
        for dossier_id in dossier_ids:
            if self.data.exists(dossier_id):
                self.data.update_dossier(dossier_id, {"changed": dt.datetime.now()})
                self.touched.append(dossier_id)

    async def list_dossiers(self, request: web.Request) -> web.Response:
        params = self._query(request, _DOSSIER_FILTERS)
        page, size = self._paging(params)
        self._identifier_checks(params)
        self._maybe_drift()
        monitored = self._bool(params, "monitored")
        since = (
            self._date(params["stateLastChangeDate"], "stateLastChangeDate")
            if "stateLastChangeDate" in params
            else None
        )
        reference = params.get("dossierReference")
        id_type = params.get("companyIdType")
        op = params.get("op")
        code_pattern = reference_pattern = None
        if op is not None:
            if op not in _TEXT_MATCH:
                raise _Refusal([_e("E010", "op must be like, starts or ends")])
            if "thirdpartyCode" not in params and reference is None:
                raise _Refusal([_e("E001", "thirdpartyCode or dossierReference (with op)")])
            code_pattern, reference_pattern = params.get("thirdpartyCode"), reference
            reference = None  # matched by the operator, not exactly
        text_match = _TEXT_MATCH[op] if op is not None else None
        candidates: Sequence[int] | None = None
        tp_lookup: dict[str, str] = {k: params[k] for k in ("siren", "siret", "tva") if k in params}
        if "companyIdValue" in params:
            value = params["companyIdValue"]
            tp_lookup["siret" if value.isdigit() else "tva"] = value
        if "thirdpartyCode" in params and op is None:
            tp_lookup["code"] = params["thirdpartyCode"]
        tp_index: int | None = None
        if tp_lookup or "thirdpartyId" in params:
            tp = self.data.find_thirdparty(**tp_lookup) if tp_lookup else None
            if "thirdpartyId" in params:
                if not params["thirdpartyId"].isdigit():
                    raise _Refusal([_e("E010", "thirdpartyId")])
                by_id = self.data.thirdparty_by_id(int(params["thirdpartyId"]))
                tp = (
                    by_id
                    if (tp is None and not tp_lookup)
                    or (tp is not None and by_id is not None and tp.index == by_id.index)
                    else None
                )
            if tp is None:
                return await self._page_envelope([], page, size, lambda d: {})
            tp_index = tp.index
            candidates = self.data.dossiers_of_thirdparty(tp.index)
        elif reference is not None:
            candidates = self.data.dossier_reference_candidates(reference)

        field = self.data.field

        def matches(dossier_id: int) -> bool:
            if tp_index is not None and field(dossier_id, "tp") != tp_index:
                return False
            if monitored is not None and field(dossier_id, "monitored") != monitored:
                return False
            if reference is not None and field(dossier_id, "dossierReference") != reference:
                return False
            if since is not None and field(dossier_id, "changed").date() < since:
                return False
            if text_match is not None:
                if reference_pattern is not None and not text_match(
                    field(dossier_id, "dossierReference"), reference_pattern
                ):
                    return False
                if code_pattern is not None and not text_match(
                    self.data.thirdparty(field(dossier_id, "tp")).code, code_pattern
                ):
                    return False
            return not (
                id_type is not None
                and self.data.thirdparty(field(dossier_id, "tp")).company_id_type != id_type
            )

        active = tp_index is not None or any(
            x is not None for x in (monitored, since, reference, id_type, op)
        )
        ids = self.data.dossier_ids(
            matches if active else None, tuple(sorted(params.items())), candidates
        )
        shape = self.render.document_shape(self.faults.document_shape)
        cache_key = (request.path_qs, self.data.version, shape)
        cached = self._page_cache.get(cache_key)
        if cached is not None:
            return web.Response(body=cached, content_type="application/json")
        response = await self._page_envelope(
            ids, page, size, lambda d: self.render.dossier(self.data, d, shape)
        )
        self._remember_page(cache_key, response)
        return response

    def _remember_page(self, key: tuple[str, int, str], response: web.Response) -> None:
        """Keep rendered pages when a cache is configured (benchmarks measure the client)."""
        body = response.body
        if not self.page_cache_bytes or not isinstance(body, bytes):
            return
        self._page_cache[key] = body
        self._page_cache_size += len(body)
        while self._page_cache_size > self.page_cache_bytes and self._page_cache:
            oldest = next(iter(self._page_cache))
            self._page_cache_size -= len(self._page_cache.pop(oldest))

    async def get_dossier(self, request: web.Request) -> web.Response:
        found = self._dossier_or_404(request)
        if isinstance(found, web.Response):
            return found
        return _json(
            {
                "content": self.render.dossier(
                    self.data, found, self.render.document_shape(self.faults.document_shape)
                ),
                "messages": _messages(),
            }
        )

    def _check_new_dossier(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _Refusal([_e("E010", "body must be a JSON object")])
        errors = [_e("E002", k) for k in body if k not in _NEW_DOSSIER_FIELDS]
        for name in ("companyIdType", "companyIdValue", "dossierReference"):
            if name not in body or body[name] is None:
                errors.append(_e("E001", name))
            elif not isinstance(body[name], str) or not body[name].strip():
                errors.append(_e("E003", name))
        if errors:
            raise _Refusal(errors)
        id_type, value = body["companyIdType"], body["companyIdValue"].replace(" ", "")
        checks: dict[str, Callable[[object, str], str]] = {
            "CIT001": check_siret,
            "CIT002": check_vat,
            "CIT003": check_duns,
        }
        if id_type not in checks:
            errors.append(_e("E010", "companyIdType must be CIT001, CIT002 or CIT003"))
        else:
            try:
                body["companyIdValue"] = checks[id_type](value, "companyIdValue")
            except InvalidInputError as exc:
                errors.append(_e("E010", str(exc)))
        errors += self._check_common_fields(body)
        for code in body.get("requiredDocuments") or []:
            errors += self._requirement_errors(code)
        if errors:
            raise _Refusal(errors)
        return body

    def _check_common_fields(self, body: dict[str, Any]) -> list[tuple[str, str]]:
        errors = []
        if len(str(body.get("dossierReference") or "")) > 100:
            errors.append(_e("E011", "dossierReference (max 100)"))
        if len(str(body.get("description") or "")) > 1000:
            errors.append(_e("E011", "description (max 1000)"))
        if body.get("expirationDate"):
            expiration = self._date(str(body["expirationDate"]), "expirationDate")
            if expiration < dt.date.today():
                errors.append(_e("E021", "expirationDate"))
        for name in ("thirdpartyEmail", "userInCharge"):
            emails = body.get(name)
            if emails is None:
                continue
            if not isinstance(emails, list):
                errors.append(_e("E010", f"{name} must be an array"))
                continue
            for email in emails:
                try:
                    check_email(email, name)
                except InvalidInputError as exc:
                    errors.append(_e("E010", str(exc)))
                    continue
                if email.rsplit("@", 1)[1].lower().endswith(_BLOCKED_EMAIL_DOMAINS):
                    errors.append(_e("E030", email.rsplit("@", 1)[1]))
        return errors

    @staticmethod
    def _requirement_errors(code: Any) -> list[tuple[str, str]]:
        requirement = REQUIREMENTS_BY_CODE.get(code) if isinstance(code, str) else None
        if requirement is None:
            return [_e("E302", str(code))]
        if not requirement.active:
            return [_e("E301", code)]
        return []

    def _creation_outcome(self, body: dict[str, Any]) -> tuple[list[dict[str, str]], Any]:
        id_type, value = body["companyIdType"], body["companyIdValue"]
        code = body.get("thirdpartyCode") or None
        tp = None
        if id_type == "CIT001":
            reserved = RESERVED_SIREN_PREFIXES.get(value[:3])
            if reserved:
                return [{"code": reserved[0], "message": reserved[1]}], None
            tp = self.data.find_thirdparty(siret=value)
        elif id_type == "CIT002":
            if value.startswith("FR"):
                return [{"code": "E121", "message": _ECODE_TEXT["E121"]}], None
            tp = self.data.find_thirdparty(tva=value)
            if tp is None:
                return [{"code": "E122", "message": _ECODE_TEXT["E122"]}], None
        else:
            return [{"code": "E100", "message": "There is no third party for this criteria"}], None
        if code is not None:
            owner = self.data.find_thirdparty(code=code)
            if owner is not None and (tp is None or owner.index != tp.index):
                return [{"code": "E112", "message": _ECODE_TEXT["E112"]}], None
        if tp is not None:
            reference = body["dossierReference"].strip()
            for dossier_id in self.data.dossier_ids(
                lambda d: (
                    self.data.field(d, "tp") == tp.index
                    and self.data.field(d, "dossierReference") == reference
                ),
                ("ref", tp.index, reference),
                self.data.dossiers_of_thirdparty(tp.index),
            ):
                return [{"code": "E202", "message": _ECODE_TEXT["E202"]}], dossier_id
        return [], tp

    async def create_dossier(self, request: web.Request) -> web.Response:
        body = self._check_new_dossier(self._body_json(await request.read()))
        errors, tp = self._creation_outcome(body)
        process = Process(
            process_id=self.data.new_process_id(),
            created=dt.datetime.now(),
            ready_at=time.monotonic() + self.process_delay,
            body=body,
            errors=errors,
        )
        self.data.processes[process.process_id] = process
        loop = asyncio.get_running_loop()

        def complete() -> None:
            self._timers.discard(timer)
            if process.errors:
                return
            thirdparty = (
                tp
                if tp is not None
                else self.data.add_thirdparty(
                    body["companyIdType"], body["companyIdValue"], body.get("thirdpartyCode")
                )
            )
            process.dossier_id = self.data.insert_dossier(
                thirdparty=thirdparty,
                fields={
                    "dossierReference": body["dossierReference"].strip(),
                    "description": body.get("description") or "",
                    "purchasingCategory": body.get("purchasingCategory") or "",
                    "expirationDate": body.get("expirationDate"),
                    "requiredDocuments": body.get("requiredDocuments") or None,
                },
            )

        timer = loop.call_later(self.process_delay, complete)
        self._timers.add(timer)
        return _json(
            {
                "content": {"processId": process.process_id},
                "messages": _messages(info=["Dossier creation in progress"]),
            }
        )

    async def update_dossier(self, request: web.Request) -> web.Response:
        found = self._dossier_or_404(request)
        if isinstance(found, web.Response):
            return found
        body = self._body_json(await request.read())
        if not isinstance(body, dict):
            raise _Refusal([_e("E010", "body must be a JSON object")])
        errors = [_e("E002", k) for k in body if k not in _UPDATE_FIELDS]
        if "dossierReference" in body and not str(body["dossierReference"] or "").strip():
            errors.append(_e("E003", "dossierReference"))
        errors += self._check_common_fields(body)
        fields = self.data._base_fields(found)
        if not fields["monitored"]:
            errors.append(_e("E201", str(found)))
        reference = str(body.get("dossierReference") or "").strip()
        if reference and reference != fields["dossierReference"]:
            clash = self.data.dossier_ids(
                lambda d: (
                    self.data.field(d, "tp") == fields["tp"]
                    and self.data.field(d, "dossierReference") == reference
                ),
                ("ref", fields["tp"], reference),
                self.data.dossiers_of_thirdparty(fields["tp"]),
            )
            if len(clash):
                errors.append(_e("E202", reference))
        if errors:
            raise _Refusal(errors)
        changes = {
            k: body[k] for k in ("description", "purchasingCategory", "expirationDate") if k in body
        }
        if reference:
            changes["dossierReference"] = reference
        changes["changed"] = dt.datetime.now()
        self.data.update_dossier(found, changes)
        return _json(
            self.render.action(
                {"dossierId": found, "updated": True}, "Dossier updated successfully"
            )
        )

    async def stop_dossier(self, request: web.Request) -> web.Response:
        found = self._dossier_or_404(request)
        if isinstance(found, web.Response):
            return found
        if not self.data.field(found, "monitored"):
            raise _Refusal([_e("E201", f"dossier {found} is not monitored")])
        self.data.update_dossier(
            found,
            {
                "monitored": False,
                "stoppingReason": "STOPREQUEST",
                "stoppingDate": dt.date.today().isoformat(),
                "changed": dt.datetime.now(),
            },
        )
        return _json(
            self.render.action({"dossierId": found, "stopped": True}, "Dossier monitoring stopped")
        )

    async def reactivate_dossier(self, request: web.Request) -> web.Response:
        found = self._dossier_or_404(request)
        if isinstance(found, web.Response):
            return found
        body = self._body_json(await request.read()) or {}
        if not isinstance(body, dict):
            raise _Refusal([_e("E010", "body must be a JSON object")])
        errors = [_e("E002", k) for k in body if k != "expirationDate"]
        expiration = body.get("expirationDate")
        if expiration and self._date(str(expiration), "expirationDate") < dt.date.today():
            errors.append(_e("E205", str(expiration)))
        if self.data.field(found, "monitored"):
            errors.append(_e("E204", str(found)))
        if errors:
            raise _Refusal(errors)
        self.data.update_dossier(
            found,
            {
                "monitored": True,
                "stoppingReason": "NA",
                "stoppingDate": None,
                "expirationDate": expiration,
                "changed": dt.datetime.now(),
            },
        )
        return _json(
            self.render.action(
                {"dossierId": found, "complete": True, "success": True}, "Dossier reactivated"
            )
        )

    # -- requirements ---------------------------------------------------------------------

    async def list_requirements(self, request: web.Request) -> web.Response:
        self._query(request, set())
        account = self.data.account_id
        return _json(
            {
                "content": [self.render.requirement(r, account) for r in REQUIREMENTS],
                "messages": _messages(),
            }
        )

    async def list_dossier_requirements(self, request: web.Request) -> web.Response:
        found = self._dossier_or_404(request)
        if isinstance(found, web.Response):
            return found
        documents = self.data._documents(found, self.data._base_fields(found))
        return _json(
            {
                "content": [
                    self.render.dossier_requirement(d["requirement"], self.data.account_id, found)
                    for d in documents
                ],
                "messages": _messages(),
            }
        )

    async def update_dossier_requirements(self, request: web.Request) -> web.Response:
        found = self._dossier_or_404(request)
        if isinstance(found, web.Response):
            return found
        body = self._body_json(await request.read())
        # The spec sends a bare array; the official Postman collection wraps it in an object.
        if isinstance(body, dict) and set(body) == {"newRequiredDocuments"}:
            body = body["newRequiredDocuments"]
        if not isinstance(body, list) or not body:
            raise _Refusal([_e("E010", "expected a non-empty array of document codes")])
        errors = [e for code in body for e in self._requirement_errors(code)]
        if not self.data.field(found, "monitored"):
            errors.append(_e("E201", str(found)))
        if errors:
            raise _Refusal(errors)
        self.data.update_dossier(
            found, {"requiredDocuments": list(dict.fromkeys(body)), "changed": dt.datetime.now()}
        )
        return _json({"messages": _messages(info=["Requirements updated"])})

    # -- documents and files -----------------------------------------------------------

    def _document_or_404(self, request: web.Request) -> tuple[int, dict[str, Any]] | web.Response:
        found = self._dossier_or_404(request)
        if isinstance(found, web.Response):
            return found
        document_id = self._path_int(request, "document_id")
        document = self.data.document(found, document_id)
        if document is None:
            return _json(
                spring_error(request.path, 404, f"Document not found with id: {document_id}"), 404
            )
        return found, document

    async def list_documents(self, request: web.Request) -> web.Response:
        found = self._dossier_or_404(request)
        if isinstance(found, web.Response):
            return found
        shape = self.render.document_shape(self.faults.document_shape)
        documents = self.data._documents(found, self.data._base_fields(found))
        return _json(
            {
                "content": [self.render.document(d, shape) for d in documents],
                "messages": _messages(),
            }
        )

    async def get_document(self, request: web.Request) -> web.Response:
        found = self._document_or_404(request)
        if isinstance(found, web.Response):
            return found
        return _json(
            {
                "content": self.render.document(
                    found[1], self.render.document_shape(self.faults.document_shape)
                ),
                "messages": _messages(),
            }
        )

    async def list_files(self, request: web.Request) -> web.Response:
        found = self._document_or_404(request)
        if isinstance(found, web.Response):
            return found
        shape = self.render.document_shape(self.faults.document_shape)
        return _json(
            {
                "content": [self.render.file(f, shape) for f in found[1]["files"]],
                "messages": _messages(),
            }
        )

    async def list_evidences(self, request: web.Request) -> web.Response:
        found = self._document_or_404(request)
        if isinstance(found, web.Response):
            return found
        return _json(
            {
                "content": [self.render.file(f, "v1.3") for f in found[1]["files"]],
                "messages": _messages(),
            }
        )

    async def download_file(self, request: web.Request) -> web.Response:
        found = self._document_or_404(request)
        if isinstance(found, web.Response):
            return found
        file_id = self._path_int(request, "file_id")
        entry = next((f for f in found[1]["files"] if f["file_id"] == file_id), None)
        if entry is None:
            return _json(spring_error(request.path, 404, f"File not found with id: {file_id}"), 404)
        requirement = found[1]["requirement"]
        filename = self.faults.download_filename or f"{requirement.code}_{file_id}.pdf"
        if (
            filename.isascii()
            and filename.isprintable()
            and '"' not in filename
            and "\\" not in filename
        ):
            disposition = f'attachment; filename="{filename}"'
        else:
            disposition = f"attachment; filename*=UTF-8''{quote(filename, safe='')}"
        return web.Response(
            body=pdf_bytes(file_id, requirement.name),
            # The spec declares application/octet-stream; the service was captured sending PDFs.
            content_type="application/octet-stream" if self.render.spec else "application/pdf",
            headers={"Content-Disposition": disposition},
        )

    # -- processes ---------------------------------------------------------------------

    async def get_process(self, request: web.Request) -> web.Response:
        process_id = request.match_info["process_id"]
        process = self.data.processes.get(process_id)
        if process is None:
            return _json(spring_error(request.path, 404, f"No process with id {process_id}"), 404)
        return _json(
            {"content": self.render.process(process, time.monotonic()), "messages": _messages()}
        )

    async def list_processes(self, request: web.Request) -> web.Response:
        params = self._query(request, {"fromDate"})
        params.pop("page", None), params.pop("pageSize", None), params.pop("size", None)
        if "fromDate" in params:
            since = dt.datetime.combine(self._date(params["fromDate"], "fromDate"), dt.time())
            if since.date() > dt.date.today():
                raise _Refusal([_e("E022", "fromDate")])
        else:
            since = dt.datetime.now() - dt.timedelta(hours=24)
        now = time.monotonic()
        return _json(
            {
                "content": [
                    self.render.process(p, now)
                    for p in self.data.processes.values()
                    if p.created >= since
                ],
                "messages": _messages(),
            }
        )

    # -- admin -------------------------------------------------------------------------

    async def admin_get_faults(self, request: web.Request) -> web.Response:
        return _json(self.faults.to_json())

    async def admin_put_faults(self, request: web.Request) -> web.Response:
        try:
            data = orjson.loads(await request.read())
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
            self.faults.update_from_json(data)
        except (ValueError, TypeError) as exc:
            return _json({"error": str(exc)}, 400)
        return _json(self.faults.to_json())

    async def admin_stats(self, request: web.Request) -> web.Response:
        return _json(self.stats.to_json())

    async def admin_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return _json({"reset": True})

    async def admin_revoke(self, request: web.Request) -> web.Response:
        self.revoke_tokens()
        return _json({"revoked": True})


_CRITERION = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)([:~!<>])(.+)$")


def _compile_search(text: str) -> Callable[[dict[str, Any]], bool]:
    """Parse the EDGE ``q?search=`` language: ``field<op>value`` joined by AND/OR and ( )."""
    tokens = text.split()
    position = 0

    def fail(reason: str) -> _Refusal:
        return _Refusal([_e("E010", f"search: {reason}")])

    def criterion(token: str) -> Callable[[dict[str, Any]], bool]:
        match = _CRITERION.match(token)
        if not match:
            raise fail(f"cannot read criterion {token!r}")
        field, op, expected = match.groups()
        if field == "isActive":
            field, expected = "outOfBusiness", str(expected.lower() != "true").lower()

        def test(record: dict[str, Any]) -> bool:
            value = record.get(field)
            if value is None:
                return op == "!"
            actual = str(value).lower() if isinstance(value, bool) else str(value)
            if op in "<>":
                try:
                    a, b = float(actual), float(expected)
                except ValueError:
                    a, b = actual, expected  # type: ignore[assignment]
                return a > b if op == ">" else a < b
            if op == "~":
                return expected.lower() in actual.lower()
            equal = actual.lower() == expected.lower()
            return equal if op == ":" else not equal

        return test

    def parse_or() -> Callable[[dict[str, Any]], bool]:
        left = parse_and()
        nonlocal position
        while position < len(tokens) and tokens[position].upper() == "OR":
            position += 1
            right = parse_and()
            left = (lambda lhs, rhs: lambda r: lhs(r) or rhs(r))(left, right)
        return left

    def parse_and() -> Callable[[dict[str, Any]], bool]:
        left = parse_atom()
        nonlocal position
        while position < len(tokens) and tokens[position].upper() == "AND":
            position += 1
            right = parse_atom()
            left = (lambda lhs, rhs: lambda r: lhs(r) and rhs(r))(left, right)
        return left

    def parse_atom() -> Callable[[dict[str, Any]], bool]:
        nonlocal position
        if position >= len(tokens):
            raise fail("unexpected end")
        token = tokens[position]
        position += 1
        if token == "(":
            inner = parse_or()
            if position >= len(tokens) or tokens[position] != ")":
                raise fail("missing )")
            position += 1
            return inner
        return criterion(token)

    result = parse_or()
    if position != len(tokens):
        raise fail(f"unexpected {tokens[position]!r}")
    return result


__all__ = ["MAX_PAGE_SIZE", "SimulatorService", "spring_error"]
