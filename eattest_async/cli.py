"""The ``eattest`` command line."""

from __future__ import annotations

import sys
from collections.abc import Sequence

try:
    import click
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise SystemExit('the command line needs its extra: pip install "eattest-async[cli]"') from exc


@click.group()
@click.version_option(package_name="eattest-async")
def cli() -> None:
    """Scan, export and download from the e-Attestations API (or its simulator)."""


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def simulator(ctx: click.Context) -> None:
    """Serve the embedded simulator (see --help of `python -m eattest_async.simulator`)."""
    from .simulator.__main__ import main as simulator_main

    sys.exit(simulator_main(ctx.args))


def main(argv: Sequence[str] | None = None) -> None:
    cli.main(args=list(argv) if argv is not None else None, prog_name="eattest")
