"""Every error the library raises derives from :class:`EattestError`::

    EattestError
    ├── InvalidInputError          bad input caught locally, before any request (also ValueError)
    │   └── DestinationError       dest= names a folder this machine cannot write into
    ├── UsageError                 the library driven as it cannot be (also RuntimeError):
    │   │                          a scan iterated twice, a client entered while open
    │   └── ClientClosedError      the client was used outside ``async with`` / after close
    │       └── EventLoopError     the client was used from another event loop than its own
    ├── TransportError             the exchange itself failed; nothing usable came back
    │   ├── ConnectError           could not connect (DNS, refused, TLS)
    │   ├── RequestTimeoutError    no complete answer within the timeout (also TimeoutError)
    │   └── IncompleteResponseError connection dropped mid-response, body shorter than announced
    ├── AuthenticationError        the token endpoint refused the credentials or the client
    ├── ApiError                   the service answered with an error (status, E-codes, request)
    │   ├── ValidationError        400-family refusals of what was sent
    │   │   ├── ParameterError         E001-E030: search/body parameters
    │   │   ├── DossierCreationError   E100-E122: creating a dossier (also from a failed process)
    │   │   ├── DossierUpdateError     E200-E205: updating, stopping, reactivating a dossier
    │   │   └── RequirementError       E301-E302: required documents
    │   ├── UnauthorizedError      401 that survived one token refresh
    │   ├── ForbiddenError         403
    │   ├── NotFoundError          404
    │   ├── RateLimitError         429 after the retry policy gave up (``retry_after`` seconds)
    │   ├── ServerError            5xx after the retry policy gave up
    │   └── UnexpectedResponseError a 2xx whose body is not what the API promises
    │       ├── ResponseTooLargeError  a body beyond the configured limit (never retried)
    │       └── RedirectError          a redirect that cannot be followed safely
    ├── ProcessTimeoutError        a dossier-creation process did not complete in time
    └── ScanError                  a paginated scan stopped; says which pages completed

No message, attribute or repr of these errors contains a password or a token: any text
copied from a server is redacted of the secrets the client knows before it gets here.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models.scans import Checkpoint

__all__ = [
    "ApiError",
    "AuthenticationError",
    "ClientClosedError",
    "ConnectError",
    "DossierCreationError",
    "DestinationError",
    "DossierUpdateError",
    "EattestError",
    "EventLoopError",
    "FileWriteError",
    "ForbiddenError",
    "IncompleteResponseError",
    "InvalidInputError",
    "NotFoundError",
    "ParameterError",
    "ProcessTimeoutError",
    "RateLimitError",
    "RedirectError",
    "RequestTimeoutError",
    "RequirementError",
    "ResponseTooLargeError",
    "ScanError",
    "ServerError",
    "TransportError",
    "UnauthorizedError",
    "UnexpectedResponseError",
    "UsageError",
    "ValidationError",
    "error_class_for",
]


class EattestError(Exception):
    """Root of every error raised by eattest_async."""


class InvalidInputError(EattestError, ValueError):
    """An argument failed a local check; no request was sent."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class DestinationError(InvalidInputError):
    """``dest=`` is a folder this machine cannot write into (a file, no permission, a
    read-only disk). The message describes the local filesystem, not only the argument:
    a service should log it rather than show it to its own callers (the FastAPI
    integration answers 500 without it)."""


class UsageError(EattestError, RuntimeError):
    """The library was driven in a way it does not support: a scan iterated a second time
    (start another, ``resume_from=scan.checkpoint()``), or ``async with client`` entered
    again while the client is open (its exit would close the client under the outer block)."""


class ClientClosedError(UsageError):
    """The client is not open (use ``async with Client(...)``) or was already closed."""


class EventLoopError(ClientClosedError):
    """The client was opened in another event loop (or that loop is closed).

    A client, its connections and its locks belong to the loop that opened it: open one
    client per loop (per thread running ``asyncio.run``).
    """


class TransportError(EattestError):
    """The HTTP exchange failed before a complete response arrived."""

    def __init__(self, message: str, *, method: str = "", path: str = "") -> None:
        self.method = method
        self.path = path
        where = f" ({method} {path})" if method else ""
        super().__init__(f"{message}{where}")


class ConnectError(TransportError):
    """The connection could not be established (``transient`` is False for TLS refusals)."""

    def __init__(
        self, message: str, *, method: str = "", path: str = "", transient: bool = True
    ) -> None:
        self.transient = transient
        super().__init__(message, method=method, path=path)


class RequestTimeoutError(TransportError, builtins.TimeoutError):
    """The response did not complete within the configured timeout."""


class IncompleteResponseError(TransportError):
    """The connection closed before the whole body arrived."""


class AuthenticationError(EattestError):
    """The token endpoint refused to issue a token (``error`` is Keycloak's code)."""

    def __init__(self, message: str, *, status: int | None = None, error: str = "") -> None:
        self.status = status
        self.error = error
        super().__init__(message)


class ApiError(EattestError):
    """The service answered with an error.

    Attributes: ``status`` (HTTP status, or None for a failed asynchronous process),
    ``codes`` (the E-codes found in the body), ``messages`` (their texts), ``method`` and
    ``path`` of the request (the path carries ids, never credentials).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None,
        method: str = "",
        path: str = "",
        codes: Sequence[str] = (),
        messages: Sequence[str] = (),
        retry_after: float | None = None,
        details: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.method = method
        self.path = path
        self.codes = tuple(codes)
        self.messages = tuple(messages)
        self.retry_after = retry_after
        self.details = dict(details or {})
        parts = [message]
        if self.codes:
            parts.append("[" + ", ".join(self.codes) + "]")
        if method:
            parts.append(f"({method} {path}" + (f" -> {status})" if status else ")"))
        super().__init__(" ".join(parts))

    @property
    def code(self) -> str | None:
        """The first E-code, if any."""
        return self.codes[0] if self.codes else None


class ValidationError(ApiError):
    """The service refused what was sent (400/422), usually with E-codes."""


class ParameterError(ValidationError):
    """E001-E030: a parameter is missing, unknown, empty, malformed, too large or out of range."""


class DossierCreationError(ValidationError):
    """E100-E122: the dossier could not be created (synchronously or by its process)."""


class DossierUpdateError(ValidationError):
    """E200-E205: the dossier could not be updated, stopped or reactivated."""


class RequirementError(ValidationError):
    """E301-E302: a required document is deactivated or not authorised."""


class UnauthorizedError(ApiError):
    """401 from the API even with a freshly issued token."""


class ForbiddenError(ApiError):
    """403: the token does not give access to this resource (another account?)."""


class NotFoundError(ApiError):
    """404: no such account, dossier, document, file or process."""


class RateLimitError(ApiError):
    """429 that the retry policy could not outwait; ``retry_after`` says how long to wait."""


class ServerError(ApiError):
    """5xx that persisted through the retry policy."""


class UnexpectedResponseError(ApiError):
    """A response whose body does not match the API (malformed JSON, an HTML page, empty)."""


class ResponseTooLargeError(UnexpectedResponseError):
    """The answer's body (after decompression) is beyond the configured limit
    (``Limits.max_body_bytes``): refused unread, and never retried."""


class RedirectError(UnexpectedResponseError):
    """A redirect that is not followed: a malformed or unsafe ``Location`` (plain http,
    or a body or credentials that would cross to another origin), or too many of them."""


class FileWriteError(EattestError, OSError):
    """A download could not be written where asked (disk full, quota, file size limit, a
    folder gone or made read-only meanwhile): nothing was left behind. ``errno`` is the
    system's; not retried (the next attempt would meet the same disk)."""

    def __init__(self, folder: object, error: OSError) -> None:
        self.folder = folder
        reason = error.strerror or str(error) or type(error).__name__
        super().__init__(error.errno, f"could not write the file into {folder}: {reason}")

    def __str__(self) -> str:
        return str(self.strerror)


class ProcessTimeoutError(EattestError, builtins.TimeoutError):
    """A dossier-creation process was still running when the wait timed out."""

    def __init__(self, process_id: str, timeout: float) -> None:
        self.process_id = process_id
        self.timeout = timeout
        super().__init__(f"process {process_id} still incomplete after {timeout:g} s")


class ScanError(EattestError):
    """A paginated scan stopped on a page that kept failing.

    ``checkpoint`` holds what was delivered (``checkpoint.done``: ranges of positions in
    the listing); pass it as ``resume_from=`` to fetch only the rest. The original error
    is ``__cause__``.
    """

    def __init__(self, message: str, *, checkpoint: Checkpoint) -> None:
        self.checkpoint = checkpoint
        super().__init__(message)


_FAMILIES: tuple[tuple[int, int, type[ValidationError]], ...] = (
    (1, 99, ParameterError),
    (100, 199, DossierCreationError),
    (200, 299, DossierUpdateError),
    (300, 399, RequirementError),
)

_BY_STATUS: dict[int, type[ApiError]] = {
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    429: RateLimitError,
}


def error_class_for(status: int | None, codes: Sequence[str]) -> type[ApiError]:
    """The most specific error class for an HTTP status and the E-codes of its body."""
    for code in codes:
        if len(code) == 4 and code[0] == "E" and code[1:].isdigit():
            number = int(code[1:])
            for low, high, cls in _FAMILIES:
                if low <= number <= high:
                    return cls
    if status is None:
        return ApiError
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ServerError
    if 400 <= status < 500:
        return ValidationError
    return UnexpectedResponseError
