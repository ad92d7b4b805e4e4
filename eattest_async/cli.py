"""The ``eattest`` command line: demo, scan, download, create, whoami, simulator.

Exit codes: 0 ok, 1 API error (or some items failed, each reported), 2 usage (bad flags,
files, encodings, paths, environment), 3 authentication, 4 rate limit exhausted,
130 interrupted, 141 output closed (``| head``). Every error is one line on stderr;
``--debug`` shows the traceback.

Imports are lazy: ``eattest --help`` loads neither the HTTP machinery nor the simulator.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import re
import sys
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO, TypeVar

try:
    import click
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise SystemExit('the command line needs its extra: pip install "eattest-async[cli]"') from exc

import orjson

from ._cli_csv import CsvError, MiB, open_local, read_capped, spreadsheet_safe
from ._exceptions import (
    ApiError,
    AuthenticationError,
    EattestError,
    InvalidInputError,
    RateLimitError,
    ScanError,
)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from ._client import Client
    from ._config import Environment
    from ._pagination import Checkpoint, ScanProgress
    from .models import Dossier, FileInfo, NewDossier
    from .models.scans import Watermark

T = TypeVar("T")

EXIT_API, EXIT_USAGE, EXIT_AUTH, EXIT_RATE, EXIT_INTERRUPTED = 1, 2, 3, 4, 130
EXIT_PIPE = 141  # what a shell reports for a program stopped by SIGPIPE

_debug = False  # --debug (or EATTEST_DEBUG=1): tracebacks instead of one-line errors


def _console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr)


# What a terminal would obey rather than show: C0 and C1 controls (ESC starts colour,
# cursor, clipboard (OSC 52) and hyperlink (OSC 8) sequences), DEL, and the bidi controls
# that reorder what is shown (a message's end would look like its beginning).
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _printable(text: object) -> str:
    r"""``text`` (from a server, a file, an argument) on one line, safe for a terminal:
    whitespace runs become one space, every other control character a visible escape
    (``\x1b``, ``\u202e``), so it is shown and never obeyed."""
    return _UNPRINTABLE.sub(_visible, " ".join(str(text).split()))


def _visible(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class _PrintableFormatter(logging.Formatter):
    """The library's log (``EATTEST_LOG``) as the CLI shows everything else: a record's
    message on one line, its traceback lines indented, server text shown and never obeyed
    (a message cannot forge a record of its own nor steer the terminal)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return _printable(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(stack_info)


def _indented(text: str) -> str:
    return "\n".join("  " + _UNPRINTABLE.sub(_visible, line) for line in text.splitlines())


def _say(message: str, *, label: str = "error", color: str = "red") -> None:
    """One line on stderr, whatever the message holds (no markup, no wrapping, no control
    characters: every message goes through here)."""
    click.echo(click.style(f"{label}:", fg=color) + " " + _printable(message), err=True)


def _output_closed() -> NoReturn:
    """Whoever read our output went away (``eattest scan ... | head``): stop quietly, as a
    program killed by SIGPIPE would, and keep Python from complaining at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise SystemExit(EXIT_PIPE)


def _fail(message: str, code: int) -> NoReturn:
    if _debug and sys.exc_info()[1] is not None:
        import traceback

        traceback.print_exc()  # --debug: where the error came from, then the one line
    _say(message)
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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

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


def _csv_columns(kind: str) -> list[str]:
    """The columns of ``scan KIND --out FILE.csv``, the same in every run, so that a resumed
    run appends under the header of the first: the model's scalar fields under their API
    names (their other spellings too: the service sends some fields under two names), then,
    for dossiers, the I001 state and the document counts (from the nested lists)."""
    import attrs

    from ._converter import _camel
    from .models import Dossier, Thirdparty

    columns: list[str] = []
    for field in attrs.fields(Dossier if kind == "dossiers" else Thirdparty):
        if field.metadata.get("envelope") or field.metadata.get("empty_on_null"):
            continue  # the answer's messages, or a list: not one cell
        columns += [field.metadata.get("key") or _camel(field.name)]
        columns += field.metadata.get("aliases", ())
    return [*columns, *_DERIVED] if kind == "dossiers" else columns


_DERIVED = ("I001", "documents", "documents_missing")
_SUMMED_UP = frozenset({"indicators", "documents"})  # a dossier's lists, in _DERIVED


def _flat(item: dict[str, Any], dossier: bool) -> dict[str, Any]:
    """One CSV row per item: its fields as they are (a list or an object where a value was
    due is written as JSON text: nothing is lost), and for a dossier the I001 state and
    document counts.

    Whatever shape the service sends (a list where an object was due, lists of lists),
    this never fails: what is not an object counts as nothing known.
    """
    row = {
        k: orjson.dumps(v).decode() if isinstance(v, (list, dict)) else v
        for k, v in item.items()
        if not (dossier and k in _SUMMED_UP)
    }
    if not dossier:
        return row
    indicators = item.get("indicators")
    row["I001"] = next(
        (
            i.get("state")
            for i in (indicators if isinstance(indicators, list) else [])
            if isinstance(i, dict) and (i.get("indicatorCode") or i.get("code")) == "I001"
        ),
        None,
    )
    documents = item.get("documents")
    documents = documents if isinstance(documents, list) else []
    row["documents"] = len(documents)
    row["documents_missing"] = sum(
        1 for d in documents if not (isinstance(d, dict) and d.get("present"))
    )
    return row


_HEADER_LIMIT = 1 * MiB  # a header of ours is about 500 bytes


def _csv_header(path: str, key: str) -> list[str] | None:
    """The header of a CSV an earlier run wrote, to append under it; None when there is none
    yet (no file, an empty one, a pipe, a first line a kill cut). CsvError for a file that
    is not such an output (no ``key`` column): appending would corrupt someone's file."""
    if path == "-" or not Path(path).is_file():
        return None
    with open_local(path, "the output") as handle:
        line = handle.readline(_HEADER_LIMIT + 1)
    if not line.endswith(b"\n"):
        if len(line) > _HEADER_LIMIT:
            raise CsvError(f"{path} is not an output of eattest scan (its first line is huge)")
        return None  # empty, or cut by a kill: the cut line is dropped, the header written
    header = next(csv.reader([line.decode("utf-8", errors="replace").rstrip("\r\n")]), [])
    if key not in header:
        raise CsvError(
            f"{path} has no {key} column: not an output of this scan, appending would mix "
            "two files; choose another --out"
        )
    return header


def _csv_header_or_fail(path: str, key: str) -> list[str] | None:
    try:
        return _csv_header(path, key)
    except CsvError as error:
        _fail(f"cannot append to {path}: {error}", EXIT_USAGE)
    except OSError as error:
        _fail(f"cannot read {path}: {error.strerror or error}", EXIT_USAGE)


class _Writer:
    """JSON lines (nested) or CSV (flat), written as items arrive; '-' is standard output.

    A CSV has the fixed columns of its kind (``_csv_columns``); appended to, the header
    already in the file. Fields of an item outside them are counted (``outside``), to say.
    """

    def __init__(self, target: str, *, append: bool = False, kind: str = "dossiers") -> None:
        self.target = target
        self.csv = target.endswith(".csv")
        self.kind = kind
        self.outside: dict[str, int] = {}  # field -> items that had it, not in the CSV
        self.items_outside = 0
        self.rows = 0  # CSV rows this run wrote
        self._append = append
        self._handle: TextIO | None = None
        self._csv: csv.DictWriter[str] | None = None
        self._columns: frozenset[str] = frozenset()

    def __enter__(self) -> _Writer:
        header = None
        if self.csv and self._append:
            header = _csv_header_or_fail(self.target, _ID_KEY[self.kind])
        if self.target == "-":
            self._handle = sys.stdout
        else:
            try:
                self._handle = open(
                    self.target, "a" if self._append else "w", encoding="utf-8", newline=""
                )
            except OSError as error:
                _fail(f"cannot write {self.target}: {error.strerror or error}", EXIT_USAGE)
        if self.csv:
            fieldnames = header or _csv_columns(self.kind)
            self._columns = frozenset(fieldnames)
            self._csv = csv.DictWriter(self._handle, fieldnames=fieldnames, extrasaction="ignore")
            # A resumed file has its header, unless a kill left it empty.
            self._header_due = header is None and (not self._append or self._handle.tell() == 0)
        return self

    _header_due = False

    @staticmethod
    def check(target: str, *, kept: str | None = None) -> None:
        """Fail now (before signing in) if ``target`` cannot be written; changes nothing.

        ``kept``: this run would write the file from its start, and what to do instead. A
        file already there with something in it (the user's, an earlier run's) is kept.
        """
        if target == "-":
            return
        path = Path(target)
        with contextlib.suppress(OSError):
            if kept is not None and path.is_file() and path.stat().st_size > 0:
                _fail(f"{target} exists and is kept: {kept}", EXIT_USAGE)
        try:
            if path.is_dir():
                raise IsADirectoryError(21, "is a folder; --out names a file")
            existed = path.exists()
            with open(path, "a", encoding="utf-8"):
                pass
            if not existed:
                path.unlink()
        except OSError as error:
            _fail(f"cannot write {target}: {error.strerror or error}", EXIT_USAGE)

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None and self._handle is not sys.stdout:
            try:
                self._handle.close()
            except OSError as error:
                if self.whole:  # else the failure was already reported
                    self.whole = False
                    raise OSError(error.errno, error.strerror, self.target) from None

    whole = True  # False once a write failed: the file then lacks items (a full disk)

    def write(self, item: dict[str, Any]) -> None:
        assert self._handle is not None
        try:
            if self._csv is None:
                self._handle.write(orjson.dumps(item).decode() + "\n")
                return
            if self._header_due:
                self._csv.writeheader()
                self._header_due = False
            # Cells a spreadsheet would run as formulas are made text (_cli_csv).
            row = {
                spreadsheet_safe(k): spreadsheet_safe(v)
                for k, v in _flat(item, self.kind == "dossiers").items()
            }
            left = [k for k, v in row.items() if k not in self._columns and v is not None]
            if left:
                self.items_outside += 1
                for k in left:
                    self.outside[k] = self.outside.get(k, 0) + 1
            self._csv.writerow(row)
            self.rows += 1
        except OSError as error:
            self.whole = False
            if isinstance(error, BrokenPipeError):
                raise
            raise OSError(error.errno, error.strerror, self.target) from None

    def say_outside(self) -> None:
        """One line on stderr if some items had fields the CSV has no column for."""
        if not self.items_outside:
            return
        names = sorted(self.outside, key=lambda k: (-self.outside[k], k))
        shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        _say(
            f"{self.items_outside:,} of the {self.rows:,} {self.kind} have fields "
            f"{self.target} has no column for, left out of it: {shown} "
            "(a .jsonl --out keeps every field)",
            label="warning",
            color="yellow",
        )

    def flush(self, *, sync: bool = False) -> None:
        """Hand what was written to the system (``sync``: to the disk)."""
        assert self._handle is not None
        try:
            self._handle.flush()
            if sync and self._handle is not sys.stdout:
                os.fsync(self._handle.fileno())
        except OSError as error:
            self.whole = False
            if isinstance(error, BrokenPipeError):
                raise
            raise OSError(error.errno, error.strerror, self.target) from None


_ID_KEY = {"dossiers": "dossierId", "thirdparties": "thirdpartyId"}


def _write_file_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` all or nothing: a kill leaves the old or the new file.

    Synchronous on purpose: it runs on Ctrl-C too, where an await would be cancelled.
    """
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def _describe(error: BaseException) -> tuple[str, int]:
    """One line and an exit code for what escaped a command."""
    if isinstance(error, CsvError):
        return str(error), EXIT_USAGE
    if isinstance(error, EattestError):
        code = " ".join(error.codes) + " " if isinstance(error, ApiError) and error.codes else ""
        return f"{code}{error}", _exit_code(error)
    if isinstance(error, OSError):
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror or error}", EXIT_API
    grouped = getattr(error, "exceptions", None)  # an exception group of one
    if isinstance(grouped, tuple) and len(grouped) == 1:
        return _describe(grouped[0])
    return f"unexpected {type(error).__name__}: {error} (--debug shows where)", EXIT_API


class _Group(click.Group):
    """What a user can cause becomes one line and an exit code; a traceback only with --debug."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except BrokenPipeError:
            _output_closed()
        except KeyboardInterrupt:
            if _debug:
                raise
            _say("interrupted")
            raise SystemExit(EXIT_INTERRUPTED) from None
        except Exception as error:
            if _debug:
                raise
            message, code = _describe(error)
            _fail(message, code)


# -- commands -------------------------------------------------------------------------------


@click.group(cls=_Group)
@click.version_option(package_name="eattest-async", prog_name="eattest")
@click.option(
    "--debug",
    is_flag=True,
    envvar="EATTEST_DEBUG",
    help="show the Python traceback of an error (for a bug report)",
)
def cli(debug: bool) -> None:
    """Scan, export and download from the e-Attestations API (or its simulator).

    Shell completion (bash): eval "$(_EATTEST_COMPLETE=bash_source eattest)"
    (zsh: zsh_source, fish: fish_source).
    """
    global _debug
    _debug = debug


_CONCURRENCY = click.IntRange(1, 256)
_PAGE_SIZE = click.IntRange(1, 10_000)
_MAX_MARGIN_SECONDS = 366 * 86_400  # the library's MAX_MARGIN (_sync: not imported at start)


@cli.command()
@click.option(
    "--dossiers",
    default=20_000,
    show_default=True,
    type=click.IntRange(1),
    help="dossiers in the simulator",
)
@click.option("--concurrency", default=16, show_default=True, type=_CONCURRENCY)
@click.option("--page-size", default=100, show_default=True, type=_PAGE_SIZE)
@click.option(
    "--latency",
    default=0.03,
    show_default=True,
    type=click.FloatRange(0),
    help="simulated network latency (s)",
)
@click.option(
    "--rate-limit",
    default=60,
    show_default=True,
    type=click.IntRange(1),
    help="requests per second the simulator allows",
)
@click.option("--out", default="dossiers.jsonl", show_default=True, type=click.Path(dir_okay=False))
@click.option("--overwrite", is_flag=True, help="replace OUT if it exists (default: 'OUT (1)')")
def demo(
    dossiers: int,
    concurrency: int,
    page_size: int,
    latency: float,
    rate_limit: int,
    out: str,
    overwrite: bool,
) -> None:
    """Scan every dossier of the embedded simulator, concurrently, within its rate limit.

    A file already at OUT is kept: the demo writes 'OUT (1)', 'OUT (2)'... (--overwrite
    replaces it), so that it runs again and again, and never over a user's file."""
    if not overwrite:
        out = _free_name(out)
    _Writer.check(out)
    _run(lambda: _demo(dossiers, concurrency, page_size, latency, rate_limit, out))


def _free_name(target: str) -> str:
    """``target``, or the first of ``target (1)``, ``(2)``... with nothing in it yet."""
    if target == "-":
        return target
    from ._downloads import numbered

    path = Path(target)
    for number in range(1000):
        candidate = path.with_name(numbered(path.name, number))
        if not candidate.exists() or (candidate.is_file() and candidate.stat().st_size == 0):
            return str(candidate)
    _fail(f"{target}: 1000 files of that name already; name another --out", EXIT_USAGE)


async def _demo(
    dossiers: int, concurrency: int, page_size: int, latency: float, rate_limit: int, out: str
) -> None:
    from rich.table import Table

    from ._client import Client
    from .simulator import SimulatorProcess

    console = _console()
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
            rate = client.rate
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
        "rate limit used",
        f"{rate.request_rate:.1f} requests/s of {rate_limit} allowed "
        f"({rate.request_rate / rate_limit:.0%}); pacing by the limit "
        + (f"{rate.limit_source}: {rate.limit:.1f}/s" if rate.limit else "still unknown"),
    )
    table.add_row(
        "retries", ", ".join(f"{k}: {v}" for k, v in sorted(report.retries.items())) or "none"
    )
    table.add_row("time", f"{elapsed:.1f} s")
    table.add_row("written to", out)
    console.print(table)


def _environment(env: str, base_url: str | None, token_url: str | None) -> Environment:
    from ._config import Environment
    from ._redact import redacted_url

    if base_url or token_url:
        if not (base_url and token_url):
            _fail(
                "--base-url and --token-url (EATTEST_BASE_URL, EATTEST_TOKEN_URL) go together",
                EXIT_USAGE,
            )
        try:
            return Environment.custom(base_url=base_url or "", token_url=token_url or "")
        except InvalidInputError as error:
            flag, url = (
                ("--base-url/EATTEST_BASE_URL", base_url)
                if error.field == "base_url"
                else ("--token-url/EATTEST_TOKEN_URL", token_url)
            )
            # The library's advice (allow_http=True) is for code; here, say what is allowed.
            reason = error.reason.split(";")[0]
            # Quoted without its userinfo, query or fragment: a password or token there.
            shown = redacted_url(url or "")
            _fail(f"{flag} {shown!r}: {reason} (https://, or http:// to localhost)", EXIT_USAGE)
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


def _client(
    environment: Environment, username: str, password: str, account_id: int | None
) -> Client:
    """The client of every command that talks to the service (only ``demo`` has its own:
    a simulator of its own). ``$EATTEST_REDIS_URL``: share the token and the rate gate
    with the account's other processes (README, "Running several workers"); unset: this
    process alone. One place, so that no command forgets it (sync once did)."""
    from ._client import Client
    from ._coordination import CoordinationWarning, coordinator_from_env

    # Redis's warnings repeat its log lines, which the CLI shows already: once is enough.
    warnings.filterwarnings("ignore", category=CoordinationWarning)

    return Client(
        environment,
        username=username,
        password=password,
        account_id=account_id,
        coordinator=coordinator_from_env(),
    )


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
    environment = _environment(env, base_url, token_url)
    user, password = _credentials(username)

    async def run() -> None:
        async with _client(environment, user, password, account_id) as client:
            account = await client.account.get()
            lifetime = client.token_lifetime
        # What the service says is shown, never obeyed by the terminal (_printable).
        click.echo(_printable(f"account {account.id}: {account.name} ({account.company})"))
        click.echo(_printable(f"subscription status: {account.subscription_status}"))
        for sub in account.subscriptions:
            click.echo(
                "  "
                + _printable(
                    f"subscription {sub.key}: {sub.status} since {sub.start_subscription_date}"
                )
            )
        if lifetime is not None:
            click.echo(f"token lifetime: {lifetime:.0f} s")

    _run(run)


def _filter_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The filters of both listings as options, from their one table (_filters.py)."""
    from ._filters import DOSSIER_FILTERS, THIRDPARTY_FILTERS

    for name, spec in reversed({**DOSSIER_FILTERS, **THIRDPARTY_FILTERS}.items()):
        if spec.option is None:
            continue
        only = (
            ""
            if name in DOSSIER_FILTERS and name in THIRDPARTY_FILTERS
            else " (dossiers only)"
            if name in DOSSIER_FILTERS
            else " (third parties only)"
        )
        kind = click.Choice(spec.choices) if spec.choices else spec.cli_type
        func = click.option(spec.option, name, type=kind, default=None, help=spec.help + only)(func)
    return func


def _filters_for(kind: str, values: dict[str, Any]) -> dict[str, Any]:
    """The filters given, each one of this kind's (a usage error otherwise)."""
    from ._filters import DOSSIER_FILTERS, THIRDPARTY_FILTERS

    table = DOSSIER_FILTERS if kind == "dossiers" else THIRDPARTY_FILTERS
    given = {name: value for name, value in values.items() if value is not None}
    for name in given:
        if name not in table:
            option = (DOSSIER_FILTERS.get(name) or THIRDPARTY_FILTERS[name]).option
            _fail(f"{option} does not filter {kind}", EXIT_USAGE)
    return given


@cli.command()
@click.argument("kind", type=click.Choice(["dossiers", "thirdparties"]))
@_connection_options
@click.option(
    "--out",
    default="-",
    show_default=True,
    help="FILE.jsonl, FILE.csv (formulas written as text: a leading ') or - for standard output",
)
@click.option("--concurrency", default=8, show_default=True, type=_CONCURRENCY)
@click.option("--page-size", default=100, show_default=True, type=_PAGE_SIZE)
@_filter_options
@click.option(
    "--resume", "resume", type=click.Path(dir_okay=False), help="checkpoint file to resume from"
)
@click.option("--overwrite", is_flag=True, help="replace OUT if it exists (default: refuse)")
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
    resume: str | None,
    overwrite: bool,
    **filter_values: Any,
) -> None:
    """Stream every dossier or third party to a file, as pages arrive.

    Ctrl-C leaves a valid partial file and a checkpoint (OUT.checkpoint.json) to resume from.
    """
    filters = _filters_for(kind, filter_values)
    environment = _environment(env, base_url, token_url)
    checkpoint_path = Path((out if out != "-" else kind) + ".checkpoint.json")
    resume_from = _load_checkpoint(resume) if resume else None
    kept = "--resume CHECKPOINT continues it, --overwrite replaces it"
    _Writer.check(out, kept=kept if resume_from is None and not overwrite else None)
    if resume_from is not None and out.endswith(".csv"):
        _csv_header_or_fail(out, _ID_KEY[kind])  # a file that is not ours: refused now
    user, password = _credentials(username)
    console = _console(stderr=True)

    async def run() -> None:
        from ._pagination import Scan

        not_objects = 0

        async with _client(environment, user, password, account_id) as client:
            resource = client.dossiers if kind == "dossiers" else client.thirdparties
            if resume_from is not None:
                _drop_cut_line(out)
            with (
                _progress(console) as progress,
                _Writer(out, append=resume_from is not None, kind=kind) as writer,
            ):
                task = progress.add_task(
                    kind, total=None, items=0, rate="0", retries="0", cooldown="-"
                )
                update, every = _updater(progress, task), _Every()

                def on_progress(snapshot: ScanProgress) -> None:
                    update(snapshot)
                    every.page()

                found: Scan[Any] = resource.scan(
                    page_size=page_size,
                    concurrency=concurrency,
                    raw=True,
                    resume_from=resume_from,
                    on_progress=on_progress,
                    **filters,
                )
                key = "dossierId" if kind == "dossiers" else "thirdpartyId"
                # A resumed file may end with part of a page the checkpoint does not count yet.
                already = _ids_in(out, key) if resume_from is not None else set()
                try:
                    async for item in found:
                        if not isinstance(item, dict):
                            # Not a dossier or third party (a string, a number, null):
                            # counted and said at the end, never written, never fatal.
                            not_objects += 1
                            continue
                        if str(item.get(key)) not in already:
                            writer.write(item)
                        if every.due:
                            # What the checkpoint counts is written first: a kill -9 loses
                            # nothing, and a resume repeats nothing (the ids above).
                            writer.flush(sync=True)
                            _save_checkpoint(checkpoint_path, found.checkpoint())
                            every.done()
                finally:
                    try:
                        writer.flush(sync=True)
                    finally:
                        if not found.report.complete:
                            # It counts pages as done: only if they are all in the file.
                            if not writer.whole:
                                _say(
                                    "no new checkpoint: the output could not be written whole"
                                    + ("" if every.saved or resume_from else "; scan again"),
                                    label="partial",
                                )
                            elif _save_checkpoint(checkpoint_path, found.checkpoint()):
                                console.print(f"partial: checkpoint written to {checkpoint_path}")
                        elif writer.whole and (resume_from is not None or every.saved):
                            checkpoint_path.unlink(missing_ok=True)  # noqa: ASYNC240
        console.print(f"{found.report.items:,} {kind} in {found.report.elapsed:.1f} s")
        writer.say_outside()
        if not_objects:
            _say(
                f"{not_objects} of the {found.report.items:,} items the service sent are not "
                f"{kind} (not JSON objects): left out of {out}",
                label="skipped",
            )
            raise SystemExit(EXIT_API)

    _run(run)


class _Every:
    """When the scan's checkpoint is due: every 50 pages or 2 seconds."""

    def __init__(self, pages: int = 50, seconds: float = 2.0) -> None:
        self.pages, self.seconds = pages, seconds
        self.due = self.saved = False
        self._count, self._last = 0, time.monotonic()

    def page(self) -> None:
        self._count += 1
        if self._count >= self.pages or time.monotonic() - self._last >= self.seconds:
            self.due = True

    def done(self) -> None:
        self.due, self.saved = False, True
        self._count, self._last = 0, time.monotonic()


def _drop_cut_line(path: str) -> None:
    """Cut a file back to its last complete line: what a kill -9 in a write leaves."""
    if path == "-" or not Path(path).is_file():
        return
    with open(path, "rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        position = size
        while position > 0:
            step = min(65536, position)
            handle.seek(position - step)
            chunk = handle.read(step)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                position = position - step + newline + 1
                break
            position -= step
        if position != size:
            handle.truncate(position)


def _load_checkpoint(path: str) -> Checkpoint:
    """The checkpoint to resume from, or a one-line usage error saying what is wrong."""
    from ._pagination import Checkpoint

    again = "start the scan again without --resume"
    try:
        # A checkpoint holds ranges of positions: kilobytes, even for millions of items.
        data = read_capped(path, 16 * MiB, "the checkpoint")
    except CsvError as error:
        _fail(f"{error}: {again}", EXIT_USAGE)
    except FileNotFoundError:
        _fail(f"no checkpoint {path}: {again}", EXIT_USAGE)
    except OSError as error:
        _fail(f"cannot read checkpoint {path}: {error.strerror or error}", EXIT_USAGE)
    if not data.strip():
        _fail(f"checkpoint {path} is empty: {again}", EXIT_USAGE)
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        _fail(f"checkpoint {path} is not JSON (cut short, or another file?): {again}", EXIT_USAGE)
    if not isinstance(parsed, dict):
        _fail(f"{path} is not a scan checkpoint: {again}", EXIT_USAGE)
    try:
        return Checkpoint.from_json(parsed)
    except InvalidInputError as error:
        _fail(f"{path} is not a scan checkpoint ({error.reason}): {again}", EXIT_USAGE)


def _save_checkpoint(path: Path, checkpoint: Checkpoint) -> bool:
    """Atomically (a kill leaves the previous checkpoint or this one, never half of one).

    The caller has flushed (and fsync'ed) the output first: a checkpoint counts pages as
    done, so they must be in the file. False (and said) if it could not be written.
    """
    try:
        _write_file_atomically(path, orjson.dumps(checkpoint.to_json()))
    except OSError as error:
        _say(f"could not write the checkpoint {path}: {error.strerror or error}")
        return False
    return True


@cli.command()
@_connection_options
@click.option(
    "--state",
    "state",
    required=True,
    type=click.Path(dir_okay=False),
    help="the watermark file (the first run, without it, takes every dossier)",
)
@click.option(
    "--out", default="-", show_default=True, help="FILE.jsonl to append to, or - for stdout"
)
@click.option(
    "--margin",
    default=600,
    show_default=True,
    type=click.IntRange(0, _MAX_MARGIN_SECONDS),
    help="seconds asked again before the watermark (clock skew, same-second changes), "
    "at most 366 days",
)
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1, 256))
@click.option("--page-size", default=100, show_default=True, type=click.IntRange(1, 2000))
def sync(
    env: str,
    base_url: str | None,
    token_url: str | None,
    username: str | None,
    account_id: int | None,
    state: str,
    out: str,
    margin: int,
    concurrency: int,
    page_size: int,
) -> None:
    """Append the dossiers changed since the last run to OUT (JSON lines), each once.

    The watermark in STATE moves only when a run went through complete: an interrupted
    or incomplete run is simply run again (lines it appended come again: read OUT as
    upserts by dossierId).
    """
    import datetime as dt

    environment = _environment(env, base_url, token_url)
    state_path = Path(state)
    since = _load_watermark(state_path)
    _Writer.check(out)
    user, password = _credentials(username)

    async def run() -> None:
        async with _client(environment, user, password, account_id) as client:
            changes = client.dossiers.changes(
                since=since,
                margin=dt.timedelta(seconds=margin),
                page_size=page_size,
                concurrency=concurrency,
                raw=True,
            )
            _drop_cut_line(out)
            with _Writer(out, append=True) as writer:
                try:
                    async for item in changes:
                        writer.write(item)
                finally:
                    writer.flush()
        report, watermark = changes.report, changes.next_watermark
        if not report.complete:
            _fail(
                f"{changes.delivered} changed dossiers written, but the run was incomplete "
                f"({'; '.join(report.problems)}): the watermark stays, run again",
                EXIT_API,
            )
        if watermark is not None:
            _write_file_atomically(state_path, orjson.dumps(watermark.to_json()))
        mark = watermark.changed_at.isoformat() if watermark is not None else "none yet"
        _say(f"{changes.delivered} changed dossiers; watermark {mark}", label="sync", color="green")

    _run(run)


def _load_watermark(path: Path) -> Watermark | None:
    """The state of the last run, or None for the first; a bad file is a usage error."""
    from .models.scans import WATERMARK_BYTES, Watermark

    if not path.exists():
        return None
    try:
        # The cap a watermark is built to fit: what a run writes, the next run reads.
        data = read_capped(path, WATERMARK_BYTES, "the state file")
        return Watermark.from_json(orjson.loads(data))
    except (OSError, orjson.JSONDecodeError, InvalidInputError, CsvError) as error:
        _fail(f"{path} is not a sync state file ({error}): remove it to start over", EXIT_USAGE)


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
    type=click.Path(dir_okay=False),
    help="dossiers as JSON lines (what `eattest scan dossiers` writes)",
)
@click.option(
    "--to", "dest", required=True, type=click.Path(file_okay=False), help="destination folder"
)
@click.option("--concurrency", default=8, show_default=True, type=_CONCURRENCY)
@click.option(
    "--overwrite",
    is_flag=True,
    help="replace a file of the same name that differs (default: keep it, name ours 'x (1).pdf')",
)
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
    overwrite: bool,
) -> None:
    """Every file of the dossiers, concurrently, into DEST/<dossier id>/.

    Resumable: a file already there with its announced size is skipped. Each download is
    atomic: a cut or failed one leaves nothing behind. A file that is already there with
    another size is kept; the download gets a numbered name unless --overwrite. A file
    that cannot be written (disk full, read-only) is reported, and the others go on.
    """
    if not dossier_ids and not from_file:
        _fail("say which dossiers: --dossier ID (repeatable) or --from FILE.jsonl", EXIT_USAGE)
    environment = _environment(env, base_url, token_url)
    if from_file:
        _dossiers_from(from_file)  # checked before signing in; read again as it goes
    root = Path(dest)
    _check_folder(root)
    user, password = _credentials(username)

    async def run() -> None:
        async with _client(environment, user, password, account_id) as client:
            done = skipped = listed_files = repeated = 0
            dossiers: set[int] = set()
            failures: list[str] = []

            async def files() -> AsyncIterator[tuple[int, int, FileInfo, str]]:
                """Each file once (a dossier, or a file id in one, may be listed twice),
                produced only as fast as the downloads take them."""
                nonlocal listed_files, repeated
                seen: set[tuple[int, int]] = set()  # (dossier id, file id): ints only

                async def fetched() -> AsyncIterator[Dossier]:
                    for dossier_id in dict.fromkeys(dossier_ids):
                        yield await client.dossiers.get(dossier_id)
                    if from_file:
                        for dossier in _each_dossier(from_file):
                            yield dossier

                async for dossier in fetched():
                    dossiers.add(dossier.dossier_id or 0)
                    for entry in _files_of(dossier):
                        key = (entry[0], entry[2].file_id or 0)
                        if key in seen:
                            repeated += 1
                            continue
                        seen.add(key)
                        listed_files += 1
                        yield entry

            async def one(entry: tuple[int, int, FileInfo, str]) -> None:
                nonlocal done, skipped
                from ._downloads import safe_filename

                dossier_id, document_id, info, code = entry
                folder = root / str(dossier_id)
                name = safe_filename(f"{code}_{info.file_id}.pdf", f"{info.file_id}.pdf")
                if _already_there(folder, name, info.file_size):
                    skipped += 1
                    return
                try:
                    await client.files.download(
                        dossier_id,
                        document_id,
                        info.file_id or 0,
                        dest=folder,
                        filename=name,
                        overwrite=overwrite,
                        expected_size=info.file_size,
                    )
                    done += 1
                except EattestError as error:
                    failures.append(f"dossier {dossier_id} file {info.file_id}: {error}")
                except OSError as error:  # this file only: the others go on
                    failures.append(
                        f"dossier {dossier_id} file {info.file_id}: cannot write "
                        f"{error.filename or folder / name}: {error.strerror or error}"
                    )

            await _bounded(files(), one, concurrency)
        click.echo(
            f"{done} downloaded, {skipped} already there, {len(failures)} failed "
            f"({listed_files} files of {len(dossiers)} dossiers) into {root}"
            + (f"; {repeated} listed twice, taken once" if repeated else "")
        )
        for failure in failures:
            _say(failure, label="failed")
        if failures:
            raise SystemExit(EXIT_API)

    _run(run)


def _check_folder(root: Path) -> None:
    """The destination folder exists (created) and takes files, or a one-line usage error."""
    import tempfile

    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root, prefix=".eattest-probe-"):
            pass
    except OSError as error:
        _fail(f"cannot write into the folder {root}: {error.strerror or error}", EXIT_USAGE)


def _already_there(folder: Path, name: str, size: int | None) -> bool:
    """A complete earlier download: ``name`` or a numbered ``name (n)`` of the right size."""
    if size is None:
        return False
    stem, dot, extension = name.rpartition(".")
    pattern = re.compile(re.escape(stem) + r"( \(\d+\))?" + re.escape(dot + extension) + "$")
    try:
        return any(
            pattern.match(entry.name) and entry.is_file() and entry.stat().st_size == size
            for entry in os.scandir(folder)
        )
    except OSError:
        return False


_LINE_LIMIT = 32 * MiB  # one dossier per line; one listing 20,000 files is about 1 MiB
_SKIPPED_LIMIT = 1000  # a scan cut by a kill leaves one bad line, not thousands


def _dossier_lines(path: str) -> Iterator[tuple[int, Dossier | None]]:
    """(line number, the dossier, or None for a line that is not one), line by line: one
    line held at a time, and no longer than _LINE_LIMIT (CsvError: not a regular file, a
    binary file). OSError is the caller's to word."""
    from ._converter import structure
    from .models import Dossier

    with open_local(path, "the dossiers file") as lines:
        number = 0
        while line := lines.readline(_LINE_LIMIT + 1):
            number += 1
            if len(line) > _LINE_LIMIT:
                raise CsvError(
                    f"line {number} of {path} is longer than {_LINE_LIMIT // MiB} MiB: "
                    "expected what `eattest scan dossiers` writes"
                )
            if not line.strip():
                continue
            try:
                item = orjson.loads(line)
                if not isinstance(item, dict) or "dossierId" not in item:
                    raise ValueError("not a dossier")
                yield number, structure(item, Dossier)
            except (ValueError, EattestError):  # JSONDecodeError is a ValueError
                yield number, None


def _dossiers_from(path: str) -> int:
    """Check a JSON lines file of dossiers before signing in: how many it holds; lines that
    are not a whole dossier (the last line of a file a kill cut) are skipped and said so,
    on one line. Nothing is kept: the download reads the file again (_each_dossier)."""
    count = 0
    skipped: list[int] = []
    skipped_count = 0
    try:
        for number, dossier in _dossier_lines(path):
            if dossier is not None:
                count += 1
                continue
            skipped_count += 1
            skipped += [number] if len(skipped) <= 10 else []
            if skipped_count > _SKIPPED_LIMIT:
                _fail(
                    f"{path}: more than {_SKIPPED_LIMIT} lines are not a dossier: expected "
                    "what `eattest scan dossiers` writes",
                    EXIT_USAGE,
                )
    except OSError as error:
        _fail(f"cannot read {path}: {error.strerror or error}", EXIT_USAGE)
    except CsvError as error:
        _fail(str(error), EXIT_USAGE)
    if skipped:
        shown = ", ".join(map(str, skipped[:10])) + (", ..." if skipped_count > 10 else "")
        _say(
            f"skipped {skipped_count} line(s) of {path} that are not a whole dossier "
            f"(cut short by an interruption?): line {shown}",
            label="warning",
            color="yellow",
        )
    if not count:
        _fail(f"{path} holds no dossier: expected what `eattest scan dossiers` writes", EXIT_USAGE)
    return count


def _each_dossier(path: str) -> Iterator[Dossier]:
    """The dossiers of a file _dossiers_from checked, one at a time."""
    for _, dossier in _dossier_lines(path):
        if dossier is not None:
            yield dossier


async def _bounded(
    items: AsyncIterator[T], work: Callable[[T], Awaitable[None]], concurrency: int
) -> None:
    """``work(item)`` for every item, at most ``concurrency`` at once, by that many workers:
    an item is taken only when a worker is free, so a listing of 20,000 files costs
    ``concurrency`` tasks (not 20,000), and a Ctrl-C cancels that few. ``work`` handles
    its own errors; one it raises stops the whole."""
    import anyio

    send, receive = anyio.create_memory_object_stream[T](0)

    async def worker(inbox: Any) -> None:
        async with inbox:
            async for item in inbox:
                await work(item)

    async with anyio.create_task_group() as group:
        for _ in range(concurrency):
            group.start_soon(worker, receive.clone())
        receive.close()
        async with send:
            async for item in items:
                await send.send(item)


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
_REQUIRED = ("companyIdType", "companyIdValue", "dossierReference")
_LISTS = {"required_documents", "thirdparty_email", "user_in_charge"}
# In a cell, lists are split by ';' or ',' (a ';'-separated file quotes such cells).
_LIST_SEPARATORS = re.compile(r"[;,]")


def _new_dossier(row: dict[str, str]) -> NewDossier:
    from .models import NewDossier

    values: dict[str, Any] = {}
    for column, field in _CSV_FIELDS.items():
        raw = (row.get(column) or "").strip()
        if field in _LISTS:
            values[field] = tuple(v.strip() for v in _LIST_SEPARATORS.split(raw) if v.strip())
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
    type=click.Path(dir_okay=False),
    help="one dossier per row; columns " + ", ".join(_CSV_FIELDS) + " (lists split by ';')",
)
@click.option(
    "--encoding",
    default=None,
    help="the CSV's encoding (default: found from the file: UTF-8, UTF-16 or Windows-1252)",
)
@click.option(
    "--wait/--no-wait", default=True, show_default=True, help="wait for the creation processes"
)
@click.option(
    "--out", default=None, help="results file, kept as a journal (default: CSV.results.csv)"
)
@click.option(
    "--timeout",
    "wait_timeout",
    default=300.0,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="seconds to wait per process",
)
@click.option(
    "--dry-run", is_flag=True, help="check every row and say what would be sent; send nothing"
)
def create(
    env: str,
    base_url: str | None,
    token_url: str | None,
    username: str | None,
    account_id: int | None,
    csv_path: str,
    encoding: str | None,
    wait: bool,
    out: str | None,
    wait_timeout: float,
    dry_run: bool,
) -> None:
    """Create dossiers from a CSV. Every row is checked first; one bad row and nothing is sent.

    Each row's outcome is appended to the results file as it happens (a journal), so an
    interrupted run leaves it; running the same command again skips the rows already
    created (by companyIdValue and dossierReference), checks with the service any row whose
    outcome was lost, and sends the rest.
    """
    from ._cli_csv import (
        CSV_LIMIT,
        DONE,
        UNCERTAIN,
        Journal,
        hidden_character,
        read_capped,
        read_table,
        row_key,
    )
    from .resources.dossiers import new_dossier_body

    environment = _environment(env, base_url, token_url)
    try:
        data = read_capped(csv_path, CSV_LIMIT, "the CSV")
    except OSError as error:
        _fail(f"cannot read {csv_path}: {error.strerror or error}", EXIT_USAGE)
    table = read_table(
        data, csv_path, fields=list(_CSV_FIELDS), required=_REQUIRED, encoding=encoding
    )
    if table.ignored:
        _say(
            f"ignored columns of {csv_path}: {', '.join(table.ignored)} "
            f"(known: {', '.join(_CSV_FIELDS)})",
            label="warning",
            color="yellow",
        )
    problems: list[str] = []
    invalid: set[int] = set()  # row numbers: a row may have several problems
    dossiers: list[tuple[int, NewDossier]] = []
    first_row: dict[tuple[str, str], int] = {}
    for number, row in table.rows:
        # Every cell of every row: what is sent, and keyed in the journal, is what is shown.
        hidden = [
            f"row {number}: column {column} holds {why}"
            for column, cell in row.items()
            if (why := hidden_character(cell, free_text=column == "description"))
        ]
        if hidden:
            problems += hidden
            invalid.add(number)
            continue
        try:
            dossier = _new_dossier(row)
            new_dossier_body(dossier)
        except InvalidInputError as error:
            problems.append(f"row {number}: {error}")
            invalid.add(number)
            continue
        key = row_key(dossier.company_id_value, dossier.dossier_reference)
        if key in first_row:
            problems.append(
                f"row {number}: dossierReference {dossier.dossier_reference!r} for "
                f"{dossier.company_id_value} is already on row {first_row[key]}"
            )
            invalid.add(number)
            continue
        first_row[key] = number
        dossiers.append((number, dossier))
    if problems:
        for problem in problems:
            _say(problem, label="invalid")
        _fail(
            f"{len(invalid)} of {len(table.rows)} rows are invalid; nothing was sent",
            EXIT_USAGE,
        )
    results_path = Path(out or (csv_path.rsplit(".", 1)[0] + ".results.csv"))
    journal = Journal(results_path)
    journal.load()

    def last(dossier: NewDossier) -> dict[str, str]:
        return journal.last.get(row_key(dossier.company_id_value, dossier.dossier_reference), {})

    done = [(n, d) for n, d in dossiers if last(d).get("status") in DONE]
    pending = [(n, d) for n, d in dossiers if last(d).get("status") == "sent"]
    uncertain = [(n, d) for n, d in dossiers if last(d).get("status") in UNCERTAIN]
    fresh = [
        (n, d) for n, d in dossiers if last(d).get("status") not in DONE | UNCERTAIN | {"sent"}
    ]
    if done or pending or uncertain:
        _say(
            f"{results_path} says {len(done)} of these rows are already created and "
            f"{len(pending)} sent: they are not sent again"
            + (f"; {len(uncertain)} whose outcome was lost are checked first" if uncertain else ""),
            label="resuming",
            color="cyan",
        )
    if dry_run:
        click.echo(
            f"dry run: {len(dossiers)} rows valid ({table.encoding}, "
            f"separator {table.separator!r}); would send {len(fresh)}, "
            f"check {len(uncertain)} with the service first, skip {len(done) + len(pending)} "
            "already sent; nothing was sent"
        )
        return
    user, password = _credentials(username)
    try:
        journal.open()  # before anything is sent: an unwritable results file stops us here
    except OSError as error:
        _fail(f"cannot write {results_path}: {error.strerror or error}", EXIT_USAGE)

    async def run() -> None:
        import anyio

        counts = {"created": 0, "exists": 0, "failed": 0, "sent": 0}

        def record(number: int, dossier: NewDossier, status: str, **fields: Any) -> None:
            journal.record(
                number, dossier.dossier_reference, dossier.company_id_value, status, **fields
            )

        async with _client(environment, user, password, account_id) as client:
            to_send = list(fresh)
            # A row sent when the last run stopped, answer unknown: ask the service.
            for number, dossier in uncertain:
                found = await client.dossiers.list(
                    dossier_reference=dossier.dossier_reference.strip(), page_size=20
                )
                match = next(
                    (
                        d
                        for d in found
                        if d.dossier_reference == dossier.dossier_reference.strip()
                        and dossier.company_id_value.replace(" ", "")
                        in {d.company_id_value, d.siret, d.tva}
                    ),
                    None,
                )
                if match is not None:
                    record(number, dossier, "created", dossierId=match.dossier_id)
                else:
                    to_send.append((number, dossier))
            to_send.sort(key=lambda entry: entry[0])
            to_follow = [(n, d, last(d)["processId"]) for n, d in pending]
            # Every creation is sent first (a POST, never repeated), then all are awaited.
            for number, dossier in to_send:
                record(number, dossier, "sending")
                try:
                    process_id = (await client.dossiers.create(dossier)).process_id
                except ApiError as error:
                    if error.status is not None and error.status >= 500:
                        record(number, dossier, "unknown", error=error)
                    else:
                        record(number, dossier, "failed", codes=" ".join(error.codes), error=error)
                    if isinstance(error, RateLimitError):
                        raise  # the next rows would be refused too: stop, resume later
                    continue
                except AuthenticationError:
                    raise  # nothing more can be sent; the journal says where we are
                except EattestError as error:  # no answer: it may or may not exist
                    record(number, dossier, "unknown", error=error)
                    continue
                record(number, dossier, "sent", processId=process_id)
                to_follow.append((number, dossier, str(process_id)))

            async def follow(number: int, dossier: NewDossier, process_id: str) -> None:
                try:
                    status = await client.processes.wait(
                        process_id, timeout=wait_timeout, raise_on_failure=False
                    )
                except EattestError as error:
                    _say(f"row {number}: {error}", label="not finished")
                    return
                codes = " ".join(m.code or "" for m in status.errors)
                if status.success:
                    record(
                        number,
                        dossier,
                        "created",
                        processId=process_id,
                        dossierId=status.dossier_id,
                    )
                elif codes.split() == ["E202"]:  # this reference exists for this supplier
                    record(number, dossier, "exists", processId=process_id, codes=codes)
                else:
                    record(number, dossier, "failed", processId=process_id, codes=codes)

            if wait:
                async with anyio.create_task_group() as group:
                    for entry in to_follow:
                        group.start_soon(follow, *entry)
        skipped = {number for number, _ in done}
        for number, dossier in dossiers:
            if number not in skipped:
                status = last(dossier).get("status", "")
                counts[status] = counts.get(status, 0) + 1
        summary = (
            f"{counts['created']} created, {counts['failed'] + counts.get('unknown', 0)} failed"
        )
        if counts["exists"]:
            summary += f", {counts['exists']} already there (E202)"
        if counts["sent"]:
            summary += f", {counts['sent']} still being created"
        if done:
            summary += f", {len(done)} skipped (created by an earlier run)"
        click.echo(f"{summary}; results in {results_path}")
        if counts["failed"] or counts.get("unknown"):
            raise SystemExit(EXIT_API)

    stopped = True
    try:
        _run(run)
        stopped = False
    except SystemExit as end:
        stopped = end.code not in (0, None, EXIT_API)
        raise
    finally:
        try:
            journal.compact()  # one line per row, atomically; the journal until then
        except OSError as error:
            _say(f"results left as a journal in {results_path} ({error.strerror or error})")
        if stopped and journal.recorded:
            _say(
                f"stopped: what was sent is in {results_path}; run the same command "
                "again to go on without creating anything twice",
                label="note",
                color="yellow",
            )


def _ids_in(path: str, key: str) -> set[str]:
    """The ids already written to an output file (JSON lines or CSV)."""
    if path == "-" or not Path(path).is_file():
        return set()  # nothing to read back from a pipe: what went into it is gone
    with io.TextIOWrapper(open_local(path, "the output"), encoding="utf-8", newline="") as handle:
        if path.endswith(".csv"):
            return {row.get(key, "") for row in csv.DictReader(handle)}
        ids = set()
        for line in handle:
            try:
                item = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # a line cut by the interruption
            if isinstance(item, dict):
                ids.add(str(item.get(key)))
        return ids


def _run(coroutine: Callable[[], Any]) -> None:
    import asyncio

    try:
        asyncio.run(coroutine())
    except KeyboardInterrupt:
        if _debug:
            raise
        _say("interrupted")
        raise SystemExit(EXIT_INTERRUPTED) from None
    except BrokenPipeError:
        _output_closed()
    except (EattestError, OSError, CsvError) as error:
        if _debug:
            raise
        message, code = _describe(error)
        _fail(message, code)


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def simulator(ctx: click.Context) -> None:
    """Serve the embedded simulator (options: `python -m eattest_async.simulator --help`)."""
    from .simulator.__main__ import main as simulator_main

    sys.exit(simulator_main(ctx.args))


def main(argv: Sequence[str] | None = None) -> None:
    level = os.environ.get("EATTEST_LOG")  # debug, info, warning: the library's log on stderr
    if level and level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        _fail(f"EATTEST_LOG={level!r}: use debug, info, warning or error", EXIT_USAGE)
    # Warnings at least (a scan incomplete, a watermark not trusted, Redis away), shown as
    # everything else the CLI shows: one line each, never obeyed by the terminal.
    handler = logging.StreamHandler()
    handler.setFormatter(_PrintableFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=(level or "WARNING").upper(), handlers=[handler])
    logging.captureWarnings(True)  # the library's warnings (Redis's: see _client) too
    try:
        code = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="eattest",
            standalone_mode=False,
        )
    except click.ClickException as error:
        # Click's usage errors, on one line like ours, with where to read more.
        context = getattr(error, "ctx", None)
        hint = f" (see: {context.command_path} --help)" if context is not None else ""
        _fail(error.format_message() + hint, error.exit_code)
    except click.Abort:  # Ctrl-C or end of input at a prompt
        _fail("interrupted", EXIT_INTERRUPTED)
    sys.exit(code if isinstance(code, int) else 0)
