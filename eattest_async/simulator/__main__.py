"""``python -m eattest_async.simulator``: serve the simulator until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

from . import DIALECTS, Simulator


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="eattest simulator", description=__doc__)
    parser.add_argument(
        "--port", type=int, default=8080, help="TCP port on 127.0.0.1 (0: any free port)"
    )
    parser.add_argument(
        "--dossiers", type=int, default=1000, help="number of dossiers (generated on demand)"
    )
    parser.add_argument("--thirdparties", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds added to each API response"
    )
    parser.add_argument(
        "--rate-limit", type=int, default=None, help="requests per window per session"
    )
    parser.add_argument("--rate-window", type=float, default=60.0)
    parser.add_argument(
        "--no-ratelimit-headers",
        action="store_true",
        help="answer 429 without RateLimit-* headers to pace by",
    )
    parser.add_argument(
        "--password", default=None, help="fixed password (default: random, printed)"
    )
    parser.add_argument(
        "--page-cache-mb",
        type=int,
        default=0,
        help="keep rendered dossier pages (for benchmarks of a client's CPU)",
    )
    parser.add_argument(
        "--dialect",
        choices=DIALECTS,
        default="captured",
        help="captured: as the real service was captured answering (default); "
        "spec: exactly the v1.1 OpenAPI schemas",
    )
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    simulator = Simulator(
        seed=args.seed,
        dossiers=args.dossiers,
        thirdparties=args.thirdparties,
        latency=args.latency,
        port=args.port,
        password=args.password,
        page_cache_mb=args.page_cache_mb,
        dialect=args.dialect,
    )
    simulator.faults.rate_limit = args.rate_limit
    simulator.faults.rate_window = args.rate_window
    if args.no_ratelimit_headers:
        simulator.faults.ratelimit_headers = "none"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with simulator:
        print(f"e-Attestations simulator on {simulator.origin}", flush=True)
        print(f"  EATTEST_BASE_URL={simulator.base_url}")
        print(f"  EATTEST_TOKEN_URL={simulator.token_url}")
        print(f"  EATTEST_USERNAME={simulator.username}")
        print(f"  EATTEST_PASSWORD={simulator.password}")
        print(f"  EATTEST_ACCOUNT_ID={simulator.account_id}")
        print(f"  admin: {simulator.origin}/_simulator/faults  /_simulator/stats", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"cannot serve: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
