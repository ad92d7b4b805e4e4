"""The sans-I/O core, tested without a network: headers, bodies, paths."""

from __future__ import annotations

import datetime as dt
import email.utils

import pytest

from eattest_async import (
    ApiError,
    DossierCreationError,
    DossierUpdateError,
    ForbiddenError,
    NotFoundError,
    ParameterError,
    RateLimitError,
    RequirementError,
    ServerError,
    UnauthorizedError,
    UnexpectedResponseError,
    ValidationError,
)
from eattest_async._protocol import decipher, parse_ratelimit, parse_retry_after, path, query

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2", 2.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("-5", 0.0),
        ("1e9", None),  # not delta-seconds (digits only)
        ("99999999", 86_400.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
        (email.utils.formatdate(NOW + 30, usegmt=True), 30.0),
        (email.utils.formatdate(NOW - 30, usegmt=True), 0.0),
    ],
)
def test_retry_after_forms(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_ratelimit_draft_delta_epoch_and_ietf() -> None:
    delta = parse_ratelimit(
        {"RateLimit-Limit": "50", "RateLimit-Remaining": "47", "RateLimit-Reset": "20"}, NOW
    )
    assert (delta.limit, delta.remaining, delta.reset_after) == (50, 47, 20.0)  # type: ignore[union-attr]
    epoch = parse_ratelimit(
        {"RateLimit-Remaining": "3", "RateLimit-Reset": str(int(NOW) + 45)}, NOW
    )
    assert epoch is not None
    assert epoch.reset_after == 45.0
    ietf = parse_ratelimit(
        {"RateLimit-Policy": '"default";q=100;w=60', "RateLimit": '"default";r=9;t=30'}, NOW
    )
    assert (ietf.limit, ietf.remaining, ietf.reset_after) == (100, 9, 30.0)  # type: ignore[union-attr]
    assert parse_ratelimit({}, NOW) is None
    assert parse_ratelimit({"RateLimit-Remaining": "x", "RateLimit-Reset": "1"}, NOW) is None
    assert parse_ratelimit(
        {"RateLimit-Remaining": "-4", "RateLimit-Reset": "-9"}, NOW
    ) == parse_ratelimit({"RateLimit-Remaining": "0", "RateLimit-Reset": "0"}, NOW)


def test_paths_encode_parameters_so_none_adds_a_segment() -> None:
    assert (
        path("/account/{a}/dossiers/{d}", a=1, d="../../admin?x=1#f")
        == "/account/1/dossiers/..%2F..%2Fadmin%3Fx%3D1%23f"
    )
    assert query(monitored=True, page=0, siren=None, since=dt.date(2024, 1, 2)) == (
        ("monitored", "true"),
        ("page", "0"),
        ("since", "2024-01-02"),
    )


def ok(body: bytes, status: int = 200, content_type: str = "application/json") -> object:
    return decipher(
        status, {"Content-Type": content_type}, body, method="GET", request_path="/p", now=NOW
    )


def test_decipher_envelopes() -> None:
    envelope = ok(b'{"content": [1], "page": 2, "size": 5, "totalElements": 11, "messages": {}}')
    assert envelope.content == [1]  # type: ignore[attr-defined]
    assert (envelope.page, envelope.size, envelope.total_elements) == (2, 5, 11)  # type: ignore[attr-defined]
    assert ok(b'{"content": [], "pageSize": 7}').size == 7  # type: ignore[attr-defined]
    assert ok(b"[1, 2]").content == [1, 2]  # type: ignore[attr-defined]
    # A bare object is content, like a bare list (the EDGE spec documents both).
    assert ok(b'{"other": 1}').content == {"other": 1}  # type: ignore[attr-defined]


def test_content_and_error_messages_are_an_answer_not_an_error() -> None:
    body = b'{"content": {"dossierId": 5}, "messages": {"error": [{"code": "E999"}]}}'
    envelope = decipher(200, {}, body, method="GET", request_path="/p", now=NOW)
    assert envelope.content == {"dossierId": 5}
    assert envelope.messages == {"error": [{"code": "E999"}]}
    action = b'{"messages": {"info": ["done"], "error": [{"code": "W1", "message": "partly"}]}}'
    answered = decipher(
        200, {}, action, method="POST", request_path="/p", now=NOW, expect_content=False
    )
    assert answered.messages["error"] == [{"code": "W1", "message": "partly"}]


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"", "application/json", "empty body"),
        (b"<html><body>Login</body></html>", "text/html", "HTML"),
        (b'{"content": [', "application/json", "malformed JSON"),
        (b'"just a string"', "application/json", "str"),
        (b"{}", "application/json", "no 'content'"),
    ],
)
def test_decipher_refuses_what_is_not_the_api(body: bytes, content_type: str, reason: str) -> None:
    with pytest.raises(UnexpectedResponseError, match=reason) as info:
        ok(body, content_type=content_type)
    assert info.value.path == "/p"


@pytest.mark.parametrize(
    ("status", "body", "cls", "codes"),
    [
        (
            400,
            b'{"messages": {"error": [{"code": "E010", "message": "Incorrect format: siren"}]}}',
            ParameterError,
            ("E010",),
        ),
        (
            400,
            b'{"messages": {"error": [{"code": "E102", "message": "no such establishment"}]}}',
            DossierCreationError,
            ("E102",),
        ),
        (
            400,
            b'{"messages": {"error": ["E201 This dossier is disabled"]}}',
            DossierUpdateError,
            ("E201",),
        ),
        (
            400,
            b'{"messages": {"error": [{"code": "E302", "message": "not authorized"}]}}',
            RequirementError,
            ("E302",),
        ),
        (
            400,
            b'{"timestamp": "2019-02-05T09:06:15.245+0000", "status": 400, "error": "Bad Request"}',
            ValidationError,
            (),
        ),
        (
            401,
            b'{"status": 401, "error": "Unauthorized", "message": "Full authentication"}',
            UnauthorizedError,
            (),
        ),
        (403, b"", ForbiddenError, ()),
        (404, b'{"status": 404, "message": "Dossier not found with id: 9"}', NotFoundError, ()),
        (429, b"{}", RateLimitError, ()),
        (502, b"<html><h1>502 Bad Gateway</h1></html>", ServerError, ()),
        (
            200,
            b'{"content": null, "messages": {"error": [{"code": "E003", "message": "Empty"}]}}',
            ParameterError,
            ("E003",),
        ),
    ],
)
def test_error_answers_become_typed_errors(
    status: int, body: bytes, cls: type[ApiError], codes: tuple[str, ...]
) -> None:
    with pytest.raises(ApiError) as info:
        decipher(
            status,
            {"Retry-After": "3"},
            body,
            method="POST",
            request_path="/account/1/dossiers",
            now=NOW,
        )
    error = info.value
    assert type(error) is cls
    assert error.codes == codes
    assert error.status == status
    assert (error.method, error.path) == ("POST", "/account/1/dossiers")
    assert str(error)
    if status == 429:
        assert error.retry_after == 3.0


def test_error_message_never_repeats_request_headers() -> None:
    with pytest.raises(ApiError) as info:
        decipher(
            401,
            {"WWW-Authenticate": "Bearer secret-token"},
            b"{}",
            method="GET",
            request_path="/a",
            now=NOW,
        )
    assert "secret-token" not in str(info.value)
    assert "secret-token" not in repr(info.value.__dict__)
