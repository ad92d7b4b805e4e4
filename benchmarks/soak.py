"""A bounded soak (``python -m benchmarks.soak`` or ``nox -s soak``): a 200,000-dossier scan
with every fault mixed in at low rates; every dossier exactly once, no early request."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import eattest_async as ea
from eattest_async.simulator import DOSSIER_ID_BASE, SimulatorProcess


async def soak(dossiers: int) -> dict[str, Any]:
    async with SimulatorProcess("--dossiers", str(dossiers), "--latency", "0.01") as sim:
        # A rate limit below what the simulator serves (~70 pages/s), so that 429s do happen,
        # and each scripted kind of fault three times besides the random ones.
        kinds = ("html", "empty", "malformed", "slow", "revoke", "expire", "expire_refresh")
        scripted = [
            {
                "kind": kind,
                "status": 502 if kind == "html" else None,
                "delay": 0.5,
                "operation": "list_dossiers",
            }
            for _ in range(3)
            for kind in kinds
        ]
        await sim.set_faults(
            error_rate=0.02,
            drop_rate=0.005,
            truncate_rate=0.005,
            jitter=0.02,
            rate_limit=50,
            rate_window=1.0,
            ratelimit_headers="none",
            script=scripted,
        )
        started = time.perf_counter()
        async with ea.Client(
            sim.environment,
            username=sim.username,
            password=sim.password,
            timeouts=ea.Timeouts(json=0.4),
        ) as client:
            seen: set[int] = set()
            duplicates = 0
            async with client.dossiers.scan(page_size=100, concurrency=16, raw=True) as scan:
                async for dossier in scan:
                    duplicates += dossier["dossierId"] in seen
                    seen.add(dossier["dossierId"])
            report = scan.report
        stats = await sim.stats()
    missing = len(set(range(DOSSIER_ID_BASE, DOSSIER_ID_BASE + dossiers)) - seen)
    return {
        "dossiers": dossiers,
        "delivered": len(seen),
        "missing": missing,
        "duplicated": duplicates,
        "seconds": round(time.perf_counter() - started, 1),
        "requests": stats["total_requests"],
        "faults_injected": stats["faults"],
        "429s": stats["rate_limited"],
        "early_requests": stats["early_requests"],
        "retries": report.retries,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak")
    parser.add_argument("--dossiers", type=int, default=200_000)
    figures = asyncio.run(soak(parser.parse_args().dossiers))
    print(figures)
    ok = figures["missing"] == figures["duplicated"] == figures["early_requests"] == 0
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
