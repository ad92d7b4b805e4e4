"""Efficiency under a rate limit: the share of the allowed rate a client reaches, and at
what price in 429s and early requests.

The simulator (a process of its own, pages cached so rendering is never the bottleneck)
allows ``limit`` requests per 1 s window per session, each window opened by the first
request after the previous one ended (as API Entreprise counts), 20 ms latency. Each run
lasts ``windows`` windows at concurrency 16 and divides the pages answered by the
``windows x limit`` allowed. Compared in the same run, one after the other:

- eattest_async with ``RateLimit-*`` headers, and without any (it must learn the limit);
- a 20-line token bucket at 0.98 x the true rate (it is told the limit, honours
  ``Retry-After``), over aiohttp, parsing each page with orjson as a client must;
- the ceilings of this machine: the same two without any limit, for half the time. Where
  a ceiling is below the allowed rate, the row is bound by the client's CPU, not by the
  limit: its share of ``min(allowed, own ceiling)`` tells how well the gate paces there.

The simulator's own counters judge: 429s sent, and requests that arrived before an
announced ``Retry-After`` deadline (``early_requests``: what gets an IP banned).

``python -m benchmarks.efficiency [--quick] [--windows N]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import aiohttp
import anyio
import orjson

import eattest_async as ea
from eattest_async.simulator import SimulatorProcess

LATENCY = 0.02
WINDOW = 1.0
CONCURRENCY = 16
PAGES = {100: 100, 1000: 30}  # distinct pages by page size, cycled through, all cached
LIMITS = (20, 60, 200)
PAGE_SIZES = (100, 1000)


class TokenBucket:
    """The baseline: evenly spaced slots at ``rate`` requests/s (no burst)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.next = 0.0

    async def take(self) -> None:
        now = time.monotonic()
        slot = max(now, self.next)
        self.next = slot + self.interval
        await asyncio.sleep(slot - now)


async def baseline(sim: SimulatorProcess, limit: int, page_size: int, duration: float) -> int:
    """Pages answered in ``duration`` seconds, paced by :class:`TokenBucket` at 0.98 x."""
    async with aiohttp.ClientSession() as http:
        form = {
            "client_id": "ea-api-edge",
            "grant_type": "password",
            "username": sim.username,
            "password": sim.password,
        }
        async with http.post(sim.values["EATTEST_TOKEN_URL"], data=form) as response:
            token = (await response.json())["access_token"]
        url = f"{sim.base_url}/account/{sim.values['EATTEST_ACCOUNT_ID']}/dossiers"
        headers = {"Authorization": f"Bearer {token}"}
        bucket = TokenBucket(0.98 * limit / WINDOW)
        done = 0

        async def worker() -> None:
            nonlocal done
            while True:
                await bucket.take()
                params = {"page": str(done % PAGES[page_size]), "pageSize": str(page_size)}
                async with http.get(url, params=params, headers=headers) as response:
                    body = await response.read()
                    if response.status == 429:
                        await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                        continue
                    orjson.loads(body)
                    done += 1

        with anyio.move_on_after(duration):
            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return done


async def ours(
    sim: SimulatorProcess, page_size: int, duration: float, *, limits: ea.Limits | None = None
) -> tuple[int, Any]:
    """Pages answered in ``duration`` seconds through scans (raw), and the gate's snapshot.

    Counted on the simulator's answers, as the bucket counts its own: a scan delivers in
    page order, and when the time is up the pages answered behind a page still awaited
    (its 429 retried after the cooldown, say) are not delivered yet. Over a long scan that
    backlog is the same few pages; over 10 windows at 20/s it was up to 8 % of the run.
    """
    client = ea.Client(sim.environment, username=sim.username, password=sim.password, limits=limits)
    async with client:
        await client.account_id()  # sign in outside the timing
        before = (await sim.stats())["statuses"].get("200", 0)
        done = 0
        halfway = anyio.Event()

        async def scanner(second: bool) -> None:
            # Two scans, the second half a scan behind: one's start-up covers the other's tail.
            nonlocal done
            if second:
                await halfway.wait()
            while True:
                scan = client.dossiers.scan(
                    page_size=page_size, concurrency=CONCURRENCY // 2, raw=True
                )
                count = 0
                try:
                    async for _ in scan:
                        count += 1
                        if count == page_size:
                            count = 0
                            done += 1
                            if done >= PAGES[page_size] // 2:
                                halfway.set()
                except ea.EattestError:  # a page given up on: the scan starts over
                    continue

        async with anyio.create_task_group() as scans:
            scans.start_soon(scanner, False)
            scans.start_soon(scanner, True)
            await anyio.sleep(duration)
            answered = (await sim.stats())["statuses"].get("200", 0) - before
            scans.cancel_scope.cancel()
        # (The gate before issue 11 had no snapshot; the figures then come from the server.)
        core = getattr(client, "_core", client)
        gate = getattr(core, "gate", None) or getattr(core, "_gate", None)
        snapshot = gate.snapshot() if hasattr(gate, "snapshot") else None
    return answered, snapshot


async def warm(sim: SimulatorProcess, page_size: int) -> None:
    """Every page once, without a limit: the timed runs read them from the page cache."""
    await sim.set_faults(rate_limit=None)
    client = ea.Client(sim.environment, username=sim.username, password=sim.password)
    async with client:
        async for _ in client.dossiers.scan(page_size=page_size, concurrency=8, raw=True):
            pass


async def one_limit(limit: int, page_size: int, windows: int) -> dict[str, Any]:
    duration = windows * WINDOW
    allowed = limit / WINDOW
    results: dict[str, Any] = {}
    async with SimulatorProcess(
        "--dossiers",
        str(PAGES[page_size] * page_size),
        "--latency",
        str(LATENCY),
        "--page-cache-mb",
        str(max(64, PAGES[page_size] * page_size * 3 // 1000)),
        "--rate-limit",
        str(limit),
        "--rate-window",
        str(WINDOW),
    ) as sim:
        await warm(sim, page_size)
        ceilings: dict[str, float] = {}
        for name, unlimited in {
            "bucket": lambda: baseline(sim, 10**9, page_size, duration / 2),
            # Told a rate it never meets: no slow start to count against the ceiling.
            "ours": lambda: ours(sim, page_size, duration / 2, limits=ea.Limits(max_rate=1e6)),
        }.items():
            await sim.set_faults(rate_limit=None)
            await sim.reset()
            outcome = await unlimited()
            pages = outcome[0] if isinstance(outcome, tuple) else outcome
            ceilings[name] = pages / (duration / 2)
        results["ceilings (pages/s, no limit)"] = ceilings
        runs: dict[str, Any] = {
            "token bucket 0.98x": lambda: baseline(sim, limit, page_size, duration),
            "eattest_async, headers": lambda: ours(sim, page_size, duration),
            "eattest_async, no headers": lambda: ours(sim, page_size, duration),
        }
        for name, run in runs.items():
            await sim.set_faults(
                rate_limit=limit,
                rate_window=WINDOW,
                ratelimit_headers="none" if "no headers" in name else "draft",
            )
            await sim.reset()
            outcome = await run()
            pages, snapshot = outcome if isinstance(outcome, tuple) else (outcome, None)
            stats = await sim.stats()
            results[name] = {
                "efficiency": pages / duration / allowed,
                "pages": pages,
                "seconds": duration,
                "429s": stats["rate_limited"],
                "early requests": stats["early_requests"],
            }
            if snapshot is not None:
                results[name]["gate"] = {
                    "request_rate": snapshot.request_rate,
                    "limit": snapshot.limit,
                    "limit_source": snapshot.limit_source,
                    "cooldowns": snapshot.cooldowns,
                }
    return results


async def measure(*, quick: bool = False, windows: int = 10) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for page_size in PAGE_SIZES[:1] if quick else PAGE_SIZES:
        for limit in LIMITS:
            case = f"{limit}/s, pages of {page_size}"
            results[case] = await one_limit(limit, page_size, windows)
            print(f"{case}: done", file=sys.stderr, flush=True)
    return results


def rows(results: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(name, figure, target, met) for the benchmarks table."""
    out = []
    for case, runs in results.items():
        base = runs["token bucket 0.98x"]["efficiency"]
        ceilings = runs.get("ceilings (pages/s, no limit)", {})
        allowed = float(case.split("/s")[0]) / WINDOW
        for name, r in runs.items():
            if name.startswith("ceilings"):
                continue
            own = ceilings.get("bucket" if name.startswith("token") else "ours")
            figure = (
                f"{r['efficiency']:.3f} of allowed ({r['efficiency'] / base:.2f} x bucket), "
                f"{r['429s']} 429s, {r['early requests']} early"
            )
            if own is not None and own < allowed:
                # CPU-bound here: the limit is not what binds.
                share = r["pages"] / r["seconds"] / own
                figure += f"; CPU-bound: ceiling {own:.0f}/s, {share:.3f} of it"
            if name.endswith(", headers"):
                target = ">= 0.95, <= 1 429, 0 early"
                met = r["efficiency"] >= 0.95 and r["429s"] <= 1 and r["early requests"] == 0
            elif name.endswith("no headers"):
                target = ">= 0.90, <= 3 429s, 0 early"
                met = r["efficiency"] >= 0.90 and r["429s"] <= 3 and r["early requests"] == 0
            else:
                target, met = "", None
            out.append((f"10. limit {case}: {name}", figure, target, met))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.efficiency")
    parser.add_argument("--quick", action="store_true", help="pages of 100 only")
    parser.add_argument("--windows", type=int, default=10)
    args = parser.parse_args()
    results = asyncio.run(measure(quick=args.quick, windows=args.windows))
    print("| benchmark | figure | target | met |\n|---|---|---|---|")
    for name, figure, target, met in rows(results):
        verdict = "" if met is None else ("yes" if met else "NO")
        print(f"| {name} | {figure} | {target} | {verdict} |")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
