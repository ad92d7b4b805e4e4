"""Red-team findings on the core: secrets written back in other spellings, an injected
session's credentials on a cross-origin redirect, an injected session's small pool, folded
or lenient numeric headers, a byte order mark, server texts of any length. Faults come
from the raw loopback servers of ``tests/hostile.py`` (or the simulator); pure parts are
tested as functions."""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import aiohttp
import anyio
import httpx
import pytest
from fastapi import FastAPI

import eattest_async as ea
from eattest_async._auth import _lifetime
from eattest_async._protocol import parse_ratelimit, parse_retry_after
from eattest_async._redact import Redactor
from eattest_async.fastapi import EattestClient, install_error_handlers, lifespan
from eattest_async.simulator import Simulator

from .conftest import client_for
from .hostile import ACCOUNT_ID, ENVELOPE, Request, Server, Writer, serving, token_answer

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0
PASSWORD = "hunter2/sécret pw"  # a slash, a non-ASCII letter and a space: each has escapes


def client(server: Server, **options: Any) -> ea.Client:
    options.setdefault("retry", ea.RetryPolicy.none())
    return ea.Client(server.environment(), username="alice", password=PASSWORD, **options)


# -- 1. secrets written back in another spelling --------------------------------------------

SPELLINGS: dict[str, Callable[[str], str]] = {
    "as it is": lambda s: s,
    "upper case": str.upper,
    "JSON ensure_ascii": lambda s: json.dumps(s)[1:-1],
    "JSON escaped slash": lambda s: json.dumps(s)[1:-1].replace("/", "\\/"),
    "JSON escapes in upper case": lambda s: json.dumps(s)[1:-1].replace("\\u00e9", "\\u00E9"),
    "JSON every letter escaped": lambda s: "".join(f"\\u{ord(c):04x}" for c in s),
    "JSON twice": lambda s: json.dumps(json.dumps(s)[1:-1])[1:-1],
    "percent upper": lambda s: quote(s, safe=""),
    "percent lower": lambda s: quote(s, safe="").lower(),
    "form encoded": lambda s: quote(s, safe="").replace("%20", "+"),
    "percent twice": lambda s: quote(quote(s, safe=""), safe=""),
    "HTML references": lambda s: "".join(f"&#{ord(c)};" for c in s),
}


@pytest.mark.parametrize("spelling", list(SPELLINGS))
def test_the_redactor_finds_a_secret_however_it_is_written(spelling: str) -> None:
    redactor = Redactor(lambda: [PASSWORD])
    text = f"refused: {SPELLINGS[spelling](PASSWORD)}!"
    assert redactor.text(text) == "refused: [redacted]!"
    assert redactor.bytes(text.encode()) == b"refused: [redacted]!"


ODD_SECRETS = [
    "p+ss w%41rd&#9;\\x",  # characters that themselves look like encodings
    "emoji \U0001f600 in it",  # astral: JSON writes a surrogate pair
    "İstanbul ẞtraße",  # letters whose case changes their length
    "x" * 2000,  # as long as a big token
]


@pytest.mark.parametrize("secret", ODD_SECRETS, ids=["encoded-looking", "astral", "case", "long"])
@pytest.mark.parametrize("spelling", list(SPELLINGS))
def test_odd_secrets_are_found_however_they_are_written(secret: str, spelling: str) -> None:
    if spelling == "JSON every letter escaped" and any(ord(c) > 0xFFFF for c in secret):
        written = json.dumps(secret)[1:-1]  # \\u escapes of a surrogate pair, as JSON has it
    elif spelling == "upper case" and secret.upper().lower() != secret.lower():
        written = secret.swapcase() if secret.isascii() else secret  # no case round-trip
    else:
        written = SPELLINGS[spelling](secret)
    redactor = Redactor(lambda: [secret, "unrelated"])
    assert redactor.text(f"<{written}>") == "<[redacted]>"


def test_redaction_keeps_the_text_around_and_every_occurrence() -> None:
    redactor = Redactor(lambda: [PASSWORD, "tok3n"])
    text = f"a {PASSWORD} b {quote(PASSWORD)} c TOK3N d \\u0074ok3n e tok"
    assert redactor.text(text) == "a [redacted] b [redacted] c [redacted] d [redacted] e tok"


def _idp_quoting_password_escaped(request: Request) -> bytes:
    description = json.dumps("bad password: " + PASSWORD).replace("/", "\\/")
    return b'{"error":"invalid_grant","error_description":%s}' % description.encode()


def _idp_echoing_form_lower_case(request: Request) -> bytes:
    return b'{"error":"invalid_grant","error_description":"got ' + request.body.lower() + b'"}'


@pytest.mark.parametrize(
    "answer", [_idp_quoting_password_escaped, _idp_echoing_form_lower_case], ids=["json", "form"]
)
async def test_an_idp_quoting_the_password_in_another_spelling_is_redacted(
    answer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(request: Request, out: Writer) -> None:
        await out.reply(401, answer(request))

    caplog.set_level(logging.DEBUG, logger="eattest_async")
    async with serving(handler) as server, client(server, account_id=ACCOUNT_ID) as opened:
        with pytest.raises(ea.AuthenticationError) as info:
            await opened.dossiers.get(1)
    texts = [str(info.value), repr(info.value), repr(vars(info.value)), caplog.text]
    assert not [t for t in texts if "hunter2" in t.lower()]
    assert "[redacted]" in str(info.value)


async def test_an_api_quoting_the_token_with_an_escaped_letter_is_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sent: list[str] = []

    async def handler(request: Request, out: Writer) -> None:
        if request.path.startswith("/token"):
            await out.reply(200, token_answer())
            return
        sent.append(request.headers["Authorization"].removeprefix("Bearer "))
        quoted = json.dumps(request.headers["Authorization"]).replace("e", "\\u0065")
        body = b'{"messages":{"error":[{"code":"E001","message":%s}]}}' % quoted.encode()
        await out.reply(400, body)

    caplog.set_level(logging.DEBUG, logger="eattest_async")
    async with serving(handler) as server, client(server, account_id=ACCOUNT_ID) as opened:
        with pytest.raises(ea.ParameterError) as info:
            await opened.dossiers.get(1)
    error = info.value
    texts = [str(error), repr(error), repr(vars(error)), caplog.text]
    assert sent
    assert not [t for t in texts if sent[0] in t]
    assert error.messages == ("Bearer [redacted]",)


async def test_a_fastapi_app_never_forwards_upstream_text_to_its_callers() -> None:
    async def handler(request: Request, out: Writer) -> None:
        description = json.dumps("invalid credentials for " + PASSWORD)
        await out.reply(
            401, b'{"error":"invalid_grant","error_description":%s}' % description.encode()
        )

    async with serving(handler) as server:
        app = FastAPI(
            lifespan=lifespan(
                server.environment(),
                username="alice",
                password=PASSWORD,
                account_id=ACCOUNT_ID,
                retry=ea.RetryPolicy.none(),
            )
        )
        install_error_handlers(app)

        @app.get("/supplier")
        async def supplier(client: EattestClient) -> dict[str, Any]:
            await client.dossiers.get(1)
            return {}

        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://app"
            ) as http,
        ):
            response = await http.get("/supplier")
    assert response.status_code == 502
    assert response.json()["error"] == "AuthenticationError"
    assert "invalid credentials" not in response.text  # upstream words stay upstream
    assert "hunter2" not in response.text


# -- 2. an injected session's own credentials on a cross-origin redirect ---------------------

CREDENTIALS = {
    "Authorization header": {"Authorization": "Bearer SESSION-SECRET-123"},
    "Proxy-Authorization header": {"Proxy-Authorization": "Basic SESSION-SECRET"},
    "Cookie header": {"Cookie": "sid=SESSION-SECRET"},
}


@pytest.mark.parametrize("credentials", list(CREDENTIALS))
async def test_an_injected_session_s_credentials_never_reach_another_origin(
    credentials: str,
) -> None:
    async with serving() as elsewhere:

        async def handler(request: Request, out: Writer) -> None:
            target = elsewhere.url.replace("127.0.0.1", "localhost") + "/x"
            await out.reply(302, b"", Location=target)

        async with (
            serving(handler) as server,
            aiohttp.ClientSession(headers=CREDENTIALS[credentials]) as session,
            ea.Client(server.environment(), session=session, account_id=ACCOUNT_ID) as opened,
        ):
            with pytest.raises(ea.RedirectError, match="another origin"):
                await opened.dossiers.get(1)
    assert elsewhere.requests == []
    assert server.count("/api") == 1  # not retried


async def test_an_injected_session_without_credentials_follows_to_another_origin() -> None:
    async with serving() as elsewhere:

        async def handler(request: Request, out: Writer) -> None:
            target = elsewhere.url.replace("127.0.0.1", "localhost") + "/x"
            await out.reply(302, b"", Location=target)

        async with (
            serving(handler) as server,
            aiohttp.ClientSession(headers={"X-Trace": "1"}) as session,
            ea.Client(server.environment(), session=session, account_id=ACCOUNT_ID) as opened,
        ):
            await opened.dossiers.list()
    assert [r.path for r in elsewhere.requests] == ["/x"]


# -- 8. an injected session's pool ------------------------------------------------------------


async def test_waiting_for_an_injected_session_s_connection_is_not_a_server_timeout() -> None:
    """As test_hostile's pool test, but the small pool is the injected session's own
    (``Limits.max_connections`` left at its default): 40 calls over 2 connections to a
    server answering in 0.1 s, 1 s per attempt, and none of the wait is a timeout."""
    async with (
        Simulator(dossiers=50, latency=0.1) as sim,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit_per_host=2)) as session,
        client_for(sim, session=session, timeouts=ea.Timeouts(json=1.0)) as opened,
    ):
        await opened.account.get()
        async with anyio.create_task_group() as group:
            for _ in range(40):
                group.start_soon(opened.account.get)
        assert opened.stats.retries == {}
        assert sim.stats.requests["get_account"] == 41


# -- 17a. numbers in headers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3, 4", 4.0),  # repeated headers folded by a proxy: the most cautious
        ("4,3", 4.0),
        ("soon, 2", 2.0),
        ("1_0", None),  # Python's int() and float() read these; HTTP does not
        ("1e3", None),
        ("inf", None),
        ("\u0663", None),  # an Arabic-Indic digit
        ("Fri, 15 Jan 2027 08:00:30 GMT, 5", 30.0),  # NOW + 30 s
        ("5, Fri, 15 Jan 2027 08:00:30 GMT", 30.0),
        ("Friday, 15-Jan-27 08:00:02 GMT, 1", 2.0),  # RFC 850
        ("Fri Jan 15 08:00:40 2027, 1", 40.0),  # asctime
    ],
)
def test_retry_after_is_plain_digits_or_dates_and_the_longest_of_several(
    value: str, expected: float | None
) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_ratelimit_fields_are_plain_numbers_and_the_most_cautious_of_several() -> None:
    assert parse_ratelimit({"RateLimit-Remaining": "1_0", "RateLimit-Reset": "5"}, NOW) is None
    assert parse_ratelimit({"RateLimit-Remaining": "10", "RateLimit-Reset": "1e3"}, NOW) is None
    folded = parse_ratelimit(
        {"RateLimit-Limit": "50, 20", "RateLimit-Remaining": "9, 3", "RateLimit-Reset": "5, 30"},
        NOW,
    )
    assert folded is not None
    assert (folded.limit, folded.remaining, folded.reset_after) == (20, 3, 30.0)


@pytest.mark.parametrize("value", ["3_00", "3e2", "infinity", "\u0663\u0660\u0660"])
def test_a_token_lifetime_is_plain_digits(value: str) -> None:
    with pytest.raises(ea.AuthenticationError):
        _lifetime(value, "expires_in", default=None)


@pytest.mark.parametrize(
    "headers", [{"Retry-After": "0", "Retry-After2": "3600"}, {"Retry-After": "0, 3600"}]
)
async def test_repeated_retry_after_headers_keep_the_longest(headers: dict[str, str]) -> None:
    async def handler(request: Request, out: Writer) -> None:
        if request.path.startswith("/token"):
            await out.reply(200, token_answer())
        else:
            await out.head(429, {**headers, "Content-Length": "0"})

    async with serving(handler) as server, server.client() as opened:
        with anyio.fail_after(10), pytest.raises(ea.RateLimitError) as info:
            await opened.dossiers.list()
    assert info.value.retry_after == 3600  # beyond the deadline: given up at once
    assert server.count("/api") == 1


# -- 17b. a byte order mark, texts of any length ---------------------------------------------


async def test_a_json_answer_with_a_byte_order_mark_is_read() -> None:
    async def handler(request: Request, out: Writer) -> None:
        if request.path.startswith("/token"):
            await out.reply(200, b"\xef\xbb\xbf" + json.dumps(token_answer()).encode())
        else:
            await out.reply(200, b"\xef\xbb\xbf" + json.dumps(ENVELOPE).encode())

    async with serving(handler) as server, server.client(account_id=ACCOUNT_ID) as opened:
        page = await opened.dossiers.list()
    assert page.total_elements == 0
    assert server.count("/api") == 1


async def test_a_huge_server_text_is_cut_in_errors_and_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    huge = "x" * 60_000
    items = [{"code": "E0" + "1" * 60_000, "message": huge}] * 100

    async def handler(request: Request, out: Writer) -> None:
        if request.path.startswith("/token"):
            await out.reply(200, token_answer())
        elif request.path.endswith("/dossiers/1"):
            await out.reply(400, {"messages": {"error": items}, "message": huge, "path": huge})
        else:
            await out.reply(500, {"message": huge})

    caplog.set_level(logging.DEBUG, logger="eattest_async")
    limits = ea.Limits(max_error_body_bytes=20 * 1024 * 1024)
    policy = ea.RetryPolicy(attempts=2, initial_backoff=0.01, max_backoff=0.02)
    async with (
        serving(handler) as server,
        server.client(account_id=ACCOUNT_ID, limits=limits, retry=policy) as opened,
    ):
        for call in (lambda: opened.dossiers.get(1), opened.dossiers.list):
            with pytest.raises(ea.ApiError) as info:
                await call()
            error = info.value
            assert len(str(error)) < 2_000
            assert len(repr(vars(error))) < 8_000
            assert all(len(text) <= 300 for text in error.messages)
    assert server.count("/api") == 3  # the 500 was retried once: one log line of it
    assert max(len(record.getMessage()) for record in caplog.records) < 2_000


# -- 7. an answer aiohttp cannot parse, quoting the token ------------------------------------


def chain_texts(error: BaseException) -> str:
    """Every text reachable from an error: str, repr, args, notes, attributes, traceback,
    through its causes and contexts."""
    texts: list[str] = []
    seen: set[int] = set()
    stack: list[BaseException | None] = [error]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), repr(current.args)]
        texts.append(repr(getattr(current, "__notes__", None)))
        texts.append(repr(getattr(current, "__dict__", None)))
        texts.append("".join(traceback.format_exception(current)))
        stack += [current.__cause__, current.__context__]
    return "\n".join(texts)


MALFORMED = {
    "status line": "HTTP/1.1 2x0 {token}\r\n\r\n",
    "header": "HTTP/1.1 200 OK\r\nX-Echo: {token}\x01\r\nContent-Length: 2\r\n\r\n{{}}",
    "content length": "HTTP/1.1 200 OK\r\nContent-Length: {token}\r\n\r\n",
    "chunk size": (
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n{token}\r\n"
    ),
}


@pytest.mark.parametrize("malformed", list(MALFORMED))
async def test_an_answer_that_cannot_be_parsed_leaves_no_token_in_the_error_chain(
    malformed: str, caplog: pytest.LogCaptureFixture
) -> None:
    # aiohttp's parser error quotes the server's bytes, and keeps the request it answers,
    # its Authorization header included: none of it may leave with our error.
    sent: list[str] = []

    async def handler(request: Request, out: Writer) -> None:
        if request.path.startswith("/token"):
            await out.reply(200, token_answer())
            return
        sent.append(request.headers["Authorization"])
        await out.raw(MALFORMED[malformed].format(token=request.headers["Authorization"]).encode())

    caplog.set_level(logging.DEBUG, logger="eattest_async")
    async with serving(handler) as server, client(server, account_id=ACCOUNT_ID) as opened:
        with pytest.raises(ea.EattestError) as info:  # TransportError, or a lenient parse
            await opened.dossiers.get(1)
    assert sent
    token = sent[0].removeprefix("Bearer ")
    texts = (chain_texts(info.value) + caplog.text).lower()
    assert not [piece for piece in _pieces(token) if piece in texts]  # nor a part cut short
    assert "GET" in str(info.value)  # still says which call failed


async def test_an_answer_that_cannot_be_parsed_says_why_in_a_bounded_line() -> None:
    async def handler(request: Request, out: Writer) -> None:
        if request.path.startswith("/token"):
            await out.reply(200, token_answer())
            return
        await out.raw(b"HTTP/1.1 2x0 " + b"y" * 5000 + b"\r\n\r\n")

    async with serving(handler) as server, client(server, account_id=ACCOUNT_ID) as opened:
        with pytest.raises(ea.TransportError) as info:
            await opened.dossiers.get(1)
    message = str(info.value)
    assert "status line" in message.lower()
    assert len(message) < 400
    assert info.value.__cause__ is None


def test_scrub_redacts_notes_and_cuts_foreign_errors_from_the_chain() -> None:
    redactor = Redactor(lambda: [PASSWORD])
    try:
        try:
            raise OSError(f"quoting {PASSWORD}")
        except OSError as foreign:
            raise ea.ServerError("upstream", status=502, method="GET", path="/x") from foreign
    except ea.ServerError as caught:
        error = caught
    vars(error)["__notes__"] = [f"while sending {PASSWORD.upper()}"]  # add_note(), 3.11+
    redactor.scrub(error)
    assert error.__cause__ is None
    assert error.__context__ is None
    assert "hunter2" not in chain_texts(error).lower()
    assert vars(error)["__notes__"] == ["while sending [redacted]"]


# -- 8. a token quoted back after renewals pushed it out of the manager's memory -------------


def _pieces(token: str) -> set[str]:
    return {token[i : i + 24].lower() for i in range(0, len(token) - 24, 8)}


async def test_a_token_quoted_back_long_after_it_was_sent_is_still_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    grants: list[str] = []
    renewed = anyio.Event()

    async def handler(request: Request, out: Writer) -> None:
        if request.path.startswith("/token"):
            answer = token_answer(len(grants) + 1)
            grants.append(answer["access_token"])
            if len(grants) >= 8:
                renewed.set()
            await out.reply(200, answer)
        elif request.path.endswith("/dossiers/1"):
            # The slow answer, once several renewals went by, quotes the token it got.
            await renewed.wait()
            token = request.headers["Authorization"]
            await out.reply(404, {"status": 404, "message": f"nothing for {token}"})
        else:
            await out.reply(401, {"error": "invalid_token"})  # each call renews twice

    caplog.set_level(logging.DEBUG, logger="eattest_async")
    async with serving(handler) as server, client(server, account_id=ACCOUNT_ID) as opened:
        slow = asyncio.ensure_future(opened.dossiers.get(1))
        for number in range(2, 6):
            with pytest.raises(ea.UnauthorizedError):
                await opened.dossiers.get(number)
        with pytest.raises(ea.NotFoundError) as info:
            await slow
    assert len(grants) >= 8
    texts = (chain_texts(info.value) + caplog.text).lower()
    assert not [piece for piece in _pieces(grants[0]) if piece in texts]
    assert "[redacted]" in str(info.value)


async def test_tokens_quoted_back_by_401s_to_many_calls_at_once_are_all_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    grants: list[str] = []

    async def handler(request: Request, out: Writer) -> None:
        if request.path.startswith("/token"):
            answer = token_answer(len(grants) + 1)
            grants.append(answer["access_token"])
            await out.reply(200, answer)
            return
        token = request.headers["Authorization"]
        await out.reply(
            401,
            {"error": "invalid_token", "error_description": f"{token} revoked".upper()},
            WWW_Authenticate=f'Bearer error="invalid_token", token="{token}"',
        )

    caplog.set_level(logging.DEBUG, logger="eattest_async")
    async with serving(handler) as server, client(server, account_id=ACCOUNT_ID) as opened:
        outcomes = await asyncio.gather(
            *(opened.dossiers.get(number) for number in range(1, 21)), return_exceptions=True
        )
    assert all(isinstance(outcome, ea.UnauthorizedError) for outcome in outcomes)
    assert len(grants) > 5  # more renewals than the manager remembers tokens
    texts = "\n".join(chain_texts(o) for o in outcomes if isinstance(o, BaseException))
    texts = (texts + caplog.text).lower()
    assert not [p for token in grants for p in _pieces(token) if p in texts]


# -- 17c. server text in a 2xx answer that becomes an error ----------------------------------


async def test_a_failed_process_quoting_the_secrets_raises_them_redacted_and_cut() -> None:
    """A creation process fails with messages that quote the token and the password: its
    DossierCreationError (built from a 2xx answer, outside the core's error path) has them
    redacted, each text cut, and only the first few items."""
    escaped = json.dumps(PASSWORD).replace("/", "\\/")[1:-1]  # as a JSON string quoted in JSON

    async def handler(request: Request, out: Writer) -> None:
        if request.path.startswith("/token"):
            await out.reply(200, token_answer())
            return
        quoted = request.headers["Authorization"]
        errors = [
            {"code": "E101", "message": f"refused {quoted} for {escaped} " + "y" * 5_000},
            # The password across the cut: redacted before cutting, so no head of it is left.
            {"code": "E102", "message": "z" * 290 + escaped},
            {"code": f"E1 {escaped}", "message": "the code quotes it"},
        ] * 20
        content = {"processId": "77", "isComplete": True, "isSuccessful": False}
        await out.reply(200, {"content": {**content, "errors": errors}})

    async with serving(handler) as server, client(server, account_id=ACCOUNT_ID) as opened:
        with pytest.raises(ea.DossierCreationError) as info:
            await opened.processes.wait("77", timeout=5)
    error = info.value
    texts = [str(error), repr(error), repr(vars(error)), *error.messages, *error.codes]
    token = token_answer()["access_token"]
    assert not [t for t in texts if token in t or "hunter2" in t.lower() or "\\/s" in t]
    assert error.codes[:2] == ("E101", "E102")  # what a caller acts on is kept
    assert "[redacted]" in error.messages[0]
    assert all(len(text) <= 300 for text in error.messages)
    assert all(len(code) <= 32 for code in error.codes)
    assert len(error.messages) <= 12
    assert len(str(error)) < 2_000


async def test_unreadable_values_are_logged_by_kind_never_by_their_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Typed fields quoting the token and the password, or megabytes long: each is read as
    None, and the debug log says which field and what kind of value, never the value."""
    huge = "9" * 3 * 1024 * 1024 + "x"  # not a number, and 3 MB

    def dossier(number: int, token: str) -> dict[str, Any]:
        return {
            "dossierId": number,
            "creationDate": f"token {token}",
            "stateLastChangeDate": "z" * 1024 * 1024 + PASSWORD,
            "accountId": f"pw {PASSWORD}",
            "thirdpartyId": huge,
            "isMonitored": [token] * 3,
        }

    async def handler(request: Request, out: Writer) -> None:
        if request.path.startswith("/token"):
            await out.reply(200, token_answer())
            return
        token = request.headers["Authorization"].removeprefix("Bearer ")
        if request.path.endswith("/dossiers/1"):
            await out.reply(200, {"content": dossier(1, token)})
        else:
            items = [dossier(n, token) for n in (2, 3)]
            await out.reply(200, {"content": items, "page": 0, "size": 10, "totalElements": 2})

    caplog.set_level(logging.DEBUG, logger="eattest_async")
    limits = ea.Limits(max_body_bytes=64 * 1024 * 1024)
    async with (
        serving(handler) as server,
        client(server, account_id=ACCOUNT_ID, limits=limits) as opened,
    ):
        got = await opened.dossiers.get(1)
        scanned = [item async for item in opened.dossiers.scan(page_size=10)]
    assert (got.dossier_id, got.creation_date, got.account_id, got.thirdparty_id) == (
        1,
        None,
        None,
        None,
    )
    assert [d.dossier_id for d in scanned] == [2, 3]
    lines = [record.getMessage() for record in caplog.records]
    token = token_answer()["access_token"]
    assert not [line for line in lines if token in line or "hunter2" in line.lower()]
    assert max(len(line) for line in lines) < 2_000
    unreadable = [line for line in lines if "unreadable" in line]
    assert len(unreadable) == 3 * 5  # every field of every dossier, named
    assert any("Dossier.thirdparty_id" in line and "3145729 chars" in line for line in unreadable)
