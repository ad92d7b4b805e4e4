"""Property-based tests: hostile or arbitrary input never crashes, never leaks out untyped."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import yarl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eattest_async import Dossier, EattestError, InvalidInputError
from eattest_async._converter import structure
from eattest_async._protocol import (
    MAX_WAIT,
    Envelope,
    decipher,
    parse_ratelimit,
    parse_retry_after,
    path,
    query,
)

NOW = 1_800_000_000.0
SEED = json.loads(
    (Path(__file__).parent / "data" / "seed000_dossiers.json").read_text(encoding="utf-8")
)
V13 = SEED["content"][0]
V11 = json.loads(
    (Path(__file__).parent / "data" / "seed001_dossiers.json").read_text(encoding="utf-8")
)["content"][0]
fast = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

header_text = st.one_of(
    st.text(max_size=40),
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.datetimes().map(lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT")),
)


@fast
@given(header_text)
def test_retry_after_never_negative_never_huge_never_crashing(value: str) -> None:
    wait = parse_retry_after(value, NOW)
    assert wait is None or 0.0 <= wait <= MAX_WAIT


@fast
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
                "RateLimit",
                "RateLimit-Policy",
            ]
        ),
        header_text,
    )
)
def test_ratelimit_headers_never_produce_nonsense(headers: dict[str, str]) -> None:
    info = parse_ratelimit(headers, NOW)
    if info is not None:
        assert info.remaining >= 0
        assert 0.0 <= info.reset_after <= MAX_WAIT


@fast
@given(
    st.integers(100, 599),
    st.binary(max_size=300),
    st.sampled_from(["application/json", "text/html", "", "application/pdf"]),
)
def test_any_answer_deciphers_to_an_envelope_or_one_of_our_errors(
    status: int, body: bytes, content_type: str
) -> None:
    try:
        result = decipher(
            status, {"Content-Type": content_type}, body, method="GET", request_path="/x", now=NOW
        )
    except EattestError:
        return
    assert isinstance(result, Envelope)
    assert 200 <= status < 300


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@fast
@given(st.integers(100, 599), json_values)
def test_any_json_answer_deciphers_to_an_envelope_or_one_of_our_errors(
    status: int, data: Any
) -> None:
    body = json.dumps(data).encode()  # the stdlib: integers beyond 64 bits included
    with contextlib.suppress(EattestError):
        decipher(
            status,
            {"Content-Type": "application/json"},
            body,
            method="GET",
            request_path="/x",
            now=NOW,
        )


@fast
@given(st.text(min_size=1), st.text(min_size=1), st.text())
def test_path_parameters_are_encoded_never_injected(account: str, dossier: str, value: str) -> None:
    if {account, dossier} & {".", ".."}:
        # A URL would drop or climb such a segment (another path): refused, never built.
        with pytest.raises(InvalidInputError):
            path("/account/{a}/dossiers/{d}/documents", a=account, d=dossier)
        return
    built = path("/account/{a}/dossiers/{d}/documents", a=account, d=dossier)
    segments = built.split("/")
    assert segments[0] == ""
    assert len(segments) == 6
    assert unquote(segments[2]) == account
    assert unquote(segments[4]) == dossier
    assert "?" not in built
    assert "#" not in built
    url = yarl.URL("https://rs.example.com/api/v1" + built, encoded=True).with_query(
        query(name=value, page=0)
    )
    assert url.path.endswith("/documents")
    assert url.query["name"] == value
    assert url.host == "rs.example.com"


def _date_forms(stamp: dt.datetime) -> st.SearchStrategy[str]:
    return st.sampled_from(
        [
            stamp.date().isoformat(),
            stamp.isoformat(timespec="seconds"),
            stamp.isoformat(timespec="milliseconds"),
            stamp.isoformat(timespec="microseconds"),
            stamp.isoformat(timespec="milliseconds")[:-1],
            stamp.isoformat(timespec="milliseconds") + "+0000",
        ]
    )


@st.composite
def mangled_dossiers(draw: st.DrawFn) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(json.dumps(draw(st.sampled_from([V11, V13]))))
    for key in list(record):
        action = draw(st.sampled_from(["keep", "keep", "drop", "null"]))
        if action == "drop":
            del record[key]
        elif action == "null":
            record[key] = None
    for _ in range(draw(st.integers(0, 3))):
        record[draw(st.text(min_size=1, max_size=10))] = draw(json_values)
    stamp = draw(st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1)))
    if "stateLastChangeDate" in record:
        record["stateLastChangeDate"] = draw(_date_forms(stamp))
    return record


@fast
@given(mangled_dossiers())
def test_the_converter_reads_any_subset_of_fields_null_or_extra(record: dict[str, Any]) -> None:
    dossier = structure(record, Dossier)
    if isinstance(record.get("dossierId"), int):
        assert dossier.dossier_id == record["dossierId"]
    if record.get("stateLastChangeDate"):
        assert isinstance(dossier.state_last_change_date, dt.datetime)
    assert isinstance(dossier.documents, tuple)
    for document in dossier.documents:
        assert isinstance(document.files, tuple)
