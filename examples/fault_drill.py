"""Recipe: test your own code against the simulator's faults (429, 5xx, drops, revocation)."""

from __future__ import annotations

import asyncio

import eattest_async as ea
from eattest_async.simulator import FaultAction, Simulator


async def count_compliant(client: ea.Client) -> int:
    """The code under test: how many dossiers hold the duty-of-care indicator."""
    total = 0
    async for dossier in client.dossiers.scan(page_size=100, concurrency=8):
        indicator = dossier.indicator("I001")
        total += bool(indicator and indicator.state)
    return total


async def main() -> None:
    async with Simulator(dossiers=3_000) as sim:
        async with ea.Client(
            sim.environment, username=sim.username, password=sim.password
        ) as client:
            expected = await count_compliant(client)
            sim.faults.error_rate, sim.faults.drop_rate = 0.05, 0.02
            sim.faults.add(
                FaultAction(kind="status", status=429, retry_after=1), FaultAction(kind="revoke")
            )
            assert await count_compliant(client) == expected, "faults changed the answer"
        assert sim.stats.early_requests == 0, "a request left before a Retry-After deadline"
        print(
            f"same answer ({expected}) through {sum(sim.stats.faults.values())} faults; "
            f"{sim.stats.rate_limited} 429 honoured, no early request"
        )


if __name__ == "__main__":
    asyncio.run(main())
