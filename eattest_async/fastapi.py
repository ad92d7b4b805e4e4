"""FastAPI integration (extra ``fastapi``): one Client per application, handed to routes.

::

    from fastapi import Depends, FastAPI
    import eattest_async as ea
    from eattest_async.fastapi import EattestClient, install_error_handlers, lifespan

    app = FastAPI(lifespan=lifespan(ea.Environment.TEST, username=..., password=...))
    install_error_handlers(app)

    @app.get("/suppliers/{siret}")
    async def supplier(siret: str, client: EattestClient) -> dict[str, object]:
        page = await client.dossiers.list(siret=siret)
        ...

The client (its session, its token, its rate gate) is shared by every request of the
app: concurrent requests share one token and one ``Retry-After`` cooldown.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

try:
    from fastapi import Depends, FastAPI, Request
    from fastapi.responses import JSONResponse
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        'the FastAPI integration needs its extra: pip install "eattest-async[fastapi]"'
    ) from exc

from ._client import Client
from ._config import Environment
from ._coordination import coordinator_from_env
from ._exceptions import (
    ApiError,
    AuthenticationError,
    DestinationError,
    EattestError,
    FileWriteError,
    InvalidInputError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TransportError,
)

__all__ = ["EattestClient", "get_client", "install_error_handlers", "lifespan"]

_STATE_KEY = "eattest_client"


def lifespan(
    environment: Environment, **client_options: Any
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A FastAPI ``lifespan`` opening one :class:`Client` for the app, closed at shutdown.

    ``client_options`` are those of :class:`Client` (``username``, ``password``,
    ``account_id``, ``timeouts``, ``retry``...). Without a ``coordinator``, one is made
    from ``$EATTEST_REDIS_URL`` when set, so that the app's workers share one token and
    one rate gate.
    """

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        options = dict(client_options)
        if options.get("coordinator") is None:
            # Several workers (uvicorn --workers, gunicorn -w): one token, one rate gate.
            options["coordinator"] = coordinator_from_env()
        async with Client(environment, **options) as client:
            setattr(app.state, _STATE_KEY, client)
            try:
                yield
            finally:
                delattr(app.state, _STATE_KEY)

    return run


def get_client(request: Request) -> Client:
    """Dependency: the application's client (opened by :func:`lifespan`)."""
    client = getattr(request.app.state, _STATE_KEY, None)
    if client is None:
        raise RuntimeError(
            "no eattest client: create the app with "
            "FastAPI(lifespan=eattest_async.fastapi.lifespan(...))"
        )
    return client  # type: ignore[no-any-return]


EattestClient = Annotated[Client, Depends(get_client)]


# This machine's own trouble (a dest folder it cannot write into, a full or read-only
# disk): its text tells the server's filesystem, and the fault is not the caller's.
_LOCAL = (DestinationError, FileWriteError)


def _public_message(error: EattestError) -> str:
    """What the app's own callers (anonymous, perhaps) may read of an error: our words only.
    Upstream text (an IdP's error_description, an API's message, a URL) stays in the logs."""
    if isinstance(error, _LOCAL):
        return "this service could not write the file"
    if isinstance(error, InvalidInputError):
        return str(error)  # the caller's own input, checked locally: no upstream text
    if isinstance(error, RateLimitError):
        return "the e-Attestations API asks to slow down"
    if isinstance(error, ApiError):
        if error.status is None:
            return "the e-Attestations API refused the request"
        return f"the e-Attestations API answered HTTP {error.status}"
    if isinstance(error, AuthenticationError):
        return "the e-Attestations identity provider refused this service's credentials"
    if isinstance(error, TransportError):
        return "the e-Attestations API could not be reached"
    return "the e-Attestations API call failed"


def _problem(
    status: int, error: EattestError, headers: dict[str, str] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"error": type(error).__name__, "message": _public_message(error)}
    if isinstance(error, ApiError) and error.codes:
        body["codes"] = list(error.codes)
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Answer the app's callers sensibly when the e-Attestations API could not:

    - upstream rate limit exhausted: 503 with ``Retry-After`` (so callers back off too);
    - upstream 404: 404; a bad argument caught locally: 422 (its message names it);
    - a download this machine cannot write (dest folder, disk): 500, without details;
    - upstream server or network trouble: 502; other API errors: 502 with the E-codes.
    """

    async def handle(request: Request, error: Exception) -> JSONResponse:
        if isinstance(error, RateLimitError):
            wait = error.retry_after if error.retry_after is not None else 1.0
            return _problem(503, error, {"Retry-After": str(max(1, math.ceil(wait)))})
        if isinstance(error, NotFoundError):
            return _problem(404, error)
        if isinstance(error, _LOCAL):
            return _problem(500, error)
        if isinstance(error, InvalidInputError):
            return _problem(422, error)
        if isinstance(error, (ServerError, TransportError)):
            return _problem(502, error)
        assert isinstance(error, EattestError)
        return _problem(502, error)

    app.add_exception_handler(EattestError, handle)
