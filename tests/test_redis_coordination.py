"""The Redis coordination's atomic steps, against a real redis-server on loopback.

Times passed to the stores are made up (a fake wall clock): the scripts compute with the
caller's time only, so each result is exact and no test depends on how fast it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any, Literal

import anyio
import pytest
import redis as sync_redis

import eattest_async as ea
from eattest_async._auth import TokenRecord
from eattest_async._coordination import (
    CoordinationError,
    CoordinationWarning,
    LocalCoordinator,
    RedisCoordinator,
    RedisGateStore,
    RedisTokenStore,
    coordination_key,
    coordinator_from_env,
)
from eattest_async._ratelimit import GateStore, LocalGateStore, RateGate

from .redis_server import RedisServer, redis_server
from .test_ratelimit import budget_scenario, deadline_in

__all__ = ["redis_server"]  # the fixture, imported to be used here

pytestmark = pytest.mark.anyio

KEY = coordination_key(ea.Environment.TEST, "api-user@example.test")
NOW = 1_800_000_000.0  # a fake wall-clock time


def record() -> TokenRecord:
    """A token as the token manager shares it (times from now: the test's own)."""
    now = time.time()
    return TokenRecord(
        access="eyJ.secret-access-token.sig",
        refresh="eyJ.secret-refresh-token.sig",
        expires_at=now + 300,
        refresh_expires_at=now + 1800,
        lifetime=300,
        issued_at=now,
    )


Make = Callable[..., RedisCoordinator]


@pytest.fixture
async def make(redis_server: RedisServer) -> AsyncIterator[Make]:
    """Coordinators of the test's Redis (one per simulated process), all closed after."""
    made: list[RedisCoordinator] = []

    def factory(url: str | None = None, **options: Any) -> RedisCoordinator:
        made.append(RedisCoordinator(url or redis_server.url, **options))
        return made[-1]

    yield factory
    for coordinator in made:
        await coordinator.aclose()


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[sync_redis.Redis]:
    """Direct access to the server, to look at what the coordination stored."""
    with sync_redis.Redis.from_url(redis_server.url) as connection:
        yield connection


async def test_the_key_names_environment_and_user_but_never_the_password() -> None:
    other_user = coordination_key(ea.Environment.TEST, "someone-else@example.test")
    other_env = coordination_key(ea.Environment.PROD, "api-user@example.test")
    assert len({KEY, other_user, other_env}) == 3
    assert "api-user" not in KEY


async def test_a_deadline_is_extended_never_shortened_and_seen_by_every_process(
    make: Make,
    redis_server: RedisServer,
) -> None:
    first = make().gate_store(KEY)
    second = make().gate_store(KEY)  # another process
    assert await deadline_in(first) == 0.0
    assert await first.extend_deadline(NOW + 30) == NOW + 30
    assert await second.extend_deadline(NOW + 5) == NOW + 30  # shorter: ignored
    assert await deadline_in(second) == NOW + 30
    assert await second.extend_deadline(NOW + 40) == NOW + 40
    assert await deadline_in(first) == NOW + 40


async def test_concurrent_reservations_get_distinct_slots_spaced_by_the_interval(
    make: Make,
    redis_server: RedisServer,
) -> None:
    coordinators = [make() for _ in range(4)]
    stores = [c.gate_store(KEY) for c in coordinators]
    slots: list[float] = []

    async def reserve(store: RedisGateStore) -> None:
        for _ in range(25):
            slots.append((await store.reserve(now=NOW, interval=0.25, not_before=0.0)).slot)

    async with anyio.create_task_group() as tg:
        for store in stores:
            tg.start_soon(reserve, store)
    slots.sort()
    assert slots[0] == NOW
    gaps = {round(b - a, 6) for a, b in itertools.pairwise(slots)}
    assert gaps == {0.25}  # 100 distinct slots, none closer than the interval
    assert stores[0].peers == 4


async def test_a_reservation_never_precedes_the_shared_deadline_or_not_before(
    make: Make,
    redis_server: RedisServer,
) -> None:
    store = make().gate_store(KEY)
    other = make().gate_store(KEY)
    await other.extend_deadline(NOW + 10)
    assert (await store.reserve(now=NOW, interval=1.0, not_before=0.0)).slot == NOW + 10
    assert (await store.reserve(now=NOW, interval=1.0, not_before=0.0)).slot == NOW + 11
    assert (await store.reserve(now=NOW, interval=1.0, not_before=NOW + 20)).slot == NOW + 20
    assert (await other.reserve(now=NOW + 30, interval=0.0, not_before=0.0)).slot == NOW + 30


async def test_a_slot_past_latest_is_not_kept(make: Make, redis_server: RedisServer) -> None:
    store = make().gate_store(KEY)
    assert (await store.reserve(now=NOW, interval=5.0, not_before=0.0)).slot == NOW
    # The next slot (NOW + 5) is after the caller's deadline: it will not send, nothing kept.
    assert (
        await store.reserve(now=NOW, interval=5.0, not_before=0.0, latest=NOW + 1)
    ).slot == NOW + 5
    assert (await store.reserve(now=NOW, interval=5.0, not_before=0.0)).slot == NOW + 5


async def test_an_emptied_redis_resumes_from_what_the_processes_saw(
    make: Make, redis_server: RedisServer, raw: sync_redis.Redis
) -> None:
    store = make().gate_store(KEY)
    await store.extend_deadline(NOW + 50)
    assert (await store.reserve(now=NOW, interval=1.0, not_before=0.0)).slot == NOW + 50
    raw.flushall()  # what a restart without persistence leaves
    resumed = await store.reserve(now=NOW, interval=1.0, not_before=0.0)
    # The numbering goes on too: answers to reservations made before the flush (reported
    # with their numbers) would otherwise outrank every report of the new ones.
    assert (resumed.slot, resumed.number) == (NOW + 51, 2)
    fresh = make().gate_store(KEY)
    assert await deadline_in(fresh) == NOW + 50  # written back for the others too


async def test_redis_down_warns_once_falls_back_to_a_share_of_the_rate_and_recovers(
    make: Make,
    redis_server: RedisServer,
) -> None:
    coordinator = make(timeout=0.2, retry_every=0.001)
    store = coordinator.gate_store(KEY)
    other = make().gate_store(KEY)
    await other.reserve(now=NOW, interval=1.0, not_before=0.0)
    assert (await store.reserve(now=NOW, interval=1.0, not_before=0.0)).slot == NOW + 1
    assert store.peers == 2
    await store.extend_deadline(NOW + 3)
    sharing = [store.shares_budget]
    redis_server.stop()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Two processes were sharing: alone, this one spaces its requests twice as far.
        first = (await store.reserve(now=NOW, interval=1.0, not_before=0.0)).slot
        second = (await store.reserve(now=NOW, interval=1.0, not_before=0.0)).slot
        assert await store.extend_deadline(NOW + 1) == NOW + 3  # still never shorter
        sharing.append(store.shares_budget)  # not: each gate holds on its own count
    assert (first, second) == (NOW + 3, NOW + 5)
    # One warning per outage, not per call, though each call tried Redis again.
    assert [w.category for w in caught] == [CoordinationWarning]
    assert coordinator.failures == 3
    redis_server.start()  # takes far longer than retry_every: the next call tries Redis
    assert (await store.reserve(now=NOW, interval=1.0, not_before=0.0)).slot == NOW + 7
    sharing.append(store.shares_budget)
    assert sharing == [True, False, True]
    assert (await other.reserve(now=NOW, interval=1.0, not_before=0.0)).slot == NOW + 8


async def test_fail_mode_raises_a_typed_error_at_once(
    make: Make, redis_server: RedisServer
) -> None:
    coordinator = make(on_unavailable="fail", timeout=0.2)
    store = coordinator.gate_store(KEY)
    redis_server.stop()
    with pytest.warns(CoordinationWarning), pytest.raises(CoordinationError):
        await store.reserve(now=NOW, interval=1.0, not_before=0.0)
    with pytest.raises(CoordinationError):  # during the outage: no new attempt, no wait
        await deadline_in(store)
    # An answer already here is never thrown away for Redis: its report is best effort.
    await store.report(number=1, remaining=3, limit=5, sent=NOW, end=NOW + 1)


async def test_an_unreachable_redis_never_hangs_a_call(make: Make) -> None:
    # 192.0.2.0/24 is never routed... but only loopback is allowed here: a port with a
    # listener that never answers is the same class of misbehaviour.
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        coordinator = make(f"redis://127.0.0.1:{port}/0", timeout=0.1)
        store = coordinator.gate_store(KEY)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with anyio.fail_after(5):  # the bound under test is 3 x 0.1 s
                assert (await store.reserve(now=NOW, interval=1.0, not_before=0.0)).slot == NOW
        assert [w.category for w in caught] == [CoordinationWarning]


async def test_the_budget_one_process_reports_holds_the_others(
    make: Make, redis_server: RedisServer
) -> None:
    # The same rule as the in-process store's (one scenario for both), across processes.
    await budget_scenario(make().gate_store(KEY), make().gate_store(KEY), NOW)


async def test_a_huge_remaining_never_breaks_the_shared_budget(
    make: Make, redis_server: RedisServer
) -> None:
    # Redis would write 1e17 back as "1e+17": an int() of it must never fail every process.
    store = make().gate_store(KEY)
    first = await store.reserve(now=NOW, interval=0.0, not_before=0.0)
    await store.report(number=first.number, remaining=10**17, limit=None, sent=NOW, end=NOW + 1)
    assert await store.holds(number=first.number + 5, now=NOW) == (0.0, 0.0)
    assert (await store.reserve(now=NOW, interval=0.0, not_before=0.0)).number == 2


async def test_the_redis_password_never_reaches_a_warning(
    make: Make, redis_server: RedisServer
) -> None:
    redis_server.stop()
    url = f"redis://user:s3cret-pw@127.0.0.1:{redis_server.port}/0"
    coordinator = make(url, timeout=0.2)
    with pytest.warns(CoordinationWarning) as caught:
        await deadline_in(coordinator.gate_store(KEY))
    assert "s3cret-pw" not in str(caught[0].message)
    assert "s3cret-pw" not in repr(coordinator)


def test_bad_settings_are_refused_before_any_connection() -> None:
    with pytest.raises(ea.InvalidInputError):
        RedisCoordinator("http://127.0.0.1:6379")
    with pytest.raises(ea.InvalidInputError):
        RedisCoordinator("redis://127.0.0.1:6379", on_unavailable="ignore")  # type: ignore[arg-type]
    with pytest.raises(ea.InvalidInputError):
        RedisCoordinator("redis://127.0.0.1:6379", timeout=0)
    # What redis-py would only find at the first call, as a ValueError out of a request.
    with pytest.raises(ea.InvalidInputError):
        RedisCoordinator("redis://127.0.0.1:99999/0")
    with pytest.raises(ea.InvalidInputError):
        RedisCoordinator("redis://127.0.0.1:6379/0?socket_timeout=soon")
    with pytest.raises(ea.InvalidInputError):
        RedisCoordinator("redis://127.0.0.1:6379/0?protocol=4")
    # The host forgotten, the password is read as the port: not quoted back.
    with pytest.raises(ea.InvalidInputError) as refused:
        RedisCoordinator("redis://user:s3cret-pw")
    assert "s3cret" not in str(refused.value)
    assert refused.value.__cause__ is None
    assert refused.value.__suppress_context__


# -- the token store -----------------------------------------------------------------------


async def test_one_grant_for_many_processes_under_the_shared_lock(
    make: Make, redis_server: RedisServer, raw: sync_redis.Redis
) -> None:
    stores = [make().token_store(KEY, password="pw") for _ in range(4)]
    grants = 0
    seen: list[str] = []
    shared = record()

    async def get_token(store: RedisTokenStore) -> None:
        nonlocal grants
        async with store.lock():
            token = await store.load()
            if token is None:
                grants += 1
                await anyio.sleep(0.05)  # the grant's round trip, others queue meanwhile
                token = shared
                await store.save(token)
        seen.append(token.access)

    async with anyio.create_task_group() as tg:
        for store in stores:
            for _ in range(3):
                tg.start_soon(get_token, store)
    assert grants == 1
    assert seen == [shared.access] * 12
    # Stored sealed: neither the token nor its parts are readable in Redis.
    values = [raw.get(k) for k in raw.scan_iter()]
    assert values
    assert not any(b"secret-" in v for v in values if isinstance(v, bytes))
    assert raw.keys("*token-lock*") == []  # released
    # Another password cannot read it (and cannot forge one the others would accept).
    stranger = make().token_store(KEY, password="other")
    assert await stranger.load() is None


async def test_a_lock_left_by_a_dead_process_expires_and_waits_are_bounded(
    make: Make, redis_server: RedisServer, raw: sync_redis.Redis
) -> None:
    store = make(lock_ttl=5, lock_wait=0.2).token_store(KEY, password="pw")
    (lock_key,) = [k for k in _key_names(store) if k.endswith("token-lock")]
    raw.set(lock_key, "dead-process", px=60_000)
    with anyio.fail_after(10):
        async with store.lock():  # lock_wait passed: goes on without it, never hangs
            pass
    assert raw.get(lock_key) == b"dead-process"  # not ours: left alone
    raw.set(lock_key, "dead-process", px=100)  # a crashed holder's lock expires
    patient = make(lock_ttl=5, lock_wait=30).token_store(KEY, password="pw")
    with anyio.fail_after(10):
        async with patient.lock():
            assert raw.get(lock_key) != b"dead-process"
    assert raw.get(lock_key) is None


def _key_names(store: object) -> list[str]:
    return [v for v in vars(store).values() if isinstance(v, str) and v.startswith("eattest:")]


async def test_the_gate_stores_follow_the_gate_store_protocol(make: Make) -> None:
    store: GateStore = make().gate_store(KEY)  # checked by mypy
    assert store is not None
    assert LocalCoordinator().gate_store(KEY) is None  # the gate's own, in process


def test_the_cli_and_fastapi_setting_is_one_environment_variable() -> None:
    assert coordinator_from_env({}) is None
    assert coordinator_from_env({"EATTEST_REDIS_URL": " "}) is None
    made = coordinator_from_env({"EATTEST_REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert isinstance(made, RedisCoordinator)
    assert "6379" in repr(made)
    with pytest.raises(ea.InvalidInputError):
        coordinator_from_env({"EATTEST_REDIS_URL": "127.0.0.1:6379"})  # said, and wrong


async def test_a_token_is_shared_whole_and_expires_with_its_refresh_token(
    make: Make, raw: sync_redis.Redis
) -> None:
    store = make().token_store(KEY, password="pw")
    shared = record()
    await store.save(shared)
    assert await make().token_store(KEY, password="pw").load() == shared
    (key,) = [k for k in raw.scan_iter() if b"token" in k]
    assert 1700 < raw.ttl(key) <= 1800  # kept while the refresh token can renew it
    assert "secret" not in repr(shared) + repr(store)


@pytest.mark.parametrize(
    "credentials",
    [("user:s3cret%2Fpw@", ""), ("", "?password=s3cret/pw")],
    ids=["in the userinfo", "in the query"],
)
async def test_a_redis_quoting_the_password_back_is_redacted_and_cut(
    credentials: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """An impostor (or a proxy) in Redis's place answers every command with an error that
    quotes what it was sent (AUTH and its password) at length: the warning says it was
    unavailable, without the password, in a bounded line."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while received := await reader.read(65536):
                echoed = received.decode("latin-1").replace("\r\n", " ")
                writer.write(f"-ERR refused {echoed} {'x' * 30_000}\r\n".encode("latin-1"))
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    userinfo, query = credentials
    coordinator = RedisCoordinator(f"redis://{userinfo}127.0.0.1:{port}/0{query}", timeout=1.0)
    try:
        with pytest.warns(CoordinationWarning) as caught:
            await deadline_in(coordinator.gate_store(KEY))
    finally:
        await coordinator.aclose()
        server.close()
        await server.wait_closed()
    texts = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    texts.append(repr(coordinator))
    assert "refused" in texts[0]  # what Redis said is still there, to debug with
    assert not [text for text in texts if "s3cret" in text.lower()]
    assert max(len(text) for text in texts) < 2_000


# -- a Redis that answers what no Redis would -------------------------------------------------


Answer = Callable[[bytes], "bytes | Iterable[bytes] | None"]
HELLO_3 = b"%3\r\n+server\r\n+redis\r\n+version\r\n+7.2.0\r\n+proto\r\n:3\r\n"


class Impostor:
    """Redis in name only, on loopback: each command (its name, upper case) gets
    ``answer(name)``, bytes or chunks streamed while the client reads them; None: what
    Redis answers the handshake (HELLO, CLIENT), +OK. ``sent`` counts the bytes the client's
    side took."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.sent = 0
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"redis://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/0"

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        for writer in self._connections.values():
            writer.transport.abort()  # a handler waiting to read or write ends on its own
        await asyncio.gather(*self._connections)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        try:
            while line := await reader.readline():
                arguments = []
                for _ in range(int(line[1:])):
                    size = int((await reader.readline())[1:])
                    arguments.append((await reader.readexactly(size + 2))[:-2])
                name = arguments[0].upper()
                reply = self.answer(name)
                if reply is None:
                    reply = HELLO_3 if name == b"HELLO" else b"+OK\r\n"
                for chunk in [reply] if isinstance(reply, bytes) else reply:
                    writer.write(chunk)
                    await writer.drain()
                    self.sent += len(chunk)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client hung up, or the impostor is closing
        writer.close()


async def _slot(coordinator: RedisCoordinator) -> object:
    return (await coordinator.gate_store(KEY).reserve(now=NOW, interval=1.0, not_before=0.0)).slot


async def _holds(coordinator: RedisCoordinator) -> object:
    return await coordinator.gate_store(KEY).holds(number=1, now=NOW)


async def _extended(coordinator: RedisCoordinator) -> object:
    return await coordinator.gate_store(KEY).extend_deadline(NOW + 5)


async def _shared_token(coordinator: RedisCoordinator) -> object:
    return await coordinator.token_store(KEY, password="pw").load()


async def _locked(coordinator: RedisCoordinator) -> object:
    async with coordinator.token_store(KEY, password="pw").lock():
        return "held"


# What each step gives when Redis is away: the process's own view.
ALONE: dict[Callable[[RedisCoordinator], Awaitable[object]], object] = {
    _slot: NOW,
    _holds: (0.0, 0.0),
    _extended: NOW + 5,
    _shared_token: None,
    _locked: "held",
}

MALFORMED = {
    "a number for the reservation": (b"EVALSHA", b":5\r\n", _slot),
    "a short reservation": (b"EVALSHA", b"*1\r\n$1\r\n1\r\n", _slot),
    "a word for the slot": (b"EVALSHA", b"*4\r\n$1\r\nx\r\n:1\r\n:1\r\n:1\r\n", _slot),
    "an infinite slot": (b"EVALSHA", b"*4\r\n$3\r\ninf\r\n:1\r\n:1\r\n:1\r\n", _slot),
    "a fraction for the number": (b"EVALSHA", b"*4\r\n$1\r\n0\r\n:1\r\n$3\r\n1.5\r\n:1\r\n", _slot),
    "an integer of letters": (b"EVALSHA", b":abc\r\n", _slot),  # redis-py: ValueError
    "an array 100k deep": (b"EVALSHA", b"*1\r\n" * 100_000 + b":1\r\n", _slot),
    "a short hash": (b"HMGET", b"*1\r\n$1\r\n1\r\n", _holds),
    "a word for the deadline": (
        b"HMGET",
        b"*4\r\n$3\r\nabc\r\n$1\r\n1\r\n$1\r\n1\r\n$1\r\n1\r\n",
        _holds,
    ),
    "a list for the deadline": (b"EVALSHA", b"*0\r\n", _extended),
    "a number for the token": (b"GET", b":1\r\n", _shared_token),
    "neither OK nor nil for the lock": (b"SET", b"+QUEUED\r\n", _locked),
}


@pytest.mark.parametrize("on_unavailable", ["local", "fail"])
@pytest.mark.parametrize(("command", "reply", "step"), MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_reply_is_redis_unavailable(
    command: bytes,
    reply: bytes,
    step: Callable[[RedisCoordinator], Awaitable[object]],
    on_unavailable: Literal["local", "fail"],
) -> None:
    """Whatever answers in Redis's place, the caller gets what an unreachable Redis gives:
    a warning and the process's own state, or CoordinationError; never a raw Python error."""
    async with Impostor(lambda name: reply if name == command else None) as url:
        coordinator = RedisCoordinator(url, on_unavailable=on_unavailable, lock_wait=0.5)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    outcome = await step(coordinator)
                except CoordinationError:
                    outcome = CoordinationError
        finally:
            await coordinator.aclose()
    assert outcome == (CoordinationError if on_unavailable == "fail" else ALONE[step])
    assert [w.category for w in caught] == [CoordinationWarning]
    assert coordinator.failures == 1


ANNOUNCED = 1 << 30
HUGE = {
    "a 1 GiB token": (b"GET", [b"$%d\r\n" % ANNOUNCED], b"A" * (1 << 20), _shared_token),
    "a 1 GiB slot": (b"EVALSHA", [b"*3\r\n$%d\r\n" % ANNOUNCED], b"1" * (1 << 20), _slot),
    "an endless reservation": (
        b"EVALSHA",
        [b"*2147483647\r\n"],
        b"$65536\r\n" + b"1" * 65536 + b"\r\n",  # items read fast: many bytes in little time
        _slot,
    ),
}


@pytest.mark.parametrize(("command", "head", "chunk", "step"), HUGE.values(), ids=HUGE.keys())
async def test_a_huge_reply_is_refused_unread(
    command: bytes,
    head: list[bytes],
    chunk: bytes,
    step: Callable[[RedisCoordinator], Awaitable[object]],
) -> None:
    """A reply announced far larger than ours is refused from its header: the process
    neither reads it into memory until the timeout nor waits for it."""
    cap = 64 << 20  # what the impostor sends at most (the announced size would exhaust us)

    def answer(name: bytes) -> Iterable[bytes] | None:
        return (
            itertools.chain(head, itertools.repeat(chunk, cap // len(chunk)))
            if name == command
            else None
        )

    impostor = Impostor(answer)
    async with impostor as url:
        coordinator = RedisCoordinator(url, timeout=2.0)  # ample to read all it sends
        try:
            with pytest.warns(CoordinationWarning, match="is unavailable"):
                assert await step(coordinator) == ALONE[step]
        finally:
            await coordinator.aclose()
        # What loopback's buffers took before the client hung up, not what was announced.
        assert impostor.sent < 16 << 20


async def test_waiters_cancelled_in_one_process_delay_no_other(make: Make) -> None:
    """Two processes' gates on one Redis, 1 request/s: ten waiters of the first, cancelled
    while asleep until their slots, give them back; the second process's next request
    takes the first free slot, and so does the first's."""
    now = NOW
    waiting = 0
    all_asleep = anyio.Event()
    forever = True

    def clock() -> float:
        return now

    async def sleep(seconds: float) -> None:
        nonlocal now, waiting
        if forever:  # the waiters: asleep until cancelled
            waiting += 1
            if waiting == 10:
                all_asleep.set()
            await anyio.sleep_forever()
        now += seconds

    def gate(coordinator: RedisCoordinator) -> RateGate:
        store = coordinator.gate_store(KEY)
        return RateGate(clock=clock, wall=clock, sleep=sleep, max_rate=1.0, store=store)

    first, second = gate(make()), gate(make())
    await first.acquire()  # slot NOW: the next is NOW + 1
    await first.release(status=200)
    async with anyio.create_task_group() as tasks:
        for _ in range(10):
            tasks.start_soon(first.acquire)  # slots NOW + 1 to NOW + 10
        await all_asleep.wait()
        tasks.cancel_scope.cancel()
    forever = False
    now = NOW + 0.5
    await second.acquire()
    assert now == NOW + 1
    await first.acquire()  # its own view of the schedule rolled back too
    assert now == NOW + 2


async def _agree_on(seed: int, local: GateStore, remote: GateStore) -> str | None:
    """One random sequence of reservations, give-backs and reports on both stores (the
    Redis one shifted by ``NOW``); the first step where they answer differently."""
    rnd = random.Random(seed)
    t = 0.0
    held: list[tuple[float, float, int]] = []
    for step in range(60):
        t += rnd.choice([0, 0, 0, 0.25, 0.5, 1.0, 2.0])
        op = rnd.random()
        if op < 0.35 and held:
            slot, tat, number = held.pop(rnd.randrange(len(held)))
            await local.give_back(slot, tat, number)
            await remote.give_back(slot + NOW, tat + NOW, number)
        elif op > 0.85:
            # Answers in any order, some from the window before (sent earlier, reporting
            # less or more than the window has left), with or without their answer time.
            number = max(1, (held[-1][2] if held else 1) - rnd.randrange(3))
            remaining = rnd.choice([0, 1, 2, rnd.randrange(10)])
            sent = t - rnd.choice([0.0, 0.0, 0.5, 1.5])
            end = t + rnd.choice([1.0, 3.0, 6.0])
            answered = rnd.choice([None, t])
            for store, shift in ((local, 0.0), (remote, NOW)):
                await store.report(
                    number=number,
                    remaining=remaining,
                    limit=10,
                    sent=sent + shift,
                    end=end + shift,
                    answered=None if answered is None else answered + shift,
                )
        else:
            not_before = t + rnd.choice([0, 0, 0, 1.5, 3.0])
            latest = rnd.choice([None, None, t + 2.0, t + 5.0])
            back = held.pop(rnd.randrange(len(held))) if held and rnd.random() < 0.2 else None
            a = await local.reserve(
                now=t, interval=1.0, not_before=not_before, latest=latest, give_back=back
            )
            b = await remote.reserve(
                now=t + NOW,
                interval=1.0,
                not_before=not_before + NOW,
                latest=None if latest is None else latest + NOW,
                give_back=None if back is None else (back[0] + NOW, back[1] + NOW, back[2]),
            )
            ours, theirs = (
                (round(a.slot, 4), a.number, a.kept),
                (
                    round(b.slot - NOW, 4),
                    b.number,
                    b.kept,
                ),
            )
            if ours != theirs:
                return f"seed {seed}, step {step}: Python {ours}, Lua {theirs}"
            if a.kept:
                held.append((a.slot, a.slot + 1.0, a.number))
    return None


async def test_the_python_store_and_the_lua_script_agree_on_random_sequences(make: Make) -> None:
    # Reservations, give-backs (slots set aside and taken again) and budget reports in any
    # order: the in-process rule and the script are one rule, step by step.
    coordinator = make()
    disagreements = []
    for seed in range(200):
        remote = coordinator.gate_store(f"eattest:agree:{seed}")
        found = await _agree_on(seed, LocalGateStore(), remote)
        if found:
            disagreements.append(found)
    assert disagreements == []
