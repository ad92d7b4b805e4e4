"""The simulator's per-IP rate window, which several processes sharing one limit need."""

from __future__ import annotations

import aiohttp
import pytest

from eattest_async.simulator import Simulator

from .conftest import bearer

pytestmark = pytest.mark.anyio


async def statuses(http: aiohttp.ClientSession, sim: Simulator, headers: dict[str, str]) -> int:
    async with http.get(f"{sim.base_url}/account/{sim.account_id}", headers=headers) as answer:
        return answer.status


@pytest.mark.parametrize(("scope", "second_session"), [("session", 200), ("global", 429)])
async def test_a_global_rate_window_is_shared_by_every_session(
    sim: Simulator, http: aiohttp.ClientSession, scope: str, second_session: int
) -> None:
    sim.faults.rate_limit = 2
    sim.faults.rate_window = 60
    sim.faults.rate_scope = scope  # type: ignore[assignment]
    first, second = await bearer(sim, http), await bearer(sim, http)  # two sign-ins
    assert [await statuses(http, sim, first) for _ in range(2)] == [200, 200]
    assert await statuses(http, sim, second) == second_session
    if scope == "global":
        # The 429 answered to one session holds the other one too: calling it is early.
        sim.faults.early_grace = 0.0
        assert await statuses(http, sim, first) == 429
        assert sim.stats.early_requests == 1
