"""Issue 10: no misbehaving server can freeze the client, exhaust its memory or disk, leak a
secret or surface an untyped exception. Each fault comes from a small raw-HTTP server of
``tests/hostile.py`` (or the simulator) over loopback; none mocks our own code."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import logging
import random
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import orjson
import pytest

import eattest_async as ea
from eattest_async.simulator import FaultAction, Simulator

from .conftest import client_for
from .hostile import (
    ACCOUNT_ID,
    ENVELOPE,
    PASSWORD,
    Request,
    Writer,
    access_token,
    default_handler,
    endless,
    gzip_bomb,
    gzip_bomb_blocks,
    jwt,
    serving,
    token_answer,
)

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent


# -- 1. bounded memory ---------------------------------------------------------------------


def test_no_answer_can_exhaust_memory() -> None:
    """An endless body, a 10 GB Content-Length, a 2 GB chunked body, a gzip bomb of 10 GB
    and an endless error body: each a typed error after one request, peak RSS growth
    (VmHWM, in a process of its own) well under 100 MB with the default limits."""
    result = subprocess.run(
        [sys.executable, "-m", "tests.hostile", "memory"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    figures = json.loads(result.stdout.splitlines()[-1])
    print(figures)
    for case in ("endless", "huge-length", "two-gb", "gzip-bomb"):
        assert figures[case]["error"] == "ResponseTooLargeError", figures
        assert figures[case]["requests"] == 1, figures  # an over-size answer is not retried
    assert figures["error-endless"]["error"] == "NotFoundError"  # the status still speaks
    assert figures["peak_rss_growth_mib"] < 100, figures


async def test_token_and_error_bodies_have_smaller_limits() -> None:
    async def handler(request: Request, out: Writer) -> None:
        if request.path.startswith("/token"):
            await out.head(200, {"Content-Type": "application/json"})
            await out.raw(b'{"access_token": "')
            await endless(out, b"a" * 65536, limit=64 * 1024**2)
        else:
            await out.reply(200, ENVELOPE)

    async with serving(handler) as server, server.client() as client:
        with pytest.raises(ea.ResponseTooLargeError, match="limit of 1048576"):
            await client.dossiers.list()
    assert server.count("/token") == 1


async def test_cookies_a_server_invents_are_not_kept() -> None:
    calls = 0

    async def handler(request: Request, out: Writer) -> None:
        nonlocal calls
        calls += 1
        cookies = {f"Set-Cookie{i}": f"c{calls}x{i}=v; Path=/" for i in range(50)}
        data = orjson.dumps(token_answer() if request.path.startswith("/token") else ENVELOPE)
        head = {"Content-Type": "application/json", "Content-Length": str(len(data))}
        await out.head(200, {**head, **cookies})
        await out.raw(data)

    async with serving(handler) as server:
        # A host name: aiohttp's default jar silently refuses cookies of bare IP addresses.
        named = server.url.replace("127.0.0.1", "localhost")
        environment = ea.Environment.custom(base_url=f"{named}/api/v1", token_url=f"{named}/token")
        async with server.client(environment=environment) as client:
            for _ in range(20):
                await client.dossiers.list()
            session = client._transport._session
            assert session is not None
            assert len(session.cookie_jar) == 0
    assert all("Cookie" not in r.headers for r in server.requests)


# -- 2. bounded disk -----------------------------------------------------------------------

FILE = bytes(range(256)) * 400  # 100 KiB


def file_server(mode: str) -> Any:
    async def handler(request: Request, out: Writer) -> None:
        if request.path.startswith("/token"):
            await out.reply(200, token_answer())
            return
        if mode == "endless-chunked":
            await out.head(200, {"Content-Type": "application/pdf", "Transfer-Encoding": "chunked"})
            framed = b"10000\r\n" + b"x" * 65536 + b"\r\n"
            while True:
                await out.raw(framed)
        elif mode == "endless-close":
            await out.head(200, {"Content-Type": "application/pdf"})
            await endless(out)
        elif mode == "gzip":
            data = gzip.compress(FILE)
            await out.head(
                200,
                {
                    "Content-Type": "application/pdf",
                    "Content-Encoding": "gzip",
                    "Content-Length": str(len(data)),
                    "Content-Disposition": 'attachment; filename="a.pdf"',
                },
            )
            await out.raw(data)
        elif mode == "gzip-bomb":
            await out.head(200, {"Content-Type": "application/pdf", "Content-Encoding": "gzip"})
            await gzip_bomb(out)

    return handler


@pytest.mark.parametrize("mode", ["endless-chunked", "endless-close", "gzip-bomb"])
async def test_a_download_stops_writing_past_the_announced_size(mode: str, tmp_path: Path) -> None:
    async with serving(file_server(mode)) as server, server.client() as client:
        with anyio.fail_after(30), pytest.raises(ea.ResponseTooLargeError, match="100000 bytes"):
            await client.files.download(1, 2, 3, dest=tmp_path, expected_size=100_000)
    assert list(tmp_path.iterdir()) == []  # nothing left behind
    assert server.count("/api") == 1  # and not retried


async def test_a_compressed_download_is_compared_on_the_decoded_size(tmp_path: Path) -> None:
    """Content-Length counts the gzip bytes on the wire: the file written is larger."""
    async with serving(file_server("gzip")) as server, server.client() as client:
        path = await client.files.download(1, 2, 3, dest=tmp_path)
        assert path.read_bytes() == FILE
        again = await client.files.download(
            1, 2, 3, dest=tmp_path / "b.pdf", expected_size=len(FILE)
        )
        assert again.read_bytes() == FILE


NOISE = random.Random(7).randbytes(100 * 1024)  # does not compress: a cut shows


def _cut_stream(encoding: str) -> bytes:
    whole = {
        "gzip": gzip.compress(NOISE),
        "deflate": zlib.compress(NOISE),
        "raw deflate": zlib.compress(NOISE)[2:-4],  # without the zlib wrapper, as some send
    }[encoding]
    return whole[: len(whole) // 2]


@pytest.mark.parametrize("framing", ["content-length", "chunked", "close"])
@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw deflate"])
async def test_a_compressed_download_cut_short_is_never_saved_as_a_file(
    encoding: str, framing: str, tmp_path: Path
) -> None:
    """Half a compressed stream, its framing whole (a length that matches, a last chunk, a
    close): a shorter file, as good as any to the framing; only the stream says it is cut."""
    body = _cut_stream(encoding)

    async def handler(request: Request, out: Writer) -> None:
        if request.path.startswith("/token"):
            await out.reply(200, token_answer())
            return
        fields = {"Content-Type": "application/pdf", "Content-Encoding": encoding.split()[-1]}
        if framing == "content-length":
            fields["Content-Length"] = str(len(body))
            await out.head(200, fields)
            await out.raw(body)
        elif framing == "chunked":
            fields["Transfer-Encoding"] = "chunked"
            await out.head(200, fields)
            await out.raw(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        else:
            fields["Connection"] = "close"
            await out.head(200, fields)
            await out.raw(body)
            out.stream.close()

    async with (
        serving(handler) as server,
        server.client(retry=ea.RetryPolicy(attempts=2, initial_backoff=0.01)) as client,
    ):
        with anyio.fail_after(30), pytest.raises(ea.IncompleteResponseError, match="stream"):
            await client.files.download(1, 2, 3, dest=tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert server.count("/api") == 2  # retried, as any cut transfer


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw deflate"])
async def test_a_whole_compressed_download_is_saved_decoded(encoding: str, tmp_path: Path) -> None:
    whole = {
        "gzip": gzip.compress(NOISE[:50_000]) + gzip.compress(NOISE[50_000:]),  # two members
        "deflate": zlib.compress(NOISE),
        "raw deflate": zlib.compress(NOISE)[2:-4],
    }[encoding]

    async def handler(request: Request, out: Writer) -> None:
        if request.path.startswith("/token"):
            await out.reply(200, token_answer())
            return
        fields = {"Content-Type": "application/pdf", "Content-Encoding": encoding.split()[-1]}
        await out.head(200, {**fields, "Content-Length": str(len(whole))})
        for start in range(0, len(whole), 1000):  # in small pieces: a header split too
            await out.raw(whole[start : start + 1000])

    async with serving(handler) as server, server.client() as client:
        path = await client.files.download(1, 2, 3, dest=tmp_path, expected_size=len(NOISE))
    assert path.read_bytes() == NOISE


async def test_a_download_in_an_encoding_we_do_not_decode_is_refused(tmp_path: Path) -> None:
    async def handler(request: Request, out: Writer) -> None:
        if request.path.startswith("/token"):
            await out.reply(200, token_answer())
            return
        await out.head(200, {"Content-Encoding": "br", "Content-Length": "4"})
        await out.raw(b"\x0b\x01\x80\x03")

    async with (
        serving(handler) as server,
        server.client(retry=ea.RetryPolicy.none()) as client,
    ):
        with pytest.raises(ea.UnexpectedResponseError, match="Content-Encoding 'br'"):
            await client.files.download(1, 2, 3, dest=tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mode", ["endless-chunked", "endless-close", "gzip-bomb", "huge-length"])
async def test_a_download_without_an_announced_size_stops_at_the_cap(
    mode: str, tmp_path: Path
) -> None:
    """No expected_size, no usable Content-Length: Limits.max_download_bytes still holds."""

    async def handler(request: Request, out: Writer) -> None:
        if mode == "huge-length" and not request.path.startswith(
            "/token"
        ):  # 10 GB announced: refused before anything is written
            await out.head(200, {"Content-Type": "application/pdf", "Content-Length": str(10**10)})
            await endless(out)
        else:
            await file_server(mode)(request, out)

    limits = ea.Limits(max_download_bytes=1024 * 1024)
    async with serving(handler) as server, server.client(limits=limits) as client:
        with anyio.fail_after(30), pytest.raises(ea.ResponseTooLargeError, match="1048576 bytes"):
            await client.files.download(1, 2, 3, dest=tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert server.count("/api") == 1


@pytest.mark.parametrize("length", [False, True])
async def test_a_gzip_bomb_download_is_stopped_by_its_expansion(
    length: bool, tmp_path: Path
) -> None:
    """Compressed although identity was asked, with or without the (wire) Content-Length:
    the default cap is GiBs, but no file expands a hundredfold; a bomb does (~1000 times)."""
    head, block = gzip_bomb_blocks()
    body = head + block * 199  # 200 MiB of zeros in ~200 KiB

    async def handler(request: Request, out: Writer) -> None:
        if request.path.startswith("/token"):
            await out.reply(200, token_answer())
            return
        fields = {"Content-Type": "application/pdf", "Content-Encoding": "gzip"}
        if length:
            fields["Content-Length"] = str(len(body))
        await out.head(200, fields)
        await out.raw(body)

    async with serving(handler) as server, server.client() as client:
        with anyio.fail_after(30), pytest.raises(ea.ResponseTooLargeError, match="expands"):
            await client.files.download(1, 2, 3, dest=tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("status", "fields", "body"),
    [
        (206, {"Content-Range": "bytes 0-4/1000", "Content-Type": "application/pdf"}, b"%PDF-"),
        (204, {}, b""),
        (202, {"Content-Type": "application/json"}, b'{"messages":{"info":["processing"]}}'),
        (200, {"Content-Type": "text/html; charset=utf-8"}, b"<html>Please log in</html>"),
    ],
    ids=["206", "204", "202", "html"],
)
async def test_only_a_200_that_is_not_a_page_is_saved_as_a_file(
    status: int, fields: dict[str, str], body: bytes, tmp_path: Path
) -> None:
    async def handler(request: Request, out: Writer) -> None:
        if request.path.startswith("/token"):
            await out.reply(200, token_answer())
            return
        await out.head(status, {**fields, "Content-Length": str(len(body))})
        await out.raw(body)

    async with serving(handler) as server, server.client(retry=ea.RetryPolicy.none()) as client:
        with pytest.raises(ea.UnexpectedResponseError, match="unexpected response"):
            await client.files.download(1, 2, 3, dest=tmp_path)
    assert list(tmp_path.iterdir()) == []


# -- 3. bounded time -----------------------------------------------------------------------


async def hang(request: Request, out: Writer) -> None:
    await asyncio.Event().wait()  # accept, read the request, never answer


def dead_token_endpoint() -> Any:
    async def handler(request: Request, out: Writer) -> None:
        if request.path.startswith("/token"):
            await hang(request, out)
        else:
            await out.reply(200, ENVELOPE)

    return handler


async def test_a_dead_token_endpoint_cannot_outlive_the_deadline() -> None:
    policy = ea.RetryPolicy(deadline=1.0, initial_backoff=0.01, max_backoff=0.05)
    async with (
        serving(dead_token_endpoint()) as server,
        server.client(retry=policy, timeouts=ea.Timeouts(token=0.3)) as client,
    ):
        started = anyio.current_time()
        with anyio.fail_after(10), pytest.raises(ea.RequestTimeoutError):
            await client.dossiers.list()
        elapsed = anyio.current_time() - started
    print(f"deadline 1.0 s: ended after {elapsed:.2f} s, {server.count('/token')} token requests")
    # One token request per attempt of the one retry loop; none nested inside it.
    assert server.count("/token") <= policy.attempts


async def test_no_retry_loop_nests_in_another() -> None:
    """A token endpoint failing with 503: one token request per attempt of the call's one
    loop (on d6519c3: 6 attempts x 6 token tries = 36 requests)."""

    async def handler(request: Request, out: Writer) -> None:
        if request.path.startswith("/token"):
            await out.reply(503, {"error": "down"})
        else:
            await out.reply(200, ENVELOPE)

    policy = ea.RetryPolicy(attempts=6, initial_backoff=0.01, max_backoff=0.02)
    async with (
        serving(handler) as server,
        server.client(retry=policy, account_id=ACCOUNT_ID) as client,
    ):
        with pytest.raises(ea.ServerError):
            await client.dossiers.list()
        assert client.stats.retries == {"503": 5}
    assert server.count("/token") == policy.attempts


async def test_discovering_the_account_counts_in_the_first_call_s_deadline() -> None:
    """A slow identity provider (0.8 s) then a slow API (0.4 s): the first call, which
    must discover the account from the token, ends at its 1 s deadline, not after 1.2 s."""

    async def handler(request: Request, out: Writer) -> None:
        await asyncio.sleep(0.8 if request.path.startswith("/token") else 0.4)
        await default_handler(request, out)

    policy = ea.RetryPolicy(deadline=1.0, attempts=1)
    async with serving(handler) as server, server.client(retry=policy) as client:
        with pytest.raises(ea.RequestTimeoutError, match="deadline"):
            await client.dossiers.list()
        await client.dossiers.list()  # the account is known now: 0.4 s fits the deadline
    assert server.count("/token") == 1


async def test_get_account_discovery_ends_at_the_first_call_s_deadline() -> None:
    """No account in the token: the token (0.6 s) and GET /account (0.6 s) together pass
    the 1 s deadline, so the call ends inside the discovery, at its deadline. (On 888cb4c,
    GET /account had a deadline of its own: it completed after 1.2 s, and only then did the
    call notice that its deadline had passed.)"""

    async def handler(request: Request, out: Writer) -> None:
        await asyncio.sleep(0.6)
        if request.path.startswith("/token"):
            await out.reply(200, token_answer(access_token=jwt({"sub": "x"})))
        else:
            await default_handler(request, out)

    policy = ea.RetryPolicy(deadline=1.0, attempts=1)
    async with serving(handler) as server, server.client(retry=policy) as client:
        with pytest.raises(ea.RequestTimeoutError, match="deadline") as caught:
            await client.dossiers.list()
    assert "dossiers" not in str(caught.value)  # cut during the discovery, not after it
    assert server.count("/api/v1/account/") == 0


async def test_ten_calls_on_a_dead_token_endpoint_share_each_renewal() -> None:
    policy = ea.RetryPolicy(deadline=1.5, initial_backoff=0.01, max_backoff=0.05)
    outcomes: list[str] = []
    async with (
        serving(dead_token_endpoint()) as server,
        server.client(retry=policy, timeouts=ea.Timeouts(token=0.3)) as client,
    ):

        async def call() -> None:
            try:
                await client.dossiers.list()
            except ea.EattestError as error:
                outcomes.append(type(error).__name__)

        with anyio.fail_after(15):
            async with anyio.create_task_group() as group:
                for _ in range(10):
                    group.start_soon(call)
    print(f"10 calls: {server.count('/token')} token requests")
    assert outcomes == ["RequestTimeoutError"] * 10
    assert server.count("/token") <= policy.attempts  # today: 216


async def test_a_failed_renewal_is_shared_by_its_waiters() -> None:
    async def handler(request: Request, out: Writer) -> None:
        if request.path.startswith("/token"):
            await out.reply(400, {"error": "invalid_client", "error_description": "no"})
        else:
            await out.reply(200, ENVELOPE)

    errors: list[BaseException] = []
    async with serving(handler) as server, server.client() as client:

        async def call() -> None:
            with pytest.raises(ea.AuthenticationError) as info:
                await client.dossiers.list()
            errors.append(info.value)

        async with anyio.create_task_group() as group:
            for _ in range(10):
                group.start_soon(call)
        await call()  # and a call just after is answered from the same refusal
    assert len(errors) == 11
    assert server.count("/token") == 1


async def test_waiting_for_a_pool_slot_is_not_a_server_timeout() -> None:
    """40 calls over 2 connections to a server answering in 0.1 s, with a 1 s timeout per
    attempt: calls wait up to 2 s for a connection, and none of it is a timeout."""
    async with (
        Simulator(dossiers=50, latency=0.1) as sim,
        client_for(
            sim, limits=ea.Limits(max_connections=2), timeouts=ea.Timeouts(json=1.0)
        ) as client,
    ):
        await client.account.get()
        async with anyio.create_task_group() as group:
            for _ in range(40):
                group.start_soon(client.account.get)
        assert client.stats.retries == {}
        assert sim.stats.requests["get_account"] == 41


# -- 4. Retry-After cannot freeze the client ----------------------------------------------


def retry_after_server(value: str, *, token_too: bool = False) -> Any:
    async def handler(request: Request, out: Writer) -> None:
        if request.path.startswith("/token") and not token_too:
            await out.reply(200, token_answer())
        else:
            await out.reply(429, {"error": "slow down"}, Retry_After=value)

    return handler


async def test_a_retry_after_beyond_the_deadline_ends_the_call_at_once() -> None:
    async with serving(retry_after_server("3600")) as server, server.client() as client:
        with anyio.fail_after(5):
            with pytest.raises(ea.RateLimitError) as first:
                await client.dossiers.list()
            assert first.value.retry_after == 3600
            assert server.count("/api") == 1
            # Later calls do not wait an hour either: they fail fast, sending nothing.
            with pytest.raises(ea.RateLimitError) as later:
                await client.dossiers.list()
            assert (later.value.retry_after or 0) > 3500
        assert server.count("/api") == 1


async def test_later_calls_wait_out_a_retry_after_their_deadline_covers() -> None:
    answered: list[float] = []

    async def handler(request: Request, out: Writer) -> None:
        if request.path.startswith("/token"):
            await out.reply(200, token_answer())
        elif not answered:
            answered.append(request.at)
            await out.reply(429, {}, Retry_After="1")
        else:
            answered.append(request.at)
            await out.reply(200, ENVELOPE)

    async with serving(handler) as server, server.client(retry=ea.RetryPolicy.none()) as client:
        with pytest.raises(ea.RateLimitError):
            await client.dossiers.list()  # no retry allowed: this call ends with the 429
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                for _ in range(5):
                    group.start_soon(client.dossiers.list)  # their deadline covers 1 s
    assert server.count("/api") == 6
    assert all(at - answered[0] >= 1.0 for at in answered[1:])  # nobody before it ends


@pytest.mark.parametrize(
    "value", ["0", "-5", "Wed, 21 Oct 2015 07:28:00 GMT"], ids=["zero", "negative", "past"]
)
async def test_a_retry_after_of_zero_or_past_still_backs_off(value: str) -> None:
    policy = ea.RetryPolicy(attempts=4, initial_backoff=0.05, max_backoff=1.0)
    async with serving(retry_after_server(value)) as server, server.client(retry=policy) as client:
        with pytest.raises(ea.RateLimitError):
            await client.dossiers.list()
    times = [r.at for r in server.requests if r.path.startswith("/api")]
    assert len(times) == policy.attempts
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # sleep() never returns early: each gap is at least half the backoff cap of its turn
    assert all(gap >= 0.5 * 0.05 * 2**n for n, gap in enumerate(gaps)), gaps


async def test_a_429_from_the_token_endpoint_is_honoured() -> None:
    async with (
        serving(retry_after_server("3600", token_too=True)) as server,
        server.client() as client,
    ):
        with anyio.fail_after(5):
            for _ in range(3):
                with pytest.raises(ea.RateLimitError):
                    await client.dossiers.list()
    assert server.count("/token") == 1  # today: 36 token requests in 10 ms
    assert server.count("/api") == 0


async def test_a_short_429_from_the_token_endpoint_is_waited_out() -> None:
    asked: list[float] = []

    async def handler(request: Request, out: Writer) -> None:
        if request.path.startswith("/token"):
            asked.append(request.at)
            if len(asked) == 1:
                await out.reply(429, {"error": "slow down"}, Retry_After="1")
            else:
                await out.reply(200, token_answer())
        else:
            await out.reply(200, ENVELOPE)

    async with serving(handler) as server, server.client() as client:
        await client.dossiers.list()
        assert client.stats.retries == {"429": 1}
    assert len(asked) == 2
    assert asked[1] - asked[0] >= 1.0  # not before the Retry-After
    assert server.count("/api") == 1


# -- 5. redirects never carry secrets across origins --------------------------------------


@pytest.mark.parametrize("status", [307, 308])
async def test_a_token_redirect_to_another_origin_does_not_resend_the_password(
    status: int,
) -> None:
    async with serving() as elsewhere:

        async def handler(request: Request, out: Writer) -> None:
            target = elsewhere.url.replace("127.0.0.1", "localhost") + "/token"
            await out.reply(status, b"", Location=target)

        async with serving(handler) as server, server.client() as client:
            with pytest.raises(ea.RedirectError, match="another origin"):
                await client.dossiers.list()
    assert elsewhere.requests == []
    assert server.count("/token") == 1


@pytest.mark.parametrize(
    "location",
    [
        "http://eattest.invalid/api/v1/x",  # plain http to a non-loopback host
        "http://[::1",  # malformed
        "http://127.0.0.1:99999/x",  # malformed port
        "javascript:alert(1)",  # not http(s)
    ],
)
async def test_unsafe_or_malformed_redirects_are_typed_errors(location: str) -> None:
    async def handler(request: Request, out: Writer) -> None:
        if request.path.startswith("/token"):
            await out.reply(200, token_answer())
        else:
            await out.head(302, {"Location": location, "Content-Length": "0"})

    async with serving(handler) as server, server.client() as client:
        with pytest.raises(ea.RedirectError):
            await client.dossiers.list()
    assert server.count("/api") == 1  # not retried


# -- 6. only typed errors -------------------------------------------------------------------

MALFORMED_TOKENS: dict[str, dict[str, Any]] = {
    "expires_in soon": {"expires_in": "soon"},
    "expires_in object": {"expires_in": {"seconds": 30}},
    "expires_in negative": {"expires_in": -30},
    "expires_in NaN": {"expires_in": "NaN"},
    "refresh_expires_in garbage": {"refresh_expires_in": "never"},
    "refresh_expires_in negative": {"refresh_expires_in": -1},
    "access token with CR/LF": {"access_token": "abc\r\nX-Injected: 1"},
    "access token not ASCII": {"access_token": "tökén"},
    "access token a number": {"access_token": 12345},
    "access token empty": {"access_token": ""},
    "no access token": {"access_token": None},
}


@pytest.mark.parametrize("case", list(MALFORMED_TOKENS))
async def test_malformed_token_answers_are_typed_errors(case: str) -> None:
    answer: dict[str, Any] = token_answer()
    answer.update(MALFORMED_TOKENS[case])
    if answer["access_token"] is None:
        del answer["access_token"]

    async def handler(request: Request, out: Writer) -> None:
        if request.path.startswith("/token"):
            await out.reply(200, answer)
        else:
            await out.reply(200, ENVELOPE)

    async with serving(handler) as server, server.client() as client:
        with pytest.raises((ea.AuthenticationError, ea.UnexpectedResponseError)):
            await client.dossiers.list()
    assert not any(r.path.startswith("/api") for r in server.requests)


UNUSABLE_TOKEN_ANSWERS = {
    "empty object": b"{}",
    "HTML page": b"<html><body>Please sign in</body></html>",
    "a number JSON cannot hold": b'{"access_token": "abc", "expires_in": 1e400}',
    "NaN": b'{"access_token": "abc", "expires_in": NaN}',
    "a list": b'["access_token"]',
}


@pytest.mark.parametrize("case", list(UNUSABLE_TOKEN_ANSWERS))
async def test_a_200_that_is_no_token_costs_one_grant_for_many_calls(case: str) -> None:
    """Each grant is a password sent to the IdP (repeated ones lock accounts): a 200 that
    holds no usable token is a refusal, shared by every call waiting, remembered a while."""

    async def handler(request: Request, out: Writer) -> None:
        if request.path.startswith("/token"):
            await out.reply(200, UNUSABLE_TOKEN_ANSWERS[case])
        else:
            await out.reply(200, ENVELOPE)

    async with serving(handler) as server, server.client() as client:
        outcomes = await asyncio.gather(
            *(client.dossiers.list() for _ in range(20)), return_exceptions=True
        )
        with pytest.raises(ea.AuthenticationError, match="instead of a token") as info:
            await client.dossiers.list()  # later, still within the failure's memory
    assert all(isinstance(outcome, ea.AuthenticationError) for outcome in outcomes)
    assert info.value.error == "invalid_token_response"
    assert server.count("/token") == 1
    assert server.count("/api") == 0


@pytest.mark.parametrize(
    ("claim", "expected"),
    [
        ("²³", ACCOUNT_ID),
        ("9" * 5000, ACCOUNT_ID),
        ({"a": 1}, ACCOUNT_ID),
        ([[1, 2]], ACCOUNT_ID),
        ([True, None, 1.5], ACCOUNT_ID),
        (-7, ACCOUNT_ID),
        ("x;-3;12", 12),
    ],
    ids=["superscripts", "5000 digits", "object", "nested", "odd items", "negative", "mixed"],
)
async def test_odd_account_ids_claims_fall_back_to_get_account(
    claim: object, expected: int
) -> None:
    async def handler(request: Request, out: Writer) -> None:
        if request.path.startswith("/token"):
            await out.reply(200, token_answer(access_token=jwt({"account_ids": claim})))
        elif request.path == "/api/v1/account":
            await out.reply(200, {"content": {"id": ACCOUNT_ID}})
        else:
            await out.reply(200, ENVELOPE)

    async with serving(handler) as server, server.client() as client:
        assert await client.account_id() == expected


@pytest.mark.parametrize("lifetime", [0, 0.0001])
async def test_a_zero_or_tiny_lifetime_does_not_grant_a_token_per_call(lifetime: float) -> None:
    async with serving() as server:
        answer = token_answer(expires_in=lifetime)

        async def handler(request: Request, out: Writer) -> None:
            if request.path.startswith("/token"):
                await out.reply(200, answer)
            else:
                await out.reply(200, ENVELOPE)

        server.handler = handler
        async with server.client(account_id=ACCOUNT_ID) as client:
            for _ in range(20):
                await client.dossiers.list()
    assert server.count("/api") == 20
    assert server.count("/token") <= 2


@pytest.mark.parametrize(
    ("status", "error"), [(400, "invalid_request"), (401, "unauthorized_client"), (400, "")]
)
async def test_a_refused_refresh_falls_back_to_the_password_grant_once(
    status: int, error: str
) -> None:
    grants: list[str] = []

    async def handler(request: Request, out: Writer) -> None:
        if request.path.startswith("/token"):
            grant = request.form["grant_type"]
            grants.append(grant)
            if grant == "refresh_token":
                await out.reply(status, {"error": error} if error else b"")
            else:
                await out.reply(200, token_answer(len(grants)))
        elif request.headers.get("Authorization") == f"Bearer {access_token(1)}":
            await out.reply(401, {"error": "revoked"})
        else:
            await out.reply(200, ENVELOPE)

    async with serving(handler) as server, server.client(account_id=ACCOUNT_ID) as client:
        await client.dossiers.list()
    assert grants == ["password", "refresh_token", "password"]


async def test_a_renewal_that_fails_once_is_retried_not_the_refused_token() -> None:
    """A 401, then the token endpoint fails once (503): the call's next attempt renews
    again instead of sending the refused token back."""
    grants: list[str] = []

    async def handler(request: Request, out: Writer) -> None:
        if request.path.startswith("/token"):
            grants.append(request.form["grant_type"])
            if len(grants) == 2:
                await out.reply(503, {"error": "busy"})
            else:
                await out.reply(200, token_answer(len(grants)))
        elif request.headers.get("Authorization") == f"Bearer {access_token(1)}":
            await out.reply(401, {"error": "revoked"})
        else:
            await out.reply(200, ENVELOPE)

    async with serving(handler) as server, server.client(account_id=ACCOUNT_ID) as client:
        await client.dossiers.list()
        assert client.stats.retries == {"503": 1}
    assert grants == ["password", "refresh_token", "refresh_token"]
    assert server.count("/api") == 2


def test_a_client_used_from_another_event_loop_is_a_clear_error() -> None:
    async def first_loop() -> ea.Client:
        async with aiohttp.ClientSession() as session, serving() as server:
            client = ea.Client(
                server.environment(), username="u", password=PASSWORD, session=session
            )
            await client.__aenter__()
            await client.dossiers.list()
            return client  # still open, but its loop is about to close

    client = asyncio.run(first_loop())

    async def second_loop() -> None:
        with pytest.raises(ea.EventLoopError, match="another event loop"):
            await client.dossiers.list()
        with pytest.raises(ea.EventLoopError):
            await client.account_id()

    asyncio.run(second_loop())


async def test_an_injected_session_raising_for_status_still_gives_typed_errors(
    sim: Simulator,
) -> None:
    async def retrying_middleware(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        for _ in range(5):  # a session that re-sends 5xx by itself, silently
            response = await handler(request)
            if response.status < 500:
                break
        return response

    async with (
        aiohttp.ClientSession(raise_for_status=True, middlewares=(retrying_middleware,)) as session,
        ea.Client(
            sim.environment,
            username=sim.username,
            password=sim.password,
            session=session,
            retry=ea.RetryPolicy(initial_backoff=0.01, max_backoff=0.05),
        ) as client,
    ):
        sim.faults.add(FaultAction(kind="status", status=503, operation="list_dossiers"))
        await client.dossiers.list()  # our retry loop saw the 503 and retried
        assert client.stats.retries == {"503": 1}
        assert sim.stats.requests["list_dossiers"] == 2
        with pytest.raises(ea.NotFoundError):
            await client.dossiers.get(1)


# -- 7. secrets never echoed ---------------------------------------------------------------


async def test_secrets_quoted_back_by_servers_are_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    issued: list[str] = []

    async def handler(request: Request, out: Writer) -> None:
        if request.path.startswith("/token"):
            form = request.form
            if form.get("grant_type") == "refresh_token":
                quoted = f"refresh {form['refresh_token']} refused; password {PASSWORD}"
                await out.reply(400, {"error": "invalid_grant", "error_description": quoted})
            else:
                issued.append(access_token(len(issued) + 1))
                await out.reply(200, token_answer(len(issued)))
            return
        bearer = request.headers.get("Authorization", "")
        echo = f"you sent {bearer} and {PASSWORD}"
        if request.path.endswith("/dossiers/1"):  # a gateway's HTML page
            await out.reply(
                502,
                f"<html>{echo} {json.dumps(PASSWORD)}</html>".encode(),
                WWW_Authenticate=f'Bearer error="{bearer}"',
            )
        elif request.path.endswith("/dossiers/2"):  # Spring-style 401, every time
            await out.reply(401, {"status": 401, "error": echo, "message": echo, "path": echo})
        elif request.path.endswith("/dossiers/3"):  # a 2xx carrying errors
            await out.reply(200, {"messages": {"error": [{"code": "E001", "message": echo}]}})
        else:
            await out.reply(400, {"messages": {"error": [{"code": "E001", "message": echo}]}})

    texts: list[str] = []
    caplog.set_level(logging.DEBUG, logger="eattest_async")
    async with (
        serving(handler) as server,
        server.client(account_id=ACCOUNT_ID, retry=ea.RetryPolicy.none()) as client,
    ):
        for call in (
            client.dossiers.list,
            lambda: client.dossiers.get(1),
            lambda: client.dossiers.get(2),
            lambda: client.dossiers.get(3),
        ):
            with pytest.raises(ea.EattestError) as info:
                await call()
            error = info.value
            texts += [str(error), repr(error), repr(vars(error))]
    texts.append(caplog.text)
    secrets = [PASSWORD, json.dumps(PASSWORD)[1:-1], *issued, "refresh-1-", "refresh-2-"]
    assert len(issued) >= 2  # the 401s did renew, so the refresh token was quoted back too
    leaked = [s for s in secrets for t in texts if s in t]
    assert leaked == [], leaked
    assert sum("[redacted]" in t for t in texts) >= 4


async def test_a_token_endpoint_quoting_the_password_is_redacted() -> None:
    async def handler(request: Request, out: Writer) -> None:
        form = request.form
        description = f"user {form.get('username')} with password {form.get('password')} unknown"
        await out.reply(401, {"error": "invalid_grant", "error_description": description})

    async with serving(handler) as server, server.client() as client:
        with pytest.raises(ea.AuthenticationError) as info:
            await client.dossiers.list()
    assert PASSWORD not in str(info.value)
    assert "[redacted]" in str(info.value)
