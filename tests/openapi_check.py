"""Checking requests and answers against the official OpenAPI document with openapi-core.

A violation is one schema error (a wrong type, format, null, a missing required field...)
or one protocol error (an undeclared media type, a body where none is declared...).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from openapi_core import OpenAPI
from openapi_core.templating.paths.finders import APICallPathFinder
from openapi_core.testing import MockRequest, MockResponse

SPEC = Path(__file__).parent / "data" / "spec" / "eattestations-openapi-v1.1.yaml"
# The spec's server is https://rs.e-attestations.com/api/v1: requests are checked as if
# sent there, whatever loopback port the simulator listens on.
HOST = "https://rs.e-attestations.com"


@functools.cache
def openapi() -> OpenAPI:
    return OpenAPI.from_file_path(str(SPEC))


def _messages(errors: Iterable[BaseException]) -> list[str]:
    found: list[str] = []
    for error in errors:
        cause = error.__cause__
        schema_errors = getattr(cause, "schema_errors", None) or getattr(
            error, "schema_errors", None
        )
        if schema_errors:
            for schema_error in schema_errors:
                where = "/".join(str(p) for p in schema_error.absolute_path)
                found.append(f"{type(error).__name__} at {where or '.'}: {schema_error.message}")
        else:
            found.append(f"{type(error).__name__}: {error}" + (f" ({cause})" if cause else ""))
    return found


def mock_request(
    method: str,
    path: str,
    *,
    query: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> MockRequest:
    content_type = (headers or {}).get("Content-Type", "application/json")
    return MockRequest(
        HOST,
        method.lower(),
        urlsplit(path).path,
        args=dict(query or {}),
        headers=dict(headers or {}),
        data=body or None,
        content_type=content_type.split(";")[0].strip(),
    )


def request_violations(request: MockRequest) -> list[str]:
    found = _messages(openapi().iter_request_errors(request))
    if request.body and "requestBody" not in _operation(request):
        # openapi-core ignores it; Prism refuses it, and so would a strict gateway.
        found.append(f"a body ({len(request.body)} bytes) where the operation declares none")
    return found


def response_violations(
    request: MockRequest, status: int, headers: Mapping[str, str], body: bytes
) -> list[str]:
    content_type = headers.get("Content-Type", "application/json").split(";")[0].strip()
    response = MockResponse(
        body, status_code=status, headers=dict(headers), content_type=content_type
    )
    return _messages(openapi().iter_response_errors(request, response))


def _found(request: MockRequest) -> Any:
    url = request.host_url + request.path
    return APICallPathFinder(openapi().spec).find(request.method, url)


def _operation(request: MockRequest) -> Any:
    return _found(request).operation


def operation_of(request: MockRequest) -> str:
    """``METHOD /template`` of the spec's operation matching the request (for reports)."""
    return f"{request.method.upper()} {_found(request).path.parts[-1]}"
