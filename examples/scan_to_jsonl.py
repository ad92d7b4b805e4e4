"""Recipe: every monitored dossier to a JSON-lines file, concurrently, with a report."""

from __future__ import annotations

import asyncio
import sys

import orjson
from _connect import connect


async def main(path: str) -> None:
    async with connect(dossiers=5_000) as client:
        scan = client.dossiers.scan(monitored=True, page_size=200, concurrency=8, raw=True)
        with open(path, "wb") as out:  # noqa: ASYNC230 - a local file, written as pages arrive
            async with scan:
                async for dossier in scan:
                    out.write(orjson.dumps(dossier) + b"\n")
        report = scan.report
        print(f"{report.items} dossiers in {report.pages_fetched} pages, {report.elapsed:.1f} s")
        print(f"written to {path}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "monitored.jsonl"))
