"""``nox -s bench`` / ``python -m benchmarks``: every figure, as a markdown table and JSON.

Figures are ratios measured side by side in one run (the machine is shared and noisy):
medians of interleaved rounds, never absolute-time targets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import cpu, efficiency, multiprocess, scan, tokens

RESULTS = Path(__file__).parent / "results" / "latest.json"


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def memory(dossiers: int) -> dict[str, Any]:
    """In a process of its own, so that the peak RSS is the scan's alone."""
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", "--dossiers", str(dossiers)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent.parent,
    )
    return json.loads(output.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def table(results: dict[str, Any]) -> str:
    lines = ["| benchmark | figure | target | met |", "|---|---|---|---|"]

    def row(name: str, figure: str, target: str, met: bool | None) -> None:
        lines.append(
            f"| {name} | {figure} | {target} | {'' if met is None else ('yes' if met else 'NO')} |"
        )

    for name, r in results["io_bound"].items():
        row(
            f"1. I/O-bound scan {name}",
            f"{r['ratio']:.3f} x ideal ({r['seconds']:.3f} s; "
            f"{r['ratio_to_planned_bound']:.3f} x planned bound)",
            "<= 1.15",
            r["ratio"] <= 1.15,
        )
    peers = results["peers"]
    for name, r in peers.items():
        if name != "eattest_async c=16":
            row(
                f"2. {name}",
                f"{r['seconds']:.3f} s = {r['vs eattest_async c=16']:.2f} x eattest_async c=16",
                ">= 12 x for (a)" if name.startswith("(a)") else "",
                r["vs eattest_async c=16"] >= 12 if name.startswith("(a)") else None,
            )
    for name, r in results["peers_rate_limited"].items():
        row(
            f"2b. rate limited: {name}",
            f"{r['429s received']} 429s, {r['early requests']} early requests, "
            f"{r['pages lost']} pages lost",
            "0 early (eattest_async)",
            r["early requests"] == 0 if name.startswith("eattest") else None,
        )
    for page, figures in results["cpu"].items():
        floor = figures["hand-written attrs (floor)"]
        for name, value in figures.items():
            if name == "bytes per dossier":
                continue
            target = "<= 1.25 x floor" if name == "eattest_async" else ""
            row(
                f"3. CPU, {page}: {name}",
                f"{value:.1f} us/dossier ({value / floor:.2f} x floor)",
                target,
                value / floor <= 1.25 if name == "eattest_async" else None,
            )
    r = results["cpu_bound"]
    row(
        "4. CPU-bound scan (1000 pages, models)",
        f"{r['ratio']:.2f} x pages x per-page cost "
        f"({r['seconds']:.2f} s; {r['per_page_cost'] * 1000:.2f} ms/page)",
        "<= 1.4",
        r["ratio"] <= 1.4,
    )
    m = results["memory"]
    streamed = f"{m['dossiers']:,} dossiers (pages of {m['page_size']}, c={m['concurrency']})"
    row(
        f"5. streaming {streamed}",
        f"peak RSS +{m['peak_over_baseline_mb']:.1f} MB over baseline, in {m['seconds']:.0f} s",
        "<= 60 MB",
        m["peak_over_baseline_mb"] <= 60,
    )
    row("5. materialised", f"{m['materialised_kb_per_dossier']:.2f} KB per dossier", "", None)
    t = results["tokens"]
    row(
        "6. token single-flight",
        f"{t['calls']} concurrent calls at expiry -> {t['token_requests']} token request",
        "= 1",
        t["token_requests"] == 1,
    )
    if "efficiency" in results:
        for name, figure, target, met in efficiency.rows(results["efficiency"]):
            row(name, figure, target, met)
    if "multiprocess" in results:
        for name, figure, target, met in multiprocess.rows(results["multiprocess"]):
            row(name, figure, target, met)
    return "\n".join(lines)


async def run_async(rounds: int, quick: bool) -> dict[str, Any]:
    return {
        "io_bound": await scan.io_bound(rounds),
        "peers": await scan.peers(rounds),
        "peers_rate_limited": await scan.peers_rate_limited(),
        "cpu_bound": await scan.cpu_bound(rounds),
        "tokens": await tokens.single_flight(),
        "efficiency": await efficiency.measure(quick=quick),
        "multiprocess": await multiprocess.measure(quick=quick),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dossiers", type=int, default=1_000_000, help="for the memory benchmark")
    parser.add_argument(
        "--quick", action="store_true", help="efficiency under a limit: pages of 100 only"
    )
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": machine()}
    results.update(asyncio.run(run_async(args.rounds, args.quick)))
    results["cpu"] = cpu.measure()
    results["memory"] = memory(args.dossiers)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"machine: {results['machine']}\n")
    print(table(results))
    print(f"\n(JSON: {RESULTS})")


if __name__ == "__main__":
    main()
