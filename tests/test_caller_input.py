"""Untyped exceptions, from the caller's side and from a server's: a bad duration, a folder
that cannot be written, an injected session closed by its owner, a hostile file-name
charset. Each is a typed error; the caller's are raised before any request leaves."""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import eattest_async as ea
from eattest_async import _protocol
from eattest_async._downloads import filename_from_disposition
from eattest_async.resources._base import Resource

from .hostile import ENVELOPE, Request, Writer, serving, token_answer

pytestmark = pytest.mark.anyio

BAD_SECONDS = [math.nan, math.inf, -math.inf, 0, -1, 1e-9, "5", True, [1], 10**400]


def _methods_taking_seconds(client: ea.Client) -> list[tuple[str, Any, str]]:
    """(name, bound method, duration parameter) for every public method of every resource."""
    found = []
    for attribute in dir(client):
        resource = getattr(client, attribute, None)
        if not isinstance(resource, Resource):
            continue
        for name, method in inspect.getmembers(resource, inspect.ismethod):
            if name.startswith("_"):
                continue
            parameters = inspect.signature(method).parameters
            for seconds in ("timeout", "interval"):
                if seconds in parameters:
                    found.append((f"{attribute}.{name}", method, seconds))
    return found


def _required(method: Any) -> dict[str, Any]:
    """A value for each required argument: the duration is checked before any is used."""
    return {
        name: 1
        for name, parameter in inspect.signature(method).parameters.items()
        if parameter.default is inspect.Parameter.empty
        and parameter.kind is not inspect.Parameter.VAR_KEYWORD
    }


async def _invoke(method: Any, arguments: dict[str, Any]) -> object:
    result = method(**arguments)
    return await result if inspect.isawaitable(result) else result


@pytest.mark.parametrize("bad", BAD_SECONDS, ids=lambda v: repr(v)[:12])
async def test_every_duration_argument_is_checked_before_any_request(bad: object) -> None:
    async with serving() as server, server.client(account_id=None) as client:
        methods = _methods_taking_seconds(client)
        assert len(methods) > 20  # every resource's calls, and processes.wait's two
        for name, method, seconds in methods:
            with pytest.raises(ea.InvalidInputError, match=seconds):
                await _invoke(method, {**_required(method), seconds: bad})
            assert server.requests == [], name  # not even the token


async def test_sane_durations_are_accepted() -> None:
    async with serving() as server, server.client(account_id=4242) as client:
        await client.dossiers.list(timeout=5)
        await client.dossiers.list(timeout=0.5)


@pytest.mark.parametrize("where", ["under-a-file", "proc"])
async def test_a_folder_that_cannot_be_written_is_bad_input(where: str, tmp_path: Path) -> None:
    if where == "proc":
        if not Path("/proc/self").is_dir():
            pytest.skip("no /proc here")
        dest = Path("/proc")
    else:
        (tmp_path / "a-file").write_bytes(b"x")
        dest = tmp_path / "a-file" / "sub"
    async with serving() as server, server.client(account_id=None) as client:
        with pytest.raises(ea.InvalidInputError, match="dest"):
            await client.files.download(1, 2, 3, dest=dest)
    assert server.requests == []


async def test_an_injected_session_closed_by_its_owner_is_a_client_closed_error() -> None:
    async with serving() as server:
        session = aiohttp.ClientSession()
        async with server.client(session=session, account_id=4242) as client:
            await client.dossiers.list()
            await session.close()
            with pytest.raises(ea.ClientClosedError, match="session"):
                await client.dossiers.list()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf", "résumé.pdf"),
        ("attachment; filename*=iso-8859-1''r%E9sum%E9.pdf", "résumé.pdf"),
        ("attachment; filename*=''plain.pdf", "plain.pdf"),
        ("attachment; filename*=idna''%FF%FE", None),
        ("attachment; filename*=punycode''%FF", None),
        ("attachment; filename*=utf-7''+AGEAYgBj-", None),
        ("attachment; filename*=nonsense''a.pdf", None),
        ("attachment; filename=\"safe.pdf\"; filename*=idna''%FF%FE", "safe.pdf"),
    ],
)
def test_a_file_name_in_an_odd_charset_is_ignored_not_decoded(
    header: str, expected: str | None
) -> None:
    assert filename_from_disposition(header) == expected


# -- ids, pages and sizes: every one an int64, checked before anything is sent ----------

# Each refused by every id of the API: a dot segment or a slash would ask for another path
# (processes.get("..") was the dossier list), an int beyond int64 could only fail there
# (and 10**5000 cannot even be written: ValueError), a bool or float is no id.
BAD_IDS: list[object] = ["..", ".", "", "1/2", "%2E%2E", 2**63, 10**5000, -1, True, 1.5, b"1"]
ID_PARAMETERS = ("dossier_id", "document_id", "file_id", "thirdparty_id", "process_id")
GOOD = {"codes": ["A"], "process_id": "1"}


def _public_methods(client: ea.Client) -> list[tuple[str, Any]]:
    found = []
    for attribute in dir(client):
        resource = getattr(client, attribute, None)
        if isinstance(resource, Resource):
            for name, method in inspect.getmembers(resource, inspect.ismethod):
                if not name.startswith("_"):
                    found.append((f"{attribute}.{name}", method))
    return found


def _good_arguments(name: str, method: Any) -> dict[str, Any]:
    """Valid values for the required arguments, so that only the one under test is bad."""
    arguments = {
        parameter: GOOD.get(parameter, 1)
        for parameter, spec in inspect.signature(method).parameters.items()
        if spec.default is inspect.Parameter.empty and spec.kind is not spec.VAR_KEYWORD
    }
    if name == "dossiers.update":
        arguments["description"] = "x"
    return arguments


@pytest.mark.parametrize("bad", BAD_IDS, ids=lambda v: "10**5000" if v == 10**5000 else repr(v))
async def test_every_id_is_checked_before_any_request(bad: Any) -> None:
    async with serving() as server, server.client(account_id=None) as client:
        calls: list[tuple[str, str, Any]] = []
        for name, method in _public_methods(client):
            for parameter in inspect.signature(method).parameters:
                if parameter in ID_PARAMETERS:
                    arguments = {**_good_arguments(name, method), parameter: bad}
                    calls.append((name, parameter, lambda m=method, a=arguments: _invoke(m, a)))
        assert len(calls) > 15
        # ...and those given as a filter, a page or a size.
        calls += [
            ("dossiers.list", "thirdparty_id", lambda: client.dossiers.list(thirdparty_id=bad)),
            (
                "dossiers.scan",
                "thirdparty_id",
                lambda: _invoke(client.dossiers.scan, {"thirdparty_id": bad}),
            ),
            ("dossiers.list", "page", lambda: client.dossiers.list(page=bad)),
            ("thirdparties.list", "page", lambda: client.thirdparties.list(page=bad)),
            ("thirdparties.search", "page", lambda: client.thirdparties.search("a:b", page=bad)),
            (
                "files.download",
                "expected_size",
                lambda: client.files.download(1, 2, 3, expected_size=bad),
            ),
        ]
        for name, parameter, call in calls:
            with pytest.raises(ea.InvalidInputError) as raised:
                await call()
            assert raised.value.field == parameter, name
            assert server.requests == [], name  # not even the token


@pytest.mark.parametrize(
    "good", ["12", " 12 ", 12, str(2**63 - 1), "0123", "0b1c2d3e-aaaa-4bbb-8ccc-123456789abc"]
)
async def test_a_process_id_is_sent_as_create_returned_it(good: object) -> None:
    # The path declares an int64, the answer a string: whatever create() gave is kept.
    async with serving() as server, server.client(account_id=4242) as client:
        with contextlib.suppress(ea.EattestError):  # what the answer holds is not the point
            await client.processes.get(good)  # type: ignore[arg-type]
        assert [r.path for r in server.requests if "dossiers" in r.path] == [
            f"/api/v1/account/4242/dossiers/process/{str(good).strip()}"
        ]


@pytest.mark.parametrize("segment", ["", ".", ".."])
def test_no_path_is_built_with_a_dot_or_empty_segment(segment: str) -> None:
    # The safety net under every id's own check: the URL would be normalised elsewhere.
    with pytest.raises(ea.InvalidInputError) as raised:
        _protocol.path(
            "/account/{account_id}/dossiers/{dossier_id}", account_id=1, dossier_id=segment
        )
    assert raised.value.field == "dossier_id"


# -- flags, callbacks, durations ---------------------------------------------------------


@pytest.mark.parametrize("bad", ["false", "", None, 0, 1])
async def test_every_flag_is_a_real_bool(bad: object, tmp_path: Path) -> None:
    """overwrite="false" replaced the caller's file: a truthy string must not turn it on."""
    (tmp_path / "file-3").write_bytes(b"mine")
    async with serving() as server, server.client(account_id=None) as client:
        flags = [
            (name, method, parameter)
            for name, method in _public_methods(client)
            for parameter, spec in inspect.signature(method).parameters.items()
            if spec.annotation in ("bool", bool)
        ]
        assert {f"{name}:{parameter}" for name, _, parameter in flags} >= {
            "files.download:overwrite",
            "dossiers.create:retry",
            "dossiers.update:retry",
            "dossiers.scan:raw",
            "dossiers.changes:raw",
            "processes.wait:raise_on_failure",
        }
        for name, method, parameter in flags:
            arguments = {**_good_arguments(name, method), parameter: bad}
            if name == "files.download":
                arguments["dest"] = tmp_path
            with pytest.raises(ea.InvalidInputError) as raised:
                await _invoke(method, arguments)
            assert raised.value.field == parameter, name
        assert server.requests == []
    assert (tmp_path / "file-3").read_bytes() == b"mine"


async def test_a_duration_beyond_a_float_is_refused_not_an_overflow() -> None:
    async with serving() as server, server.client(account_id=None) as client:
        for seconds in (10**400, -(10**400), 10**5000):
            with pytest.raises(ea.InvalidInputError, match="timeout"):
                await client.dossiers.list(timeout=seconds)
            with pytest.raises(ea.InvalidInputError, match="interval"):
                await client.processes.wait("1", interval=seconds)
        assert server.requests == []


async def test_a_progress_callback_that_is_not_callable_is_refused_at_once() -> None:
    async with serving() as server, server.client(account_id=None) as client:
        five: Any = 5
        starts: list[Callable[[], object]] = [
            lambda: client.dossiers.scan(on_progress=five),
            lambda: client.dossiers.changes(on_progress=five),
            lambda: client.thirdparties.scan(on_progress=five),
            lambda: client.thirdparties.search_scan("a:b", on_progress=five),
        ]
        for start in starts:
            with pytest.raises(ea.InvalidInputError) as raised:
                start()
            assert raised.value.field == "on_progress"
        assert server.requests == []


# -- bodies, texts, codes: typed before anything leaves ----------------------------------


def _new(**fields: Any) -> ea.NewDossier:
    return ea.NewDossier(
        company_id_type="CIT001",
        company_id_value="50382936800045",
        dossier_reference="R1",
        **fields,
    )


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.dossiers.create(_new(description=b"x")), "description"),
        (lambda c: c.dossiers.create(_new(description=object())), "description"),
        (lambda c: c.dossiers.create(_new(description=5)), "description"),
        (
            lambda c: c.dossiers.create(_new(thirdparty_code=["a"])),
            "thirdparty_code",
        ),
        (
            lambda c: c.dossiers.create(_new(purchasing_category=1)),
            "purchasing_category",
        ),
        (lambda c: c.dossiers.create(_new(thirdparty_email=5)), "thirdparty_email"),
        (
            lambda c: c.dossiers.create(_new(required_documents=5)),
            "required_documents",
        ),
        (lambda c: c.dossiers.update(1, description=b"x"), "description"),
        (lambda c: c.dossiers.update(1, thirdparty_code=3), "thirdparty_code"),
        (lambda c: c.dossiers.update(1, thirdparty_email=5), "thirdparty_email"),
        (lambda c: c.dossiers.update(1, foo=1), "foo"),
        (
            lambda c: c.dossiers.update(1, ea.DossierUpdate(description="a"), description="b"),
            "description",
        ),
        (lambda c: c.requirements.update(1, None), "codes"),
        (lambda c: c.requirements.update(1, 5), "codes"),
        (lambda c: c.requirements.update(1, "A"), "codes"),
        (lambda c: c.requirements.update(1, []), "codes"),
        (lambda c: c.requirements.update(1, ["A", 5]), "codes"),
        (lambda c: c.files.download(1, 2, 3, dest=5), "dest"),
        (lambda c: c.files.download(1, 2, 3, dest=b"/tmp"), "dest"),
        (lambda c: c.files.download(1, 2, 3, dest="\x00"), "dest"),
        (lambda c: c.files.download(1, 2, 3, filename=5), "filename"),
    ],
)
async def test_a_body_or_argument_of_the_wrong_type_is_refused_before_any_request(
    call: Any, field: str
) -> None:
    async with serving() as server, server.client(account_id=None) as client:
        with pytest.raises(ea.InvalidInputError) as raised:
            await call(client)
        assert raised.value.field == field
        assert not isinstance(raised.value, ea.DestinationError)  # the argument, not the disk
        assert server.requests == []  # not even the token


LONG = "x" * 1001


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.dossiers.list(thirdparty_code=LONG), "thirdparty_code"),
        (lambda c: c.dossiers.list(dossier_reference=LONG), "dossier_reference"),
        (lambda c: c.dossiers.list(company_id_value=LONG), "company_id_value"),
        (lambda c: c.thirdparties.list(name=LONG), "name"),
        (lambda c: c.thirdparties.list(q=LONG), "q"),
        (lambda c: c.thirdparties.search(LONG), "query"),
        (lambda c: _invoke(c.thirdparties.search_scan, {"query_text": LONG}), "query"),
        (lambda c: _invoke(c.dossiers.scan, {"thirdparty_code": LONG}), "thirdparty_code"),
    ],
)
async def test_a_text_filter_is_bounded_well_below_a_request_line(call: Any, field: str) -> None:
    async with serving() as server, server.client(account_id=None) as client:
        with pytest.raises(ea.InvalidInputError) as raised:
            await call(client)
        assert raised.value.field == field
        assert server.requests == []


# -- lifecycle -------------------------------------------------------------------------


async def _empty_lists(request: Request, out: Writer) -> None:
    if request.path.startswith("/token"):
        await out.reply(200, token_answer())
    else:
        await out.reply(200, ENVELOPE)


async def test_a_scan_iterated_twice_is_a_typed_error() -> None:
    async with serving(_empty_lists) as server, server.client(account_id=4242) as client:
        scan = client.dossiers.scan()
        async for _ in scan:
            pass
        with pytest.raises(ea.UsageError, match="iterated once") as raised:
            async for _ in scan:
                pass
        assert isinstance(raised.value, RuntimeError)  # as before, for existing handlers
        assert server.count("/api") > 0


async def test_entering_an_open_client_again_is_refused_and_the_client_stays_open() -> None:
    async with serving() as server, server.client(account_id=4242) as client:
        with pytest.raises(ea.UsageError, match="open already"):
            async with client:
                pass
        await client.dossiers.list()  # the outer block's client is still open
        assert server.count("/api") == 1
