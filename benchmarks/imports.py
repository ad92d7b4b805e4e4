"""8. Import time: ``import eattest_async`` against ``import httpx``, in fresh interpreters.

Each sample is a new ``python -c`` process timing its own import (interpreter start-up not
counted); the two modules alternate, and the median of each is kept.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

MODULES = ("eattest_async", "httpx")
_PROBE = (
    "import time; started = time.perf_counter(); import {module}; "
    "print(time.perf_counter() - started)"
)


def import_seconds(module: str) -> float:
    output = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent.parent,
    )
    return float(output.stdout.strip())


def measure(rounds: int = 9) -> dict[str, Any]:
    samples: dict[str, list[float]] = {module: [] for module in MODULES}
    for _ in range(rounds):
        for module in MODULES:  # interleaved: noise hits both alike
            samples[module].append(import_seconds(module))
    medians = {module: statistics.median(values) for module, values in samples.items()}
    return {
        "seconds": medians,
        "ratio": medians["eattest_async"] / medians["httpx"],
        "rounds": rounds,
    }


if __name__ == "__main__":
    print(measure())
