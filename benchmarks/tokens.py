"""6. Token single-flight at scale: 1,000 concurrent calls at expiry make one token request."""

from __future__ import annotations

from typing import Any

import anyio

import eattest_async as ea
from eattest_async.simulator import Simulator


async def single_flight(calls: int = 1000) -> dict[str, Any]:
    async with (
        Simulator(dossiers=10, access_token_lifetime=0.5) as sim,
        ea.Client(sim.environment, username=sim.username, password=sim.password) as client,
    ):
        await client.account.get()
        await anyio.sleep(0.5)  # the token's lifetime runs out for real
        sim.reset()
        async with anyio.create_task_group() as group:
            for _ in range(calls):
                group.start_soon(client.account.get)
        return {
            "calls": calls,
            "token_requests": sim.stats.requests["token"],
            "api_requests": sim.stats.requests["get_account"],
        }
