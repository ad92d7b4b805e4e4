"""Small misbehaving HTTP servers on 127.0.0.1, written with raw asyncio streams so that
they can lie in every way a real server, proxy or identity provider does: endless bodies,
false Content-Length, gzip bombs, hostile redirects, tokens that are not tokens, secrets
quoted back. Each server records what it received; each test stops what it starts.

``python -m tests.hostile memory`` runs the bounded-memory scenario in a fresh process and
prints its figures as JSON (peak RSS growth is only measurable in a process of its own).
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl

import attrs
import orjson

import eattest_async as ea

USERNAME = "hostile-user"
PASSWORD = "s3cr3t-P@ss/word"
ACCOUNT_ID = 4242


def jwt(claims: dict[str, Any]) -> str:
    """An unsigned JWT-shaped token (the client reads claims, the server verifies)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return f"{b64(b'{}')}.{b64(orjson.dumps(claims))}.sig"


def access_token(n: int = 1) -> str:
    return jwt({"account_ids": [ACCOUNT_ID], "n": n, "pad": "x" * 20})


@attrs.define
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # loop time on arrival

    @property
    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode("latin-1")))


class Writer:
    """What a handler answers with: raw bytes, or the helpers below."""

    def __init__(self, stream: asyncio.StreamWriter) -> None:
        self.stream = stream
        self.sent = 0

    async def raw(self, data: bytes) -> None:
        self.stream.write(data)
        self.sent += len(data)
        await self.stream.drain()

    async def head(self, status: int, headers: dict[str, str] | None = None) -> None:
        lines = [f"HTTP/1.1 {status} X"]
        # "Set-Cookie7": a repeated header, numbered only to fit in a dict
        lines += [f"{k.rstrip('0123456789')}: {v}" for k, v in (headers or {}).items()]
        lines.append("Connection: close")
        await self.raw(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    async def reply(
        self, status: int, body: bytes | dict[str, Any] | list[Any] = b"", **headers: str
    ) -> None:
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        fields = {"Content-Type": "application/json", "Content-Length": str(len(data))}
        fields.update({k.replace("_", "-"): v for k, v in headers.items()})
        await self.head(status, fields)
        await self.raw(data)


Handler = Callable[[Request, Writer], Awaitable[None]]


def token_answer(n: int = 1, **fields: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "access_token": access_token(n),
        "expires_in": 300,
        "refresh_token": f"refresh-{n}-" + "r" * 16,
        "refresh_expires_in": 1800,
        "token_type": "Bearer",
    }
    answer.update(fields)
    return answer


ENVELOPE = {"content": [], "page": 0, "size": 10, "totalElements": 0}


async def default_handler(request: Request, out: Writer) -> None:
    """A well-behaved service: the tests replace the parts that misbehave."""
    if request.path.startswith("/token"):
        await out.reply(200, token_answer())
    elif request.path.startswith("/api/v1/account"):
        await out.reply(200, {"content": {"id": ACCOUNT_ID}})
    else:
        await out.reply(200, ENVELOPE)


class Server:
    """A raw HTTP/1.1 server (one request per connection) around an async handler."""

    def __init__(self, handler: Handler = default_handler) -> None:
        self.handler = handler
        self.requests: list[Request] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self, *, token_url: str | None = None) -> ea.Environment:
        return ea.Environment.custom(
            base_url=f"{self.url}/api/v1", token_url=token_url or f"{self.url}/token"
        )

    def client(self, **options: Any) -> ea.Client:
        options.setdefault("retry", ea.RetryPolicy(initial_backoff=0.01, max_backoff=0.05))
        return ea.Client(
            options.pop("environment", None) or self.environment(),
            username=USERNAME,
            password=PASSWORD,
            **options,
        )

    def count(self, prefix: str) -> int:
        return sum(r.path.startswith(prefix) for r in self.requests)

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, stream: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    key, _, value = line.partition(":")
                    headers[key.strip().title()] = value.strip()
            body = await reader.readexactly(int(headers.get("Content-Length", "0")))
            request = Request(method, target, headers, body, asyncio.get_running_loop().time())
            self.requests.append(request)
            await self.handler(request, Writer(stream))
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass  # stopped by __aexit__: end quietly (this task is not awaited by anyone)
        finally:
            self._tasks.discard(task)
            stream.close()


@asynccontextmanager
async def serving(handler: Handler = default_handler) -> AsyncIterator[Server]:
    async with Server(handler) as server:
        yield server


# -- bodies that never end ------------------------------------------------------------------


async def endless(out: Writer, chunk: bytes = b"x" * 65536, limit: int | None = None) -> None:
    """Send ``chunk`` until the client hangs up (or ``limit`` bytes)."""
    while limit is None or out.sent < limit:
        await out.raw(chunk)


def gzip_bomb_blocks() -> tuple[bytes, bytes]:
    """(head, block): head + block * n is a gzip stream of (n + 1) MiB of zeros, each block
    about a kilobyte on the wire."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    head = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    return head, block


async def gzip_bomb(out: Writer, decoded_limit_mib: int | None = None) -> None:
    head, block = gzip_bomb_blocks()
    await out.raw(head)
    sent = 1
    while decoded_limit_mib is None or sent < decoded_limit_mib:
        await out.raw(block)
        sent += 1


# -- the bounded-memory scenario (run in its own process) -----------------------------------


def _peak_rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM")


# dossier id -> what the server does when asked for it
CASES = {"1": "endless", "2": "huge-length", "3": "two-gb", "4": "gzip-bomb", "5": "error-endless"}


async def memory_scenario() -> dict[str, Any]:
    """Each hostile answer once, against one client; the figures of each and the peak RSS."""

    async def handler(request: Request, out: Writer) -> None:
        case = CASES.get(request.path.split("?")[0].rsplit("/", 1)[-1], "")
        if request.path.startswith("/token"):
            await out.reply(200, token_answer())
        elif case == "endless":  # no Content-Length: read until the server closes
            await out.head(200, {"Content-Type": "application/json"})
            await endless(out)
        elif case == "huge-length":  # 10 GB announced, then sent for real
            await out.head(200, {"Content-Type": "application/json", "Content-Length": str(10**10)})
            await endless(out)
        elif case == "two-gb":  # a 2 GB body, chunked: no length to refuse it by
            await out.head(
                200, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
            )
            chunk = b"x" * 65536
            framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
            while out.sent < 2 * 1024**3:
                await out.raw(framed)
        elif case == "gzip-bomb":  # 10 GB of zeros in ~10 MB of gzip
            await out.head(200, {"Content-Type": "application/json", "Content-Encoding": "gzip"})
            await gzip_bomb(out, decoded_limit_mib=10 * 1024)
        elif case == "error-endless":  # an error answer whose body never ends
            await out.head(404, {"Content-Type": "application/json"})
            await endless(out)
        else:
            await out.reply(200, ENVELOPE)

    figures: dict[str, Any] = {}
    async with serving(handler) as server:
        client = server.client(account_id=ACCOUNT_ID)
        async with client:
            await client.dossiers.list()  # warm up: imports, token, connections
            baseline = _peak_rss_kib()
            for number, case in CASES.items():
                before = len(server.requests)
                try:
                    await client.dossiers.get(int(number))
                    outcome = "success"
                except ea.EattestError as error:
                    outcome = type(error).__name__
                figures[case] = {
                    "error": outcome,
                    "requests": len(server.requests) - before,
                    "peak_mib": round((_peak_rss_kib() - baseline) / 1024, 1),
                }
            figures["peak_rss_growth_mib"] = round((_peak_rss_kib() - baseline) / 1024, 1)
    return figures


def main() -> None:
    if sys.argv[1:] == ["memory"]:
        print(json.dumps(asyncio.run(memory_scenario())))
    else:
        raise SystemExit("usage: python -m tests.hostile memory")


if __name__ == "__main__":
    main()
