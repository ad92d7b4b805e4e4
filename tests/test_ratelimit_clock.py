"""The rate gate when the wall clock steps (NTP): cooldowns keep their length."""

from __future__ import annotations

import pytest

import eattest_async as ea
from eattest_async._protocol import MAX_WAIT
from eattest_async._ratelimit import RateGate

from .test_ratelimit import SharedStore, VirtualTime

pytestmark = pytest.mark.anyio


class SteppingWall:
    """A wall clock on the virtual time that can be stepped, as NTP does."""

    def __init__(self, vt: VirtualTime) -> None:
        self.vt = vt
        self.step = 0.0

    def __call__(self) -> float:
        return self.vt.now + self.step


async def test_a_wall_clock_step_back_does_not_lengthen_a_local_cooldown() -> None:
    vt = VirtualTime()
    wall = SteppingWall(vt)
    gate = RateGate(clock=vt.clock, wall=wall, sleep=vt.sleep)

    async def main() -> None:
        await gate.acquire()
        await gate.release(status=429, retry_after=1.0)
        wall.step = -3600.0  # the wall clock steps back one hour during the cooldown
        with pytest.raises(ea.RateLimitError) as caught:
            await gate.acquire(deadline=vt.now + 0.5)
        assert caught.value.retry_after == pytest.approx(1.0)
        before = vt.now
        await gate.acquire(deadline=vt.now + 2.0)  # leaves when the second is over
        assert vt.now == pytest.approx(before + 1.0)

    await vt.run(main)


async def test_a_shared_deadline_far_away_holds_no_longer_than_the_longest_wait() -> None:
    """Another process whose wall clock is wrong (or a step here): the damage is bounded."""
    vt = VirtualTime()
    store = SharedStore()
    gate = RateGate(clock=vt.clock, wall=SteppingWall(vt), sleep=vt.sleep, store=store)

    async def main() -> None:
        await store.extend_deadline(vt.now + 10 * MAX_WAIT)
        with pytest.raises(ea.RateLimitError) as caught:
            await gate.acquire(deadline=vt.now + 1.0)
        assert caught.value.retry_after is not None
        assert 0 < caught.value.retry_after <= MAX_WAIT

    await vt.run(main)
