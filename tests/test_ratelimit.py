"""The rate gate: pure pacing logic on a virtual clock, plus one loopback scan.

The virtual-time rig runs many tasks against a fixed-window server model (the simulator's
rules: the first request after a window ended opens the next one; past ``limit``, 429 with
``Retry-After`` rounded up to whole seconds) with no real waiting at all.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import eattest_async as ea
from eattest_async._protocol import RateLimitInfo, parse_ratelimit
from eattest_async._ratelimit import GateStore, LocalGateStore, RateGate, Reservation
from eattest_async.simulator import Simulator, SimulatorProcess

from .conftest import client_for

pytestmark = pytest.mark.anyio


async def _all_tasks_blocked() -> None:
    """anyio.wait_all_tasks_blocked, without its real 0.1 s sleep whenever a task is ready
    to run (a task woken by an Event, not yet resumed): here, pass the turn until none is."""
    await anyio.lowlevel.checkpoint()
    this = asyncio.current_task()
    while any(
        task is not this and (task._fut_waiter is None or task._fut_waiter.done())  # type: ignore[attr-defined]
        for task in asyncio.all_tasks()
    ):
        await anyio.lowlevel.checkpoint()


class VirtualTime:
    """A clock that jumps to the next sleeper's wake-up once every task is blocked."""

    def __init__(self) -> None:
        self.now = 1_000_000_000.0  # wall-clock-like, so the gate's wall and clock agree
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._order = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        event = anyio.Event()
        heapq.heappush(self._sleepers, (self.now + max(seconds, 0.0), next(self._order), event))
        await event.wait()

    async def run(self, main: Callable[[], Awaitable[None]]) -> None:
        finished = anyio.Event()

        async def wrapped() -> None:
            await main()
            finished.set()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(wrapped)
            idle = 0
            while not finished.is_set():
                await _all_tasks_blocked()
                if not self._sleepers:  # tasks ending, or waiting for nothing that comes
                    idle += 1
                    assert idle < 100, "every task waits for something that never comes"
                    await anyio.lowlevel.checkpoint()
                    continue
                idle = 0
                when, _, event = heapq.heappop(self._sleepers)
                self.now = max(self.now, when)
                event.set()

    def gate(self, **options: object) -> RateGate:
        return RateGate(clock=self.clock, wall=self.clock, sleep=self.sleep, **options)  # type: ignore[arg-type]


class WindowServer:
    """Fixed windows opened by the first request, ``limit`` per ``window`` seconds."""

    def __init__(self, limit: int, window: float = 1.0, *, headers: bool = True) -> None:
        self.limit, self.window, self.headers = limit, window, headers
        self.started: float | None = None
        self.count = 0
        self.deadlines: list[tuple[float, float]] = []  # (answered at, deadline) of 429s
        self.responses_429 = 0
        self.early = 0
        self.served: list[float] = []  # arrival times of the requests served

    def handle(
        self, arrival: float, sent: float, back: float
    ) -> tuple[int, float | None, RateLimitInfo | None]:
        """The answer to a request sent at ``sent`` that arrived at ``arrival``; it reaches
        the client ``back`` seconds later (when a 429's deadline becomes known)."""
        if any(known < sent and arrival < until for known, until in self.deadlines):
            self.early += 1  # sent after a 429's deadline was known, before it
        if self.started is None or arrival >= self.started + self.window:
            self.started, self.count = arrival, 0
        end = self.started + self.window
        reset = float(max(0, math.ceil(end - arrival)))
        if self.count >= self.limit:
            wait = max(1, math.ceil(end - arrival))
            self.deadlines.append((arrival + back, arrival + wait))
            self.responses_429 += 1
            info = RateLimitInfo(limit=self.limit, remaining=0, reset_after=reset)
            return 429, float(wait), info if self.headers else None
        self.count += 1
        self.served.append(arrival)
        info = RateLimitInfo(limit=self.limit, remaining=self.limit - self.count, reset_after=reset)
        return 200, None, info if self.headers else None


class OverAnnouncingServer(WindowServer):
    """Refuses past ``limit`` per window but announces ``announced`` (a proxy's stricter
    limit in front of the API, a count off by one, other clients of the account)."""

    def __init__(self, limit: int, announced: int) -> None:
        super().__init__(limit)
        self.announced = announced

    def handle(
        self, arrival: float, sent: float, back: float
    ) -> tuple[int, float | None, RateLimitInfo | None]:
        status, retry_after, info = super().handle(arrival, sent, back)
        if info is not None:
            left = max(0, self.announced - self.count)
            info = RateLimitInfo(limit=self.announced, remaining=left, reset_after=info.reset_after)
        return status, retry_after, info


class TokenBucketServer:
    """A token bucket: ``burst`` tokens, refilled at ``rate`` per second, one per request;
    without a whole token, 429 with ``Retry-After`` (whole seconds, rounded up) until there
    is one. No RateLimit headers. Its first 429 comes after ``burst + rate * t`` requests in
    ``t`` seconds, which fixed windows replayed read as far fewer than ``rate`` per second."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.last: float | None = None
        self.deadlines: list[tuple[float, float]] = []
        self.responses_429 = 0
        self.early = 0
        self.served: list[float] = []

    def handle(
        self, arrival: float, sent: float, back: float
    ) -> tuple[int, float | None, RateLimitInfo | None]:
        if any(known < sent and arrival < until for known, until in self.deadlines):
            self.early += 1
        if self.last is not None:
            self.tokens = min(self.burst, self.tokens + (arrival - self.last) * self.rate)
        self.last = arrival
        if self.tokens < 1:
            wait = max(1, math.ceil((1 - self.tokens) / self.rate))
            self.deadlines.append((arrival + back, arrival + wait))
            self.responses_429 += 1
            return 429, float(wait), None
        self.tokens -= 1
        self.served.append(arrival)
        return 200, None, None


class SharedStore:
    """A store that is not in-process (as Redis is): state on wall-clock seconds."""

    def __init__(self) -> None:
        self.inner = LocalGateStore()

    async def reserve(
        self,
        *,
        now: float,
        interval: float,
        not_before: float,
        latest: float | None = None,
        give_back: tuple[float, float, int] | None = None,
    ) -> Reservation:
        return await self.inner.reserve(
            now=now, interval=interval, not_before=not_before, latest=latest, give_back=give_back
        )

    async def give_back(self, slot: float, tat: float, number: int) -> None:
        await self.inner.give_back(slot, tat, number)

    async def report(
        self,
        *,
        number: int,
        remaining: int,
        limit: int | None,
        sent: float,
        end: float,
        answered: float | None = None,
    ) -> None:
        await self.inner.report(
            number=number, remaining=remaining, limit=limit, sent=sent, end=end, answered=answered
        )

    async def holds(self, *, number: int, now: float) -> tuple[float, float]:
        return await self.inner.holds(number=number, now=now)

    shares_budget = True

    async def extend_deadline(self, until: float) -> float:
        return await self.inner.extend_deadline(until)


async def drive(
    vt: VirtualTime,
    gate: RateGate | Sequence[RateGate],
    server: WindowServer | TokenBucketServer,
    *,
    total: int,
    workers: int = 16,
    latency: float = 0.02,
    jitter: random.Random | None = None,
) -> tuple[list[float], float]:
    """``workers`` tasks (per gate, when several: one process each) send until ``total``
    requests were served. With ``jitter``, each request's round trip is drawn between half
    and twice ``latency``, its way to the server any share of it (arrivals reorder).

    Returns the send times and the time the ``total``-th answer came.
    """
    gates = [gate] if isinstance(gate, RateGate) else list(gate)
    sent_times: list[float] = []
    served = 0
    finished = 0.0

    async def worker(gate: RateGate) -> None:
        nonlocal served, finished
        while served < total:
            await gate.acquire()
            sent = vt.now
            sent_times.append(sent)
            there = back = latency / 2
            if jitter is not None:
                trip = jitter.uniform(latency / 2, latency * 2)
                there = jitter.uniform(0.0, trip)
                back = trip - there
            await vt.sleep(there)
            status, retry_after, info = server.handle(vt.now, sent, back)
            await vt.sleep(back)
            await gate.release(status=status, retry_after=retry_after, info=info)
            if status == 200:
                served += 1
                if served == total:
                    finished = vt.now

    async def main() -> None:
        async with anyio.create_task_group() as tasks:
            for gate in gates:
                for _ in range(workers):
                    tasks.start_soon(worker, gate)

    await vt.run(main)
    return sent_times, finished


@pytest.mark.parametrize("limit", [20, 60, 200])
async def test_paces_evenly_under_announced_limit(limit: int) -> None:
    vt = VirtualTime()
    gate = vt.gate()
    server = WindowServer(limit)
    started = vt.now
    sends, finished = await drive(vt, gate, server, total=10 * limit)
    elapsed = finished - started
    assert server.responses_429 == 0
    assert server.early == 0
    gaps = [b - a for a, b in itertools.pairwise(sorted(sends)[1:])]
    # After the first answer (which tells the budget), no two requests leave closer than
    # the announced rate allows: no burst, ever.
    assert min(gaps) >= 0.999 / limit
    assert 10 * limit / elapsed >= 0.95 * limit  # and the budget is used
    snapshot = gate.snapshot()
    assert snapshot.limit == limit
    assert snapshot.limit_source == "announced"
    assert snapshot.requests == len(sends)
    assert snapshot.responses_429 == 0


@pytest.mark.parametrize(("limit", "seed"), [(20, 0), (60, 1), (200, 2)])
async def test_paces_at_an_announced_limit_through_arrival_jitter(limit: int, seed: int) -> None:
    """Round trips of 10 to 40 ms, arrivals reordered: an answer can report a little more
    left than the last one (sent later, arrived earlier), or come from the window before
    (sent later than the request that showed the new one, arrived before it). Neither is a
    new window, nor this window's budget spent: taken as such, the gate held requests for
    the rest of the window (0.57-0.65 of the limit at 60 and 200/s)."""
    vt = VirtualTime()
    gate = vt.gate()
    server = WindowServer(limit)
    started = vt.now
    _, finished = await drive(vt, gate, server, total=10 * limit, jitter=random.Random(seed))
    assert server.responses_429 == 0
    assert server.early == 0
    assert 10 * limit / (finished - started) >= 0.95 * limit


@pytest.mark.parametrize("announced", [61, 120])
async def test_a_limit_stricter_than_announced_is_learned_not_hit_every_window(
    announced: int,
) -> None:
    """Headers that announce more than the server allows (60 per window): pacing by them
    met a 429 every window (72 in 30 windows for 120 announced), the pattern that gets an
    IP banned. Refused with room left, the gate learns the limit from the 429s; refused
    with a request or two left, it stops a little earlier each window."""
    vt = VirtualTime()
    gate = vt.gate()
    server = OverAnnouncingServer(60, announced)
    started = vt.now
    _, finished = await drive(vt, gate, server, total=30 * 60, jitter=random.Random(announced))
    assert server.early == 0
    # Learning it, then one probe cycle past it (not one every window: 30 before).
    assert gate.snapshot().cooldowns <= 4
    assert server.responses_429 <= 10
    assert 30 * 60 / (finished - started) >= 0.85 * 60


@pytest.mark.parametrize("limit", [20, 60, 200])
async def test_learns_limit_from_429s_without_headers(limit: int) -> None:
    """16 workers, nothing announced: a slow start meets the limit with a few requests in
    flight (not 16), possibly windows after the first; the count is learned exactly all the
    same (the windows are replayed on the sends), and no 429 follows."""
    vt = VirtualTime()
    gate = vt.gate()
    server = WindowServer(limit, headers=False)
    started = vt.now
    refused: list[float] = []

    async def release(**answer: Any) -> None:
        if answer["status"] == 429:
            refused.append(vt.now)
        await RateGate.release(gate, **answer)

    gate.release = release  # type: ignore[method-assign]
    _, finished = await drive(vt, gate, server, total=10 * limit)
    elapsed = finished - started
    assert server.early == 0
    # The requests in flight when the limit was met (20 ms each, at about the limit's
    # rate): 3 at 20 and 60 per second, a dozen at 200 (16 workers: 16 and more before).
    assert len(refused) <= max(3, limit * 0.02 * 3)
    assert refused[-1] - refused[0] < 0.1  # all at one moment: learned from the first
    snapshot = gate.snapshot()
    assert snapshot.limit_source == "learned"
    assert snapshot.limit is not None
    # (Ten calm windows at the top pace let it probe 1 % higher.)
    assert 0.97 * limit <= snapshot.limit <= 1.02 * limit
    assert 10 * limit / elapsed >= 0.85 * limit  # the slow start and one cooldown cost


@pytest.mark.parametrize("seed", [0, 1, 2])
async def test_a_learned_limit_holds_through_arrival_jitter(seed: int) -> None:
    """Round trips of 10 to 40 ms, arrivals reordered: the server's windows open on
    arrivals, not where the gate replays them on its sends. Near a boundary a refused
    request can look like the first of a window, or requests sent before it reach the
    server after it: the count learned must neither collapse (it had fallen to 1 to 40 per
    second here, pacing at a fraction of the limit for the rest of the run) nor stay above
    the limit (one more 429 each window)."""
    vt = VirtualTime()
    gate = vt.gate()
    server = WindowServer(60, headers=False)
    learned: list[float] = []

    async def release(**answer: Any) -> None:
        await RateGate.release(gate, **answer)
        if (limit := gate.snapshot().limit) is not None:
            learned.append(limit)

    gate.release = release  # type: ignore[method-assign]
    started = vt.now
    _, finished = await drive(vt, gate, server, total=30 * 60, jitter=random.Random(seed))
    assert server.early == 0
    assert min(learned) >= 0.95 * 60  # never paced at a fraction of the limit
    assert 0.95 * 60 <= gate.snapshot().limit <= 1.02 * 60  # type: ignore[operator]
    assert server.responses_429 <= 10  # the first window's few, and one now and then
    # The first window's cooldown and one more at most: a count learned above the limit
    # (requests that left before the refused one but arrived after it) costs one per
    # window until it comes down. And one for the first cycle of probes above the count
    # (after ten calm windows), which goes back to the count that held.
    assert gate.snapshot().cooldowns <= 3
    assert 30 * 60 / (finished - started) >= 0.88 * 60


async def test_learned_pace_meets_no_further_429() -> None:
    vt = VirtualTime()
    gate = vt.gate()
    server = WindowServer(60, headers=False)
    await drive(vt, gate, server, total=120)
    first_windows = server.responses_429
    server.responses_429 = 0
    await drive(vt, gate, server, total=600)
    assert first_windows >= 1
    assert server.responses_429 == 0
    assert server.early == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
async def test_a_token_bucket_read_as_windows_is_climbed_to_in_bounded_time(seed: int) -> None:
    """60 per second, burst 10: the first 429 comes after some 22 requests in a second, and
    the replayed windows learn about 22 per second. Probes that double their step while
    they hold climb to the bucket's rate within some 30 seconds (at +1 % per ten windows,
    the pace stayed at a third of it for minutes), at the cost of a few 429 events."""
    vt = VirtualTime()
    gate = vt.gate()
    server = TokenBucketServer(60, burst=10)
    started = vt.now
    _, finished = await drive(vt, gate, server, total=90 * 60, jitter=random.Random(seed))
    assert server.early == 0
    late = [at for at in server.served if at >= started + 45.0]
    assert finished - started > 60.0
    # Measured: 0.91 to 0.95 of the rate from 45 s on, 0.77 to 0.83 over the whole run
    # (the first 20 s at a third of it), 8 to 10 429s in 6 to 8 cooldowns (seeds 0 to 5).
    assert len(late) / (finished - started - 45.0) >= 0.85 * 60
    assert 90 * 60 / (finished - started) >= 0.7 * 60
    assert server.responses_429 <= 15
    assert gate.snapshot().cooldowns <= 12


@pytest.mark.parametrize("seed", [0, 1, 2])
async def test_probing_past_a_fixed_windows_limit_costs_a_429_event_now_and_then(
    seed: int,
) -> None:
    """A limit learned exactly (fixed windows of 60 per second): each cycle of probes above
    it meets one 429 event and goes back to a count that held (not one less than the probe,
    which would take more 429 events to come down), and a cycle that gained little is
    followed by one twice as far: over 120 windows, a cooldown every 20 at most."""
    vt = VirtualTime()
    gate = vt.gate()
    server = WindowServer(60, headers=False)
    started = vt.now
    _, finished = await drive(vt, gate, server, total=120 * 60, jitter=random.Random(seed))
    windows = finished - started
    assert server.early == 0
    assert gate.snapshot().cooldowns - 1 <= windows / 20
    assert 120 * 60 / windows >= 0.9 * 60
    assert 0.95 * 60 <= gate.snapshot().limit <= 1.02 * 60  # type: ignore[operator]


async def test_never_releases_before_a_deadline_from_any_task() -> None:
    vt = VirtualTime()
    gate = vt.gate()
    released: list[float] = []

    async def one() -> None:
        await gate.acquire()
        released.append(vt.now)
        await gate.release(status=200)

    async def main() -> None:
        await one()  # the first answer
        gate.cool_down(5.0)
        deadline = vt.now + 5.0
        async with anyio.create_task_group() as tasks:
            for _ in range(20):
                tasks.start_soon(one)
        assert min(released[1:]) >= deadline
        # A 429 answered while others wait: its Retry-After holds all of them.
        await gate.acquire()
        await gate.release(status=429, retry_after=3.0)
        later = vt.now + 3.0
        del released[:]
        async with anyio.create_task_group() as tasks:
            for _ in range(20):
                tasks.start_soon(one)
        assert min(released) >= later
        assert gate.snapshot().cooldowns == 2

    await vt.run(main)


@pytest.mark.parametrize("retry_after", [0.0, -5.0, None])
async def test_retry_after_zero_or_past_releases_no_herd(retry_after: float | None) -> None:
    vt = VirtualTime()
    gate = vt.gate()
    released: list[float] = []

    async def one(status: int = 200) -> None:
        await gate.acquire()
        released.append(vt.now)
        await vt.sleep(0.01)
        await gate.release(status=status, retry_after=retry_after)

    async def main() -> None:
        async with anyio.create_task_group() as tasks:
            for _ in range(10):
                tasks.start_soon(one)
        await one(429)
        del released[:]
        async with anyio.create_task_group() as tasks:
            for _ in range(10):
                tasks.start_soon(one)
        gaps = [b - a for a, b in itertools.pairwise(released)]
        assert min(gaps) > 0  # paced, not everyone at once

    await vt.run(main)


async def test_a_first_429_without_anything_to_learn_from_releases_one_request_alone() -> None:
    vt = VirtualTime()
    gate = vt.gate()
    released: list[float] = []

    async def one(status: int) -> None:
        await gate.acquire()
        released.append(vt.now)
        await vt.sleep(0.02)
        await gate.release(status=status, retry_after=0.0)

    async def main() -> None:
        await one(429)  # the very first answer: 429, Retry-After 0, no headers
        async with anyio.create_task_group() as tasks:
            for _ in range(5):
                tasks.start_soon(one, 200)

    await vt.run(main)
    assert released[2] - released[1] >= 0.019  # the others waited for the probe's answer


async def test_max_rate_holds_before_any_answer() -> None:
    vt = VirtualTime()
    gate = vt.gate(max_rate=4.0)
    released: list[float] = []

    async def one() -> None:
        await gate.acquire()
        released.append(vt.now)
        await gate.release(status=200)

    async def main() -> None:
        async with anyio.create_task_group() as tasks:
            for _ in range(9):
                tasks.start_soon(one)

    await vt.run(main)
    gaps = [b - a for a, b in itertools.pairwise(released)]
    assert min(gaps) >= 0.25 - 1e-9
    assert gate.snapshot().limit == 4.0
    assert gate.snapshot().limit_source == "configured"


async def test_a_first_request_without_answer_holds_the_others_one_second_at_most() -> None:
    vt = VirtualTime()
    gate = vt.gate()

    async def main() -> None:
        await gate.acquire()  # the first request, still without an answer
        started = vt.now
        await gate.acquire()
        assert vt.now == pytest.approx(started + 1.0)

    await vt.run(main)


async def test_the_slow_start_holds_requests_in_flight_and_ends_at_a_deadline() -> None:
    """Nothing announced, nothing learned: three requests in flight for the first second
    (more as time goes by); an answer lets the next one go; a waiting call's deadline ends
    its wait."""
    vt = VirtualTime()
    gate = vt.gate()
    released: list[float] = []

    async def fourth() -> None:
        await gate.acquire()
        released.append(vt.now)

    async def main() -> None:
        await gate.acquire()
        await gate.release(status=200)  # the first answer: nothing announced
        start = vt.now
        await gate.acquire()
        await gate.acquire()
        await gate.acquire()
        assert vt.now == start  # three in flight at once
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(fourth)
            await vt.sleep(0.1)
            assert released == []  # a fourth waits for an answer...
            await gate.release(status=200)
        assert released == [pytest.approx(start + 0.1)]  # ...and goes with it
        deadline = vt.now + 0.05
        await gate.acquire(deadline=deadline)  # three in flight again: waits, not past it
        assert vt.now == pytest.approx(deadline)
        await vt.sleep(start + 1.0 - vt.now)
        await gate.acquire()  # after the first second: more in flight
        assert vt.now == pytest.approx(start + 1.0)

    await vt.run(main)


async def test_raises_at_once_when_the_deadline_cannot_be_met() -> None:
    vt = VirtualTime()
    gate = vt.gate()

    async def main() -> None:
        await gate.acquire()
        await gate.release(status=429, retry_after=10.0)
        before = vt.now
        with pytest.raises(ea.RateLimitError) as caught:
            await gate.acquire(deadline=vt.now + 2.0)
        assert vt.now == before  # no waiting in vain
        assert caught.value.retry_after == pytest.approx(10.0)
        await gate.acquire(deadline=vt.now + 11.0)  # this one can make it, and waits
        assert vt.now == pytest.approx(before + 10.0)

    await vt.run(main)


async def test_two_gates_on_one_store_share_the_deadline() -> None:
    """What a shared (Redis) store gives several processes: one deadline for all."""
    vt = VirtualTime()
    store = LocalGateStore()
    first, second = vt.gate(store=store), vt.gate(store=store)

    async def main() -> None:
        await first.acquire()
        await first.release(status=429, retry_after=4.0)
        until = vt.now + 4.0
        await second.acquire()
        assert vt.now >= until

    await vt.run(main)


@pytest.mark.parametrize("processes", [2, 4, 8])
async def test_processes_sharing_a_store_share_the_announced_budget(processes: int) -> None:
    """Several processes (a gate each, 8 workers each) on one shared store under one limit
    for all (one outgoing IP). Each sees only some of the answers, so its own count of the
    budget is too high and its window end too late: the store's budget, reported by all,
    holds every one of them at the window's end, and only there."""
    vt = VirtualTime()
    store = SharedStore()
    gates = [vt.gate(store=store) for _ in range(processes)]
    server = WindowServer(40)
    started = vt.now
    _, finished = await drive(vt, gates, server, total=400, workers=8)
    assert server.responses_429 == 0
    assert server.early == 0
    assert 400 / (finished - started) >= 0.95 * 40


@pytest.mark.parametrize("seed", [0, 2])
async def test_processes_sharing_a_store_pace_through_arrival_jitter(seed: int) -> None:
    """Two processes on one store, 200/s, round trips of 10 to 40 ms: an answer from the
    previous window (its request left after the one that showed the new window, arrived
    before it) is not taken as the new window's spent budget (which held everyone until
    its end: 0.89 of the limit)."""
    vt = VirtualTime()
    store = SharedStore()
    gates = [vt.gate(store=store) for _ in range(2)]
    server = WindowServer(200)
    started = vt.now
    _, finished = await drive(vt, gates, server, total=2000, workers=8, jitter=random.Random(seed))
    assert server.responses_429 == 0
    assert server.early == 0
    assert 2000 / (finished - started) >= 0.95 * 200


async def deadline_in(store: GateStore) -> float:
    """The cooldown deadline a store holds (what every gate reads at its wake-up)."""
    return (await store.holds(number=0, now=0.0))[0]


async def budget_scenario(reporter: GateStore, reserver: GateStore, start: float) -> None:
    """What a store does with reported budgets (``reporter`` and ``reserver`` may be two
    processes' views of one shared store): the Python rule and the Redis script agree."""
    t = start
    for _ in range(3):
        await reserver.reserve(now=t, interval=0.0, not_before=0.0)
    # The answer to reservation 2: 2 left in a window that ends by t + 1.
    await reporter.report(number=2, remaining=2, limit=5, sent=t, end=t + 1)
    assert (await reserver.reserve(now=t + 0.1, interval=0.0, not_before=0.0)).number == 4
    held = await reserver.reserve(now=t + 0.1, interval=0.25, not_before=0.0)  # 5 - 2 > 2
    assert (held.slot, held.number) == (t + 1, 5)
    assert (await reporter.holds(number=5, now=t + 0.2))[1] == t + 1
    assert (await reporter.holds(number=4, now=t + 0.2))[1] == 0.0
    # Not used after all (given back): uncounted, and the slot is free again.
    again = await reserver.reserve(
        now=t + 0.3, interval=0.25, not_before=0.0, give_back=(t + 1, t + 1.25, 5)
    )
    assert (again.slot, again.number) == (t + 1, 5)
    # Given back once another reserved after it (with no interval: the same tat), it
    # stays counted: no two reservations ever share a number.
    other = await reserver.reserve(now=t + 0.3, interval=0.0, not_before=0.0)
    assert (other.slot, other.number) == (t + 1.25, 6)
    after = await reserver.reserve(
        now=t + 0.3, interval=0.0, not_before=0.0, give_back=(t + 1, t + 1.25, 5)
    )
    assert after.number == 7
    # A later answer of the same window: its end is no later than the earliest one known...
    await reporter.report(number=4, remaining=0, limit=5, sent=t + 0.5, end=t + 1.5)
    assert (await reserver.holds(number=5, now=t + 0.5))[1] == t + 1
    # ...and an earlier reservation's answer, come late, changes nothing.
    await reporter.report(number=3, remaining=1, limit=5, sent=t, end=t + 0.75)
    assert (await reserver.holds(number=5, now=t + 0.5))[1] == t + 1
    assert (await reserver.holds(number=4, now=t + 0.5))[1] == 0.0
    # The first answer of the next window replaces it: nothing held, until spent.
    await reporter.report(number=6, remaining=4, limit=5, sent=t + 1, end=t + 2)
    assert (await reserver.holds(number=10, now=t + 1.25))[1] == 0.0
    assert (await reserver.holds(number=11, now=t + 1.25))[1] == t + 2
    await reporter.report(number=8, remaining=2, limit=5, sent=t + 1.1, end=t + 2.1)
    # Reservation 10 reached the server before 9 (another process's): one more left at
    # 10 than at 8 is no new window; once 9's answer tells 0, nothing more goes.
    await reporter.report(number=10, remaining=1, limit=5, sent=t + 1.15, end=t + 2.15)
    assert (await reserver.holds(number=11, now=t + 1.25))[1] == 0.0
    await reporter.report(number=9, remaining=0, limit=5, sent=t + 1.12, end=t + 2.12)
    assert (await reserver.holds(number=11, now=t + 1.25))[1] == t + 2
    assert (await reserver.holds(number=11, now=t + 2))[1] == 0.0
    assert (await reserver.reserve(now=t + 2, interval=0.0, not_before=0.0)).slot == t + 2


async def test_a_store_holds_reservations_beyond_the_reported_budget() -> None:
    store = LocalGateStore()
    await budget_scenario(store, store, 1000.0)


def test_limits_max_rate_is_validated() -> None:
    assert ea.Limits(max_rate=1000 / 60).max_rate == pytest.approx(16.667, abs=1e-3)
    for bad in (0, -1.0, float("nan"), float("inf"), True, "10"):
        with pytest.raises(ea.InvalidInputError):
            ea.Limits(max_rate=bad)  # type: ignore[arg-type]


def test_ietf_policy_window_is_read() -> None:
    info = parse_ratelimit(
        {"RateLimit-Policy": '"default";q=100;w=60', "RateLimit": '"default";r=40;t=12'}, 0.0
    )
    assert info == RateLimitInfo(limit=100, remaining=40, reset_after=12.0, window=60.0)


async def test_scan_under_announced_limit_meets_no_429_and_no_early_request() -> None:
    async with Simulator(dossiers=3000, seed=3) as sim, client_for(sim) as client:
        sim.faults.rate_limit, sim.faults.rate_window = 100, 1.0
        sim.faults.latency = 0.01
        items = [d async for d in client.dossiers.scan(page_size=10, concurrency=16, raw=True)]
        assert len(items) == 3000
        assert sim.stats.early_requests == 0
        assert sim.stats.rate_limited <= 1
        snapshot = client.rate  # what the client's gate did and knows, public
        assert snapshot.limit_source == "announced"
        assert snapshot.limit == 100
        assert snapshot.requests == sim.stats.requests["list_dossiers"]


async def test_an_answer_read_while_the_loop_was_busy_holds_the_next_request() -> None:
    """The loop is busy (a big page structured, a consumer's own work) while a 429 waits in
    the socket and another request's slot comes: that request must not leave first.

    The simulator runs in its own process (a busy loop here must not stop it) and counts
    requests that arrive after a Retry-After it announced, before its deadline."""
    async with SimulatorProcess(
        "--dossiers",
        "50",
        "--latency",
        "0.02",
        "--rate-limit",
        "1",
        "--rate-window",
        "30",
        "--no-ratelimit-headers",
    ) as sim:
        client = client_for(
            sim,
            account_id=int(sim.values["EATTEST_ACCOUNT_ID"]),
            limits=ea.Limits(max_rate=5.0),  # slots 200 ms apart
            retry=ea.RetryPolicy(attempts=1, deadline=2.0),  # a 30 s cooldown: fail at once
        )
        async with client:
            await client.dossiers.list(page=0, page_size=1)  # the window's one request
            await anyio.sleep(0.25)  # the next slot is free at once
            outcomes: list[BaseException | None] = []

            async def call() -> None:
                try:
                    await client.dossiers.list(page=0, page_size=1)
                    outcomes.append(None)
                except ea.RateLimitError as exc:
                    outcomes.append(exc)

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(call)  # sent at once: 429, Retry-After 30, in 20 ms
                await anyio.sleep(0.005)
                tasks.start_soon(call)  # its slot 200 ms later
                await anyio.sleep(0.002)
                # Busy past both: the 429 waits in the socket, the slot's timer is due.
                time.sleep(0.5)  # noqa: ASYNC251 - the busy loop under test
            stats = await sim.stats()
        assert [type(outcome) for outcome in outcomes] == [ea.RateLimitError] * 2
        assert stats["rate_limited"] == 1  # the second call never left
        assert stats["early_requests"] == 0


@pytest.mark.parametrize("order", ["first to last", "last to first", "all at once"])
async def test_acquires_cancelled_while_waiting_give_their_slots_back(order: str) -> None:
    """Ten calls wait for their slots (1 s apart), then are cancelled (a FastAPI client
    hung up, say): the next call waits for the first slot, not behind ten that never go."""
    vt = VirtualTime()
    gate = vt.gate(max_rate=1.0)

    async def main() -> None:
        await gate.acquire()
        await gate.release(status=200)
        scopes = [anyio.CancelScope() for _ in range(10)]

        async def waiter(scope: anyio.CancelScope) -> None:
            with scope:
                await gate.acquire()
            assert scope.cancelled_caught

        async with anyio.create_task_group() as tasks:
            for scope in scopes:
                tasks.start_soon(waiter, scope)
            await vt.sleep(0.2)  # all reserved, asleep until their slots
            if order == "all at once":
                tasks.cancel_scope.cancel()
            else:
                for scope in scopes if order == "first to last" else scopes[::-1]:
                    scope.cancel()
                    await vt.sleep(0)  # its task ends before the next is cancelled
        before, waited = vt.now, gate.snapshot().waited
        await gate.acquire()
        assert vt.now - before <= 1.0
        assert gate.snapshot().waited - waited <= 1.0
        assert gate.snapshot().requests == 2

    await vt.run(main)


async def test_slots_given_back_between_kept_ones_are_taken_again_in_their_place() -> None:
    """Every other waiter is cancelled: their slots go to the next callers, who leave in
    them, no two requests closer than the interval, none after the kept ones."""
    vt = VirtualTime()
    gate = vt.gate(max_rate=1.0)
    sent: list[float] = []

    async def main() -> None:
        await gate.acquire()
        sent.append(vt.now)
        await gate.release(status=200)
        scopes = [anyio.CancelScope() for _ in range(10)]

        async def waiter(scope: anyio.CancelScope) -> None:
            with scope:
                await gate.acquire()
                sent.append(vt.now)
                await gate.release(status=200)

        async def newcomer() -> None:
            await gate.acquire()
            sent.append(vt.now)
            await gate.release(status=200)

        async with anyio.create_task_group() as tasks:
            for scope in scopes:
                tasks.start_soon(waiter, scope)
            await vt.sleep(0.2)
            for scope in scopes[::2]:
                scope.cancel()
            await vt.sleep(0.1)
            for _ in range(5):
                tasks.start_soon(newcomer)

    start = vt.now
    await vt.run(main)
    assert len(sent) == 11
    gaps = [b - a for a, b in itertools.pairwise(sorted(sent))]
    assert min(gaps) >= 1.0 - 1e-9
    assert max(sent) - start <= 10.0  # in the ten slots after the first, not after them


async def test_acquires_refused_after_their_reservation_give_their_slots_back() -> None:
    """A learned limit: the log of sends holds a request whose slot came, past its
    deadline. Refused, it leaves the store's schedule as it found it (the next slot, as
    the store would give it at the same instant, is the same), or every refusal would
    push every later request one interval further."""
    vt = VirtualTime()
    store = LocalGateStore()
    wakes = itertools.count()

    async def busy_sleep(seconds: float) -> None:
        # Every third wake-up comes late (the event loop was busy): the next requests,
        # their slots past, leave right after it, and the log of sends has to hold.
        await vt.sleep(seconds + (0.3 if next(wakes) % 3 == 2 else 0.0))

    gate = RateGate(clock=vt.clock, wall=vt.clock, sleep=busy_sleep, store=store)
    server = WindowServer(5, headers=False)

    async def next_slot(now: float) -> float:
        # ``latest`` before it: nothing is stored, the slot is told all the same.
        return (await store.reserve(now=now, interval=0.0, not_before=0.0, latest=0.0)).slot

    async def main() -> None:
        refused = 0
        for _ in range(20):
            called = vt.now
            before = await next_slot(called)
            try:
                await gate.acquire(deadline=vt.now + 0.25)
            except ea.RateLimitError:
                refused += 1
                assert await next_slot(called) == before
                await vt.sleep(0.05)
                continue
            status, retry_after, info = server.handle(vt.now, vt.now, 0.0)
            await gate.release(status=status, retry_after=retry_after, info=info)
        assert refused > 0

    await drive(vt, gate, server, total=30)  # the limit is learned
    assert gate.snapshot().limit_source == "learned"
    await vt.run(main)


async def test_a_learned_limit_is_not_probed_past_what_the_callers_send() -> None:
    """Learned at 20/s, then the server allows far more but the callers (2 workers) send
    at most ~100/s: calm windows that did not use the pace say nothing of the limit. Counted
    as probes that held, they raised the count without end (1e5 within a minute, infinity
    within the hour, and then every acquire failed with OverflowError)."""
    vt = VirtualTime()
    gate = vt.gate()
    server = WindowServer(20, headers=False)
    await drive(vt, gate, server, total=200)
    assert gate.snapshot().limit_source == "learned"
    server.limit = 10_000
    await drive(vt, gate, server, total=6_000, workers=2)  # a minute at most
    limit = gate.snapshot().limit
    assert limit is not None
    assert limit <= 2 * 2 / 0.02  # within reach of what was sent (2 in flight, 20 ms)


class _SwitchingServer(WindowServer):
    """Announces 100 per window throughout; enforces 100 until ``at`` seconds into the run,
    then 50 (another client of the account started, a proxy's limit came into force)."""

    def __init__(self, at: float) -> None:
        super().__init__(100)
        self.at = at
        self.first: float | None = None

    def handle(
        self, arrival: float, sent: float, back: float
    ) -> tuple[int, float | None, RateLimitInfo | None]:
        self.first = arrival if self.first is None else self.first
        self.limit = 100 if arrival - self.first < self.at else 50
        status, retry_after, info = super().handle(arrival, sent, back)
        if info is not None:
            left = max(0, 100 - self.count)
            info = RateLimitInfo(limit=100, remaining=left, reset_after=info.reset_after)
        return status, retry_after, info


async def test_a_stricter_limit_met_late_is_learned_from_its_own_window() -> None:
    """Two minutes paced by an honest announcement, then a stricter limit: learning must
    start from the window the headers showed opening, not replay the whole run (which
    learned 11,684 per 121 s, one more 429 burst and cooldown before the right count)."""
    vt = VirtualTime()
    gate = vt.gate()
    server = _SwitchingServer(120.0)
    learned: list[float] = []

    async def release(**answer: Any) -> None:
        await RateGate.release(gate, **answer)
        snapshot = gate.snapshot()
        if snapshot.limit_source == "learned" and snapshot.limit is not None:
            learned.append(snapshot.limit)

    gate.release = release  # type: ignore[method-assign]
    await drive(vt, gate, server, total=100 * 120 + 50 * 10, jitter=random.Random(1))
    assert server.early == 0
    assert learned
    assert learned[0] <= 55  # the stricter count, at the first 429 already


async def test_a_request_held_by_its_log_of_sends_waits_for_another_process_429() -> None:
    """A learned limit (5 per second) and a bunch of 5 sends just now (a late wake-up): the
    log of sends holds the next request ~0.9 s. Meanwhile another process on the same store
    meets a 429 (Retry-After: 5): the held request must not leave before that deadline (it
    left at the end of its own hold, 4.4 s before it)."""
    vt = VirtualTime()
    store = SharedStore()
    first, second = vt.gate(store=store), vt.gate(store=store)
    server = WindowServer(5, headers=False)
    await drive(vt, first, server, total=30)  # the first process learns 5 per second
    assert first.snapshot().limit_source == "learned"
    for _ in range(5):  # the bunch (what late wake-ups leave in the log of sends)
        first._log_send(vt.now)
    left: list[float] = []

    async def main() -> None:
        async def held() -> None:
            await first.acquire()
            left.append(vt.now)

        async def refused_elsewhere() -> None:
            await vt.sleep(0.3)
            await second.acquire()
            await second.release(status=429, retry_after=5.0)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(held)
            tasks.start_soon(refused_elsewhere)

    started = vt.now
    await vt.run(main)
    deadline = await deadline_in(store)
    assert deadline > started + 5.0
    assert left
    assert left[0] >= deadline
