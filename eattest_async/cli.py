"""The ``eattest`` command line: demo, scan, download, create, whoami, simulator.

Exit codes: 0 ok, 1 API error, 2 usage, 3 authentication, 4 rate limit exhausted.
"""

from __future__ import annotations

import asyncio
import csv
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

try:
    import click
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise SystemExit('the command line needs its extra: pip install "eattest-async[cli]"') from exc

import anyio
import orjson

from . import (
    ApiError,
    AuthenticationError,
    Client,
    EattestError,
    Environment,
    InvalidInputError,
    RateLimitError,
    ScanError,
)
from ._converter import structure
from ._downloads import safe_filename
from ._pagination import Checkpoint, Scan, ScanProgress
from .models import Dossier, FileInfo, NewDossier
from .resources.dossiers import new_dossier_body
from .simulator import SimulatorProcess

EXIT_API, EXIT_USAGE, EXIT_AUTH, EXIT_RATE = 1, 2, 3, 4

err = Console(stderr=True)


def _fail(message: str, code: int) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise SystemExit(code)


def _exit_code(error: BaseException) -> int:
    cause = error.__cause__ if isinstance(error, ScanError) and error.__cause__ else error
    if isinstance(cause, AuthenticationError):
        return EXIT_AUTH
    if isinstance(cause, RateLimitError):
        return EXIT_RATE
    if isinstance(cause, InvalidInputError):
        return EXIT_USAGE
    return EXIT_API


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "{task.fields[items]} items  {task.fields[rate]:>7} items/s  "
            "retries {task.fields[retries]}  cooldown {task.fields[cooldown]}"
        ),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
        transient=False,
    )


def _updater(progress: Progress, task: Any) -> Callable[[ScanProgress], None]:
    def update(snapshot: ScanProgress) -> None:
        rate = snapshot.items / snapshot.elapsed if snapshot.elapsed else 0.0
        retries = ", ".join(f"{k}:{v}" for k, v in sorted(snapshot.retries.items())) or "0"
        cooldown = f"{snapshot.cooldown_remaining:.1f}s" if snapshot.cooldown_remaining else "-"
        progress.update(
            task,
            completed=snapshot.pages_done,
            total=snapshot.pages_total,
            items=snapshot.items,
            rate=f"{rate:,.0f}",
            retries=retries,
            cooldown=cooldown,
        )

    return update


# -- output ---------------------------------------------------------------------------------


def _flat(dossier: dict[str, Any]) -> dict[str, Any]:
    """One CSV row per dossier: scalars, the I001 state, document counts."""
    row = {k: v for k, v in dossier.items() if not isinstance(v, (list, dict))}
    indicators = dossier.get("indicators") or []
    row["I001"] = next(
        (i.get("state") for i in indicators if (i.get("indicatorCode") or i.get("code")) == "I001"),
        None,
    )
    documents = dossier.get("documents") or []
    row["documents"] = len(documents)
    row["documents_missing"] = sum(1 for d in documents if not d.get("present"))
    return row


class _Writer:
    """JSON lines (nested) or CSV (flat), written as items arrive; '-' is standard output."""

    def __init__(self, target: str, *, append: bool = False) -> None:
        self.target = target
        self.csv = target.endswith(".csv")
        self._append = append
        self._handle: TextIO | None = None
        self._csv: csv.DictWriter[str] | None = None

    def __enter__(self) -> _Writer:
        if self.target == "-":
            self._handle = sys.stdout
        else:
            self._handle = open(
                self.target, "a" if self._append else "w", encoding="utf-8", newline=""
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None and self._handle is not sys.stdout:
            self._handle.close()

    def write(self, item: dict[str, Any]) -> None:
        assert self._handle is not None
        if not self.csv:
            self._handle.write(orjson.dumps(item).decode() + "\n")
            return
        row = _flat(item)
        if self._csv is None:
            self._csv = csv.DictWriter(self._handle, fieldnames=list(row), extrasaction="ignore")
            if not self._append:  # a resumed file already has its header
                self._csv.writeheader()
        self._csv.writerow(row)

    def flush(self) -> None:
        assert self._handle is not None
        self._handle.flush()


# -- commands -------------------------------------------------------------------------------


@click.group()
@click.version_option(package_name="eattest-async")
def cli() -> None:
    """Scan, export and download from the e-Attestations API (or its simulator)."""


@cli.command()
@click.option("--dossiers", default=20_000, show_default=True, help="dossiers in the simulator")
@click.option("--concurrency", default=16, show_default=True)
@click.option("--page-size", default=100, show_default=True)
@click.option("--latency", default=0.03, show_default=True, help="simulated network latency (s)")
@click.option(
    "--rate-limit", default=60, show_default=True, help="requests per second the simulator allows"
)
@click.option("--out", default="dossiers.jsonl", show_default=True, type=click.Path(dir_okay=False))
def demo(
    dossiers: int, concurrency: int, page_size: int, latency: float, rate_limit: int, out: str
) -> None:
    """Scan every dossier of the embedded simulator, concurrently, within its rate limit."""
    asyncio.run(_demo(dossiers, concurrency, page_size, latency, rate_limit, out))


async def _demo(
    dossiers: int, concurrency: int, page_size: int, latency: float, rate_limit: int, out: str
) -> None:
    console = Console()
    console.print(
        f"Starting the simulator: {dossiers:,} dossiers, {latency * 1000:.0f} ms latency, "
        f"{rate_limit} requests/s per session (answered 429 beyond, no RateLimit headers)."
    )
    async with SimulatorProcess(
        "--dossiers",
        str(dossiers),
        "--latency",
        str(latency),
        "--rate-limit",
        str(rate_limit),
        "--rate-window",
        "1",
        "--no-ratelimit-headers",
    ) as sim:
        started = time.monotonic()
        complete = missing = total = 0
        seen: set[int] = set()
        async with Client(sim.environment, username=sim.username, password=sim.password) as client:
            with _progress(console) as progress, _Writer(out) as writer:
                task = progress.add_task(
                    "dossiers", total=None, items=0, rate="0", retries="0", cooldown="-"
                )
                scan = client.dossiers.scan(
                    page_size=page_size,
                    concurrency=concurrency,
                    raw=True,
                    on_progress=_updater(progress, task),
                )
                async for item in scan:
                    writer.write(item)
                    total += 1
                    seen.add(item["dossierId"])
                    indicators = item.get("indicators") or []
                    complete += any(
                        i.get("indicatorCode") == "I001" and i.get("state") for i in indicators
                    )
                    missing += sum(1 for d in item.get("documents") or [] if not d.get("present"))
            report = scan.report
        server = await sim.stats()
    elapsed = time.monotonic() - started
    table = Table(title="Dossier scan", show_header=False)
    once = len(seen) == total == dossiers
    table.add_row(
        "dossiers", f"{total:,} of {dossiers:,}, each exactly once: {'yes' if once else 'NO'}"
    )
    table.add_row("duty of care (I001) complete", f"{complete / total:.1%}" if total else "-")
    table.add_row("documents missing", f"{missing:,}")
    table.add_row(
        "pages", f"{report.pages_fetched} at {report.pages_fetched / elapsed:.1f} pages/s"
    )
    table.add_row(
        "429s honoured",
        f"{server['rate_limited']} (requests before a Retry-After deadline: "
        f"{server['early_requests']})",
    )
    table.add_row(
        "retries", ", ".join(f"{k}: {v}" for k, v in sorted(report.retries.items())) or "none"
    )
    table.add_row("time", f"{elapsed:.1f} s")
    table.add_row("written to", out)
    console.print(table)


def _environment(env: str, base_url: str | None, token_url: str | None) -> Environment:
    if base_url or token_url:
        if not (base_url and token_url):
            _fail("--base-url and --token-url go together", EXIT_USAGE)
        return Environment.custom(base_url=base_url or "", token_url=token_url or "")
    return Environment.PROD if env == "prod" else Environment.TEST


def _connection_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--env",
            "env",
            type=click.Choice(["test", "prod"]),
            envvar="EATTEST_ENV",
            default="test",
            show_default=True,
        ),
        click.option("--base-url", envvar="EATTEST_BASE_URL"),
        click.option("--token-url", envvar="EATTEST_TOKEN_URL"),
        click.option("--username", envvar="EATTEST_USERNAME"),
        click.option("--account-id", type=int, envvar="EATTEST_ACCOUNT_ID"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _credentials(username: str | None) -> tuple[str, str]:
    password = os.environ.get("EATTEST_PASSWORD")
    if not username:
        _fail("no username: --username or EATTEST_USERNAME", EXIT_USAGE)
    if not password:
        if not sys.stdin.isatty():
            _fail(
                "no password: set EATTEST_PASSWORD (passwords are never taken as a flag)",
                EXIT_USAGE,
            )
        password = click.prompt("password", hide_input=True)
    assert username is not None
    return username, password


@cli.command()
@_connection_options
def whoami(
    env: str,
    base_url: str | None,
    token_url: str | None,
    username: str | None,
    account_id: int | None,
) -> None:
    """The account behind the credentials and its subscriptions."""
    user, password = _credentials(username)
    environment = _environment(env, base_url, token_url)

    async def run() -> None:
        async with Client(
            environment, username=user, password=password, account_id=account_id
        ) as client:
            account = await client.account.get()
            lifetime = client.token_lifetime
        click.echo(f"account {account.id}: {account.name} ({account.company})")
        click.echo(f"subscription status: {account.subscription_status}")
        for sub in account.subscriptions:
            click.echo(
                f"  subscription {sub.key}: {sub.status} since {sub.start_subscription_date}"
            )
        if lifetime is not None:
            click.echo(f"token lifetime: {lifetime:.0f} s")

    _run(run)


@cli.command()
@click.argument("kind", type=click.Choice(["dossiers", "thirdparties"]))
@_connection_options
@click.option(
    "--out", default="-", show_default=True, help="FILE.jsonl, FILE.csv or - for standard output"
)
@click.option("--concurrency", default=8, show_default=True)
@click.option("--page-size", default=100, show_default=True)
@click.option("--monitored/--all", "monitored", default=None)
@click.option("--siren")
@click.option("--siret")
@click.option("--tva", help="EU VAT number")
@click.option("--company-id-type", type=click.Choice(["CIT001", "CIT002", "CIT003"]))
@click.option("--since", "state_last_change_date", help="changed since this date (YYYY-MM-DD)")
@click.option("--thirdparty-code", help="dossiers only")
@click.option("--reference", "dossier_reference", help="dossiers only")
@click.option(
    "--resume", "resume", type=click.Path(dir_okay=False), help="checkpoint file to resume from"
)
def scan(
    kind: str,
    env: str,
    base_url: str | None,
    token_url: str | None,
    username: str | None,
    account_id: int | None,
    out: str,
    concurrency: int,
    page_size: int,
    monitored: bool | None,
    siren: str | None,
    siret: str | None,
    tva: str | None,
    company_id_type: str | None,
    state_last_change_date: str | None,
    thirdparty_code: str | None,
    dossier_reference: str | None,
    resume: str | None,
) -> None:
    """Stream every dossier or third party to a file, as pages arrive.

    Ctrl-C leaves a valid partial file and a checkpoint (OUT.checkpoint.json) to resume from.
    """
    user, password = _credentials(username)
    environment = _environment(env, base_url, token_url)
    checkpoint_path = Path((out if out != "-" else kind) + ".checkpoint.json")
    resume_from = Checkpoint.from_json(orjson.loads(Path(resume).read_bytes())) if resume else None
    console = Console(stderr=True)

    async def run() -> None:
        filters: dict[str, Any] = {
            "monitored": monitored,
            "siren": siren,
            "siret": siret,
            "tva": tva,
            "company_id_type": company_id_type,
            "state_last_change_date": state_last_change_date,
        }
        if kind == "dossiers":
            filters.update(thirdparty_code=thirdparty_code, dossier_reference=dossier_reference)
        elif thirdparty_code or dossier_reference:
            _fail("--thirdparty-code and --reference filter dossiers only", EXIT_USAGE)
        async with Client(
            environment, username=user, password=password, account_id=account_id
        ) as client:
            resource = client.dossiers if kind == "dossiers" else client.thirdparties
            with (
                _progress(console) as progress,
                _Writer(out, append=resume_from is not None) as writer,
            ):
                task = progress.add_task(
                    kind, total=None, items=0, rate="0", retries="0", cooldown="-"
                )
                found: Scan[Any] = resource.scan(
                    page_size=page_size,
                    concurrency=concurrency,
                    raw=True,
                    resume_from=resume_from,
                    on_progress=_updater(progress, task),
                    **{k: v for k, v in filters.items() if v is not None},
                )
                key = "dossierId" if kind == "dossiers" else "thirdpartyId"
                # A resumed file may end with part of a page the checkpoint does not count yet.
                already = _ids_in(out, key) if resume_from is not None else set()
                try:
                    async for item in found:
                        if str(item.get(key)) not in already:
                            writer.write(item)
                finally:
                    writer.flush()
                    if not found.report.complete:
                        # Synchronously: this runs on Ctrl-C, where an await would be cancelled.
                        checkpoint_path.write_bytes(orjson.dumps(found.checkpoint().to_json()))  # noqa: ASYNC240
                        console.print(f"partial: checkpoint written to {checkpoint_path}")
        console.print(f"{found.report.items:,} {kind} in {found.report.elapsed:.1f} s")

    _run(run)


def _files_of(dossier: Dossier) -> list[tuple[int, int, FileInfo, str]]:
    """(dossier id, document id, file, document code) of every file of a dossier."""
    return [
        (dossier.dossier_id or 0, document.document_id or 0, file, document.document_code or "file")
        for document in dossier.documents
        for file in document.files
        if file.file_id is not None
    ]


@cli.command()
@_connection_options
@click.option("--dossier", "dossier_ids", type=int, multiple=True, help="a dossier id (repeatable)")
@click.option(
    "--from",
    "from_file",
    type=click.Path(exists=True, dir_okay=False),
    help="dossiers as JSON lines (what `eattest scan dossiers` writes)",
)
@click.option(
    "--to", "dest", required=True, type=click.Path(file_okay=False), help="destination folder"
)
@click.option("--concurrency", default=8, show_default=True)
def download(
    env: str,
    base_url: str | None,
    token_url: str | None,
    username: str | None,
    account_id: int | None,
    dossier_ids: tuple[int, ...],
    from_file: str | None,
    dest: str,
    concurrency: int,
) -> None:
    """Every file of the dossiers, concurrently, into DEST/<dossier id>/.

    Resumable: a file already there with its announced size is skipped. Each download is
    atomic: a cut or failed one leaves nothing behind.
    """
    if not dossier_ids and not from_file:
        _fail("say which dossiers: --dossier ID (repeatable) or --from FILE.jsonl", EXIT_USAGE)
    user, password = _credentials(username)
    environment = _environment(env, base_url, token_url)
    root = Path(dest)

    async def run() -> None:
        async with Client(
            environment, username=user, password=password, account_id=account_id
        ) as client:
            dossiers: list[Dossier] = [await client.dossiers.get(i) for i in dossier_ids]
            if from_file:
                with open(from_file, "rb") as lines:  # noqa: ASYNC230 - read once, before any request
                    dossiers += [
                        structure(orjson.loads(line), Dossier) for line in lines if line.strip()
                    ]
            files = [f for d in dossiers for f in _files_of(d)]
            done = skipped = 0
            failures: list[str] = []
            limiter = anyio.CapacityLimiter(concurrency)

            async def one(dossier_id: int, document_id: int, info: FileInfo, code: str) -> None:
                nonlocal done, skipped
                folder = root / str(dossier_id)
                name = safe_filename(f"{code}_{info.file_id}.pdf", f"{info.file_id}.pdf")
                target = folder / name
                if (
                    target.exists()
                    and info.file_size is not None
                    and target.stat().st_size == info.file_size
                ):
                    skipped += 1
                    return
                async with limiter:
                    try:
                        await client.files.download(
                            dossier_id,
                            document_id,
                            info.file_id or 0,
                            dest=folder,
                            filename=name,
                            expected_size=info.file_size,
                        )
                        done += 1
                    except EattestError as error:
                        failures.append(f"dossier {dossier_id} file {info.file_id}: {error}")

            async with anyio.create_task_group() as group:
                for entry in files:
                    group.start_soon(one, *entry)
        click.echo(
            f"{done} downloaded, {skipped} already there, {len(failures)} failed "
            f"({len(files)} files of {len(dossiers)} dossiers) into {root}"
        )
        for failure in failures:
            err.print(f"[red]failed:[/red] {failure}", highlight=False)
        if failures:
            raise SystemExit(EXIT_API)

    _run(run)


_CSV_FIELDS = {
    "companyIdType": "company_id_type",
    "companyIdValue": "company_id_value",
    "dossierReference": "dossier_reference",
    "thirdpartyCode": "thirdparty_code",
    "description": "description",
    "purchasingCategory": "purchasing_category",
    "expirationDate": "expiration_date",
    "requiredDocuments": "required_documents",
    "thirdpartyEmail": "thirdparty_email",
    "userInCharge": "user_in_charge",
}
_LISTS = {"required_documents", "thirdparty_email", "user_in_charge"}


def _new_dossier(row: dict[str, str]) -> NewDossier:
    values: dict[str, Any] = {}
    for column, field in _CSV_FIELDS.items():
        raw = (row.get(column) or "").strip()
        if field in _LISTS:
            values[field] = tuple(v.strip() for v in raw.split(";") if v.strip())
        elif raw:
            values[field] = raw
    for required in ("company_id_type", "company_id_value", "dossier_reference"):
        values.setdefault(required, "")
    return NewDossier(**values)


@cli.command()
@_connection_options
@click.option(
    "--csv",
    "csv_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="one dossier per row; columns " + ", ".join(_CSV_FIELDS) + " (lists split by ';')",
)
@click.option(
    "--wait/--no-wait", default=True, show_default=True, help="wait for the creation processes"
)
@click.option("--out", default=None, help="result CSV (default: CSV.results.csv)")
@click.option(
    "--timeout",
    "wait_timeout",
    default=300.0,
    show_default=True,
    help="seconds to wait per process",
)
def create(
    env: str,
    base_url: str | None,
    token_url: str | None,
    username: str | None,
    account_id: int | None,
    csv_path: str,
    wait: bool,
    out: str | None,
    wait_timeout: float,
) -> None:
    """Create dossiers from a CSV. Every row is checked first; one bad row and nothing is sent."""
    with open(csv_path, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    problems: list[str] = []
    dossiers: list[NewDossier] = []
    for number, row in enumerate(rows, start=2):  # row 1 is the header
        try:
            dossier = _new_dossier(row)
            new_dossier_body(dossier)
            dossiers.append(dossier)
        except InvalidInputError as error:
            problems.append(f"row {number}: {error}")
    if problems:
        for problem in problems:
            err.print(f"[red]invalid:[/red] {problem}", highlight=False)
        _fail(f"{len(problems)} of {len(rows)} rows are invalid; nothing was sent", EXIT_USAGE)
    user, password = _credentials(username)
    environment = _environment(env, base_url, token_url)
    results_path = Path(out or (csv_path.rsplit(".", 1)[0] + ".results.csv"))

    async def run() -> None:
        results: list[dict[str, Any]] = []
        async with Client(
            environment, username=user, password=password, account_id=account_id
        ) as client:
            # Every creation is sent first (a POST, never repeated), then all are awaited together.
            for number, dossier in enumerate(dossiers, start=2):
                result: dict[str, Any] = {
                    "row": number,
                    "dossierReference": dossier.dossier_reference,
                }
                try:
                    result["processId"] = (await client.dossiers.create(dossier)).process_id
                except EattestError as error:
                    codes = " ".join(error.codes) if isinstance(error, ApiError) else ""
                    result.update(success=False, codes=codes, error=str(error))
                results.append(result)

            async def follow(result: dict[str, Any]) -> None:
                try:
                    status = await client.processes.wait(
                        result["processId"], timeout=wait_timeout, raise_on_failure=False
                    )
                    result.update(
                        success=status.success,
                        dossierId=status.dossier_id,
                        codes=" ".join(m.code or "" for m in status.errors),
                    )
                except EattestError as error:
                    result.update(success=False, error=str(error))

            if wait:
                async with anyio.create_task_group() as group:
                    for pending in results:
                        if "processId" in pending:
                            group.start_soon(follow, pending)
        columns = ["row", "dossierReference", "processId", "success", "dossierId", "codes", "error"]
        with results_path.open("w", encoding="utf-8", newline="") as handle:  # noqa: ASYNC230 - all done
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(results)
        failed = sum(1 for r in results if r.get("success") is False)
        click.echo(f"{len(results)} dossiers sent, {failed} failed; results in {results_path}")
        if failed:
            raise SystemExit(EXIT_API)

    _run(run)


def _ids_in(path: str, key: str) -> set[str]:
    """The ids already written to an output file (JSON lines or CSV)."""
    if path == "-" or not Path(path).exists():
        return set()
    with open(path, encoding="utf-8", newline="") as handle:
        if path.endswith(".csv"):
            return {row.get(key, "") for row in csv.DictReader(handle)}
        ids = set()
        for line in handle:
            try:
                ids.add(str(orjson.loads(line).get(key)))
            except orjson.JSONDecodeError:
                continue  # a line cut by the interruption
        return ids


def _run(coroutine: Callable[[], Any]) -> None:
    try:
        asyncio.run(coroutine())
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except EattestError as error:
        code = " ".join(error.codes) + " " if isinstance(error, ApiError) and error.codes else ""
        _fail(f"{code}{error}", _exit_code(error))


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def simulator(ctx: click.Context) -> None:
    """Serve the embedded simulator (options: `python -m eattest_async.simulator --help`)."""
    from .simulator.__main__ import main as simulator_main

    sys.exit(simulator_main(ctx.args))


def main(argv: Sequence[str] | None = None) -> None:
    level = os.environ.get("EATTEST_LOG")  # debug, info, warning: the library's log on stderr
    if level:
        logging.basicConfig(level=level.upper(), format="%(levelname)s %(name)s: %(message)s")
    cli.main(args=list(argv) if argv is not None else None, prog_name="eattest")
