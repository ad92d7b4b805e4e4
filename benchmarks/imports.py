"""8. Import time: ``import eattest_async`` against ``import httpx``, in fresh interpreters.

Each sample is a new ``python -c`` process timing its own import (interpreter start-up not
counted); the statements alternate, and the median of each is kept. Public names load on
first use, so ``from eattest_async import Client`` (everything a first call needs: aiohttp,
attrs, cattrs) is measured too.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

STATEMENTS = {
    "eattest_async": "import eattest_async",
    "eattest_async.Client": "from eattest_async import Client",
    "httpx": "import httpx",
}
_PROBE = (
    "import time; started = time.perf_counter(); {statement}; print(time.perf_counter() - started)"
)


def import_seconds(statement: str) -> float:
    output = subprocess.run(
        [sys.executable, "-c", _PROBE.format(statement=statement)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent.parent,
    )
    return float(output.stdout.strip())


def measure(rounds: int = 9) -> dict[str, Any]:
    samples: dict[str, list[float]] = {name: [] for name in STATEMENTS}
    for _ in range(rounds):
        for name, statement in STATEMENTS.items():  # interleaved: noise hits all alike
            samples[name].append(import_seconds(statement))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    return {
        "seconds": medians,
        "ratio": medians["eattest_async"] / medians["httpx"],
        "ratio_client": medians["eattest_async.Client"] / medians["httpx"],
        "rounds": rounds,
    }


if __name__ == "__main__":
    print(measure())
