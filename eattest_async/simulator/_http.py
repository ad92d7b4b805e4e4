"""What every handler of the simulator shares: the route table, typed refusals, JSON
answers, Spring-style errors and the reading of parameters.

Handlers are plain functions ``async def handler(sim, request)`` registered beside
themselves with ``@ROUTES.route("GET", path, "operation")``. They raise :class:`Refusal`
(an E-coded 4xx), :class:`NotFound` or :class:`BadRequest` (Spring-style 404 and 400)
instead of returning error responses; the service turns those into answers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import orjson
from aiohttp import web

from .._exceptions import InvalidInputError
from .._validation import check_siren, check_siret, check_vat

if TYPE_CHECKING:
    from ._service import SimulatorService

__all__ = [
    "API_PREFIX",
    "ACCOUNT",
    "CLIENT_ID",
    "ROUTES",
    "TOKEN_PATH",
    "BadRequest",
    "NotFound",
    "Refusal",
    "Router",
    "ecode",
    "json_response",
    "messages",
    "spring_error",
]

TOKEN_PATH = "/auth/realms/eat_realm/protocol/openid-connect/token"
API_PREFIX = "/api/v1"
ACCOUNT = API_PREFIX + "/account/{account_id}"
CLIENT_ID = "ea-api-edge"

# Spring reads path ids as a Java long and paging values as an int: what does not convert
# is a Spring-style 400 before any of the service's own checks.
_LONG_MAX = 2**63 - 1
_INT_MAX = 2**31 - 1

REASONS = {
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

ECODE_TEXT = {
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


class Refusal(Exception):
    """The service refuses the request with E-codes in ``messages.error`` (a 400)."""

    def __init__(self, errors: list[tuple[str, str]], status: int = 400) -> None:
        self.errors = errors
        self.status = status
        super().__init__(errors)


class NotFound(Exception):
    """A Spring-style 404: the path names nothing that exists."""


class BadRequest(Exception):
    """A Spring-style 400: a value the framework cannot convert (an id that is no long)."""


def ecode(code: str, detail: str) -> tuple[str, str]:
    return code, f"{ECODE_TEXT.get(code, 'Error')}: {detail}"


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


def messages(errors: Sequence[tuple[str, str]] = (), info: Sequence[str] = ()) -> dict[str, Any]:
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
        "error": REASONS.get(status, "Error"),
        "message": message,
        "path": path,
    }


# -- the route table ----------------------------------------------------------------------

Handler = Callable[["SimulatorService", web.Request], Awaitable[web.StreamResponse]]


@attrs.frozen
class Route:
    method: str
    path: str
    name: str  # the operation, as counted in stats and matched by scripted faults
    handler: Handler


class Router:
    """Routes registered beside their handlers: ``@ROUTES.route("GET", path, "name")``."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def route(self, method: str, path: str, name: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            if any(r.method == method and r.path == path for r in self.routes):
                raise ValueError(f"route {method} {path} registered twice")
            self.routes.append(Route(method, path, name, handler))
            return handler

        return register


ROUTES = Router()


# -- reading parameters -------------------------------------------------------------------


def _integer(raw: str, limit: int) -> int | None:
    """The value of ASCII digits (an optional minus) within ``limit``, else None.

    ``str.isdigit`` accepts ``²`` and ``int()`` refuses 5,000 digits: neither may reach
    ``int()`` unchecked.
    """
    digits = raw[1:] if raw.startswith("-") else raw
    if not digits or not digits.isascii() or not digits.isdigit() or len(digits) > 19:
        return None
    value = int(raw)
    return value if -limit - 1 <= value <= limit else None


def path_id(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    value = _integer(raw, _LONG_MAX)
    if value is None:
        raise BadRequest(
            f"Failed to convert value of type 'java.lang.String' to required type 'long'; "
            f'For input string: "{raw[:100]}"'
        )
    return value


def query_params(request: web.Request, allowed: set[str]) -> dict[str, str]:
    errors = []
    params: dict[str, str] = {}
    for name, value in request.query.items():
        if name not in allowed and name not in ("page", "pageSize", "size"):
            errors.append(ecode("E002", name[:100]))
        elif value.strip() == "":
            errors.append(ecode("E003", name))
        else:
            params[name] = value.strip()
    if errors:
        raise Refusal(errors)
    return params


def paging(params: dict[str, str], max_page_size: int) -> tuple[int, int]:
    errors = []
    page, size = 0, 10
    raw_page = params.pop("page", None)
    raw_size = params.pop("pageSize", None) or params.pop("size", None)
    for name, raw in (("page", raw_page), ("pageSize", raw_size)):
        if raw is not None and _integer(raw, _INT_MAX) is None:
            raise BadRequest(
                f"Failed to convert value of type 'java.lang.String' to required type "
                f"'int'; For input string: \"{raw[:100]}\" ({name})"
            )
    if raw_page is not None:
        page = int(raw_page)
        if page < 0:
            errors.append(ecode("E010", "page"))
    if raw_size is not None:
        size = int(raw_size)
        if size < 1:
            errors.append(ecode("E010", "pageSize"))
        elif size > max_page_size:
            errors.append(ecode("E011", f"pageSize (max {max_page_size})"))
    if errors:
        raise Refusal(errors)
    return page, size


def bool_param(params: dict[str, str], name: str) -> bool | None:
    if name not in params:
        return None
    value = params[name].lower()
    if value not in ("true", "false"):
        raise Refusal([ecode("E010", f"{name} must be true or false")])
    return value == "true"


def date_param(value: str, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise Refusal([ecode("E010", f"{name} must be a date YYYY-MM-DD")]) from None


def identifier_checks(params: dict[str, str]) -> None:
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
                errors.append(ecode("E010", str(exc)))
    if "companyIdType" in params and params["companyIdType"] not in ("CIT001", "CIT002", "CIT003"):
        errors.append(ecode("E010", "companyIdType must be CIT001, CIT002 or CIT003"))
    if errors:
        raise Refusal(errors)


def body_json(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Refusal([ecode("E010", "body is not valid JSON")]) from None


async def page_envelope(
    sim: SimulatorService,
    items: Sequence[int],
    page: int,
    size: int,
    render: Callable[[int], dict[str, Any]],
) -> web.Response:
    start = page * size
    content = []
    for index, item in enumerate(items[start : start + size]):
        content.append(render(item))
        if index % 25 == 24:
            # Render cooperatively: concurrent requests progress together and arrive on
            # time, as with a real server, instead of queueing behind one big page.
            await asyncio.sleep(0)
    return json_response(sim.render.page(content, page, size, len(items)))
