"""Network-free unit tests of the pure parts of the pipeline: the retry loop and the token
manager with a fake clock, the core with a fake transport (the behaviour promises are
proven over real loopback HTTP in test_hostile.py)."""

from __future__ import annotations

import ast
import contextlib
import random
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

import eattest_async as ea
from eattest_async._auth import MIN_LIFETIME, Secret, TokenManager, TokenRecord
from eattest_async._core import ClientStats, Core
from eattest_async._protocol import ApiRequest
from eattest_async._ratelimit import RateGate
from eattest_async._retry import retrying
from eattest_async._transport import Response

from .hostile import access_token, token_answer

pytestmark = pytest.mark.anyio


class FakeClock:
    """Time that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def server_error(status: int = 502, retry_after: float | None = None) -> ea.ApiError:
    cls = ea.RateLimitError if status == 429 else ea.ServerError
    return cls(f"HTTP {status}", status=status, retry_after=retry_after)


async def run(
    error: ea.EattestError, policy: ea.RetryPolicy, clock: FakeClock
) -> tuple[int, BaseException]:
    attempts = 0

    async def attempt(deadline: float) -> None:
        nonlocal attempts
        attempts += 1
        clock.now += 0.5  # each attempt takes half a second
        raise error

    with pytest.raises(ea.EattestError) as info:
        await retrying(
            attempt,
            policy=policy,
            may_repeat=True,
            clock=clock,
            sleep=clock.sleep,
            rng=random.Random(7),
        )
    return attempts, info.value


async def test_the_retry_loop_never_passes_the_deadline() -> None:
    clock = FakeClock()
    started = clock.now
    policy = ea.RetryPolicy(attempts=1000, initial_backoff=1, max_backoff=4, deadline=30)
    attempts, error = await run(server_error(), policy, clock)
    assert clock.now - started <= 30
    assert 5 < attempts < 1000
    assert isinstance(error, ea.ServerError)


@pytest.mark.parametrize("retry_after", [0.0, None])
async def test_a_retry_after_of_zero_still_backs_off(retry_after: float | None) -> None:
    clock = FakeClock()
    policy = ea.RetryPolicy(attempts=5, initial_backoff=0.1, max_backoff=10)
    attempts, _ = await run(server_error(429, retry_after), policy, clock)
    assert attempts == 5
    assert len(clock.sleeps) == 4
    if retry_after is not None:  # "come back now": never at once
        assert all(s >= 0.05 * 2**n for n, s in enumerate(clock.sleeps)), clock.sleeps


async def test_a_retry_after_beyond_the_deadline_ends_the_call_at_once() -> None:
    clock = FakeClock()
    policy = ea.RetryPolicy(deadline=60, max_retry_after=3600)
    attempts, error = await run(server_error(429, 120.0), policy, clock)
    assert (attempts, clock.sleeps) == (1, [])
    assert isinstance(error, ea.RateLimitError)
    assert error.retry_after == 120.0


async def test_an_over_size_answer_is_not_retried() -> None:
    clock = FakeClock()
    too_large = ea.ResponseTooLargeError("too large", status=200)
    attempts, _ = await run(too_large, ea.RetryPolicy(), clock)
    assert attempts == 1


async def test_the_gate_fails_fast_when_the_deadline_cannot_be_met() -> None:
    clock = FakeClock()
    gate = RateGate(clock=clock)
    await gate.acquire()
    await gate.release(status=429, retry_after=300.0)
    with pytest.raises(ea.RateLimitError) as info:
        await gate.acquire(deadline=clock.now + 60)
    assert info.value.retry_after == pytest.approx(300.0)


# -- the token manager -------------------------------------------------------------------


class FormSender:
    def __init__(self, *answers: tuple[int, dict[str, Any]] | BaseException) -> None:
        self.answers = list(answers)
        self.forms: list[dict[str, str]] = []
        self.release = anyio.Event()

    async def __call__(self, form: Mapping[str, str], *, deadline: float) -> tuple[int, bytes]:
        self.forms.append(dict(form))
        await self.release.wait()
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        status, body = answer
        return status, orjson.dumps(body)


def manager(send: FormSender, clock: FakeClock, **options: Any) -> TokenManager:
    return TokenManager(
        send_form=send,
        username="u",
        password=Secret("password"),
        client_id="c",
        clock=clock,
        wall=lambda: clock.now + 1_700_000_000,
        **options,
    )


async def test_a_failed_renewal_is_shared_with_its_waiters_not_rerun() -> None:
    clock = FakeClock()
    failure = server_error(503)
    send = FormSender(failure)
    tokens = manager(send, clock)
    errors: list[BaseException] = []

    async def get() -> None:
        try:
            await tokens.get(deadline=clock.now + 60)
        except ea.EattestError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as group:
        for _ in range(10):
            group.start_soon(get)
        await anyio.wait_all_tasks_blocked()
        send.release.set()
    assert len(send.forms) == 1
    assert errors == [failure] * 10
    # The next attempt (a new generation) does ask again.
    send.answers = [(200, token_answer())]
    assert (await tokens.get(deadline=clock.now + 60)).access == Secret(access_token())
    assert len(send.forms) == 2


async def test_a_tiny_lifetime_is_raised_to_the_floor() -> None:
    clock = FakeClock()
    send = FormSender((200, token_answer(expires_in=0.001)))
    send.release.set()
    tokens = manager(send, clock)
    token = await tokens.get(deadline=clock.now + 60)
    assert token.lifetime == MIN_LIFETIME
    for _ in range(100):
        await tokens.get(deadline=clock.now + 60)
        clock.now += MIN_LIFETIME / 1000
    assert len(send.forms) == 1


class MemoryStore:
    """The TokenStore hook, in memory (Redis in _coordination)."""

    def __init__(self) -> None:
        self.record: TokenRecord | None = None
        self.lock_ = anyio.Lock()
        self.saves = 0

    async def load(self) -> TokenRecord | None:
        return self.record

    async def save(self, record: TokenRecord) -> None:
        self.record = record
        self.saves += 1

    @contextlib.asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        async with self.lock_:
            yield

    def lock(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self._locked()


async def test_managers_sharing_a_store_grant_once_and_renew_a_refused_token_once() -> None:
    clock = FakeClock()
    store = MemoryStore()
    send = FormSender((200, token_answer(1)), (200, token_answer(2)))
    send.release.set()
    first, second = manager(send, clock, store=store), manager(send, clock, store=store)
    a = await first.get(deadline=clock.now + 60)
    b = await second.get(deadline=clock.now + 60)
    assert a.access == b.access  # the second adopted the first's token
    assert (len(send.forms), store.saves) == (1, 1)
    assert "password" not in repr(store.record)
    # A 401 in one process: it renews (by the refresh grant) and shares the new token...
    renewed = await first.replace(a, deadline=clock.now + 60)
    assert send.forms[-1]["grant_type"] == "refresh_token"
    # ...which the other adopts on its own 401 instead of granting again.
    assert (await second.replace(b, deadline=clock.now + 60)).access == renewed.access
    assert (len(send.forms), store.saves) == (2, 2)


# -- the core, over a fake transport ------------------------------------------------------


class FakeResponse:
    def __init__(self, status: int, headers: dict[str, str], body: bytes, chunk: int) -> None:
        self.status = status
        self.headers = headers
        self._body = body
        self._chunk = chunk
        self.read = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self._body), self._chunk):
            piece = self._body[start : start + self._chunk]
            self.read += len(piece)
            yield piece

    @property
    def raw_bytes(self) -> int:
        return self.read


class FakeTransport:
    """Answers from a script of (status, headers, body), and records what was sent."""

    def __init__(self, *answers: tuple[int, dict[str, str], bytes]) -> None:
        self.answers = list(answers)
        self.sent: list[tuple[str, str]] = []
        self.responses: list[FakeResponse] = []
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        self._closed = True

    @contextlib.asynccontextmanager
    async def stream(self, method: str, url: str, **options: Any) -> AsyncIterator[Response]:
        self.sent.append((method, url))
        status, headers, body = self.answers.pop(0)
        response = FakeResponse(status, headers, body, chunk=64 * 1024)
        self.responses.append(response)
        yield response


def fake_core(transport: FakeTransport, **options: Any) -> Core:
    environment = ea.Environment.custom(
        base_url="http://127.0.0.1:1/api/v1", token_url="http://127.0.0.1:1/token"
    )
    core = Core(
        environment=environment,
        transport=transport,
        timeouts=ea.Timeouts(),
        retry=ea.RetryPolicy(initial_backoff=0.001, max_backoff=0.002),
        limits=options.pop("limits", ea.Limits()),
        stats=ClientStats(),
        account_id=1,
    )
    core.tokens = TokenManager(
        send_form=core.send_token_form, username="u", password=Secret("pw-1234"), client_id="c"
    )
    return core


TOKEN: tuple[int, dict[str, str], bytes] = (200, {}, orjson.dumps(token_answer()))
REQUEST = ApiRequest(method="GET", path="/account/1/dossiers", operation="list")


async def test_the_token_grant_is_an_attempt_of_the_call_that_needs_it() -> None:
    transport = FakeTransport((503, {}, b"{}"), TOKEN, (200, {}, b'{"content": [], "page": 0}'))
    core = fake_core(transport)
    await core.open()
    envelope = await core.call(REQUEST)
    assert envelope.content == []
    assert [url.rsplit("/", 1)[-1] for _, url in transport.sent] == ["token", "token", "dossiers"]
    assert core.stats.retries == {"503": 1}  # one loop saw the token's 503 and retried


async def test_a_body_over_the_limit_is_refused_unread_or_cut_short() -> None:
    limits = ea.Limits(max_body_bytes=100_000)
    big = b"[" + b"1," * 200_000 + b"1]"
    transport = FakeTransport(
        TOKEN,
        (200, {"Content-Length": str(len(big))}, big),  # announced: refused before reading
        (200, {}, big),  # not announced: cut at the limit
    )
    core = fake_core(transport, limits=limits)
    await core.open()
    for _ in range(2):
        with pytest.raises(ea.ResponseTooLargeError):
            await core.call(REQUEST)
    assert [r.read for r in transport.responses[1:]] == [0, 2 * 64 * 1024]
    assert len(transport.sent) == 3  # never retried


# -- the import structure ------------------------------------------------------------------


def runtime_imports(path: Path) -> set[str]:
    """Modules a file imports when it runs (``if TYPE_CHECKING:`` blocks left out)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for branch in node.orelse:
                visit(branch)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for inner in ast.iter_child_nodes(node):
            visit(inner)

    visit(tree)
    return found


def test_aiohttp_only_in_the_transport_and_no_circle_through_the_client() -> None:
    package = Path(ea.__file__).parent
    for path in package.rglob("*.py"):
        name = path.relative_to(package).as_posix()
        imports = runtime_imports(path)
        if not (name == "_transport.py" or name.startswith("simulator/")):
            assert not any(i == "aiohttp" or i.startswith("aiohttp.") for i in imports), name
        # Only the entry points hold a Client; the pipeline and resources never reach back.
        if name not in ("__init__.py", "cli.py", "fastapi.py"):
            assert not any(i.endswith("_client") for i in imports), name
