"""Untyped exceptions, from the caller's side and from a server's: a bad duration, a folder
that cannot be written, an injected session closed by its owner, a hostile file-name
charset. Each is a typed error; the caller's are raised before any request leaves."""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import eattest_async as ea
from eattest_async._downloads import filename_from_disposition
from eattest_async.resources._base import Resource

from .hostile import serving

pytestmark = pytest.mark.anyio

BAD_SECONDS = [math.nan, math.inf, -math.inf, 0, -1, 1e-9, "5", True, [1]]


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


@pytest.mark.parametrize("bad", BAD_SECONDS, ids=repr)
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
