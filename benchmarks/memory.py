"""5. Peak RSS over baseline while streaming dossiers; KB per dossier when materialised.

Run in a process of its own (``python -m benchmarks.memory``) so that the peak belongs to
the scan alone; the simulator runs in another process and is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
import tracemalloc
from typing import Any

import orjson

import eattest_async as ea
from eattest_async.simulator import SimulatorProcess


def _status_mb(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def rss_mb() -> float:
    return _status_mb("VmRSS")


def reset_peak() -> None:
    """Restart the peak-RSS count (VmHWM) from now. getrusage's ru_maxrss cannot be reset,
    and survives fork + exec: a child of a large process would start with its peak."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
        clear_refs.write("5")


def peak_rss_mb() -> float:
    return _status_mb("VmHWM")


async def stream(dossiers: int, page_size: int, concurrency: int) -> dict[str, Any]:
    async with (
        SimulatorProcess("--dossiers", str(dossiers)) as sim,
        ea.Client(
            sim.environment,
            username=sim.username,
            password=sim.password,
            # The simulator renders each page of 1000 on demand: on a busy machine that
            # can take longer than the default 5 s, and the figure here is memory.
            timeouts=ea.Timeouts(json=120),
            retry=ea.RetryPolicy(deadline=600),
        ) as client,
    ):
        # Signed in and the converter warmed on one dossier, before any large page is decoded:
        # the peak then includes the decoding itself (orjson's transient buffer included).
        await client.dossiers.list(page_size=1)
        gc.collect()
        baseline = rss_mb()
        reset_peak()
        started = time.perf_counter()
        count = 0
        last_id = -1
        ordered = True
        async for dossier in client.dossiers.scan(page_size=page_size, concurrency=concurrency):
            count += 1
            ordered = ordered and (dossier.dossier_id or 0) > last_id
            last_id = dossier.dossier_id or 0
        elapsed = time.perf_counter() - started
    return {
        "dossiers": count,
        "in_order_once": ordered and count == dossiers,
        "page_size": page_size,
        "concurrency": concurrency,
        "baseline_mb": baseline,
        "peak_mb": peak_rss_mb(),
        "peak_over_baseline_mb": peak_rss_mb() - baseline,
        "seconds": elapsed,
    }


def materialised_kb_per_dossier(count: int = 10_000) -> float:
    from .cpu import ours, page_bytes

    body = page_bytes(count)
    gc.collect()
    tracemalloc.start()
    dossiers = ours(body)
    retained, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(dossiers) == count
    return retained / count / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dossiers", type=int, default=1_000_000)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    figures = asyncio.run(stream(args.dossiers, args.page_size, args.concurrency))
    figures["materialised_kb_per_dossier"] = materialised_kb_per_dossier()
    sys.stdout.write(orjson.dumps(figures).decode() + "\n")


if __name__ == "__main__":
    main()
