"""The command line survives real files, real interruptions and real mistakes.

Run as users run it: a process of its own, real files in tmp_path, SIGINT and SIGKILL;
each test asserts the exit code, a one-line message, no traceback, and that nothing is
lost or duplicated on the server or on disk. One simulator serves the whole module.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from eattest_async.simulator import Simulator

from .conftest import client_for

pytestmark = pytest.mark.anyio

SIRET = "50382936800045"  # a supplier the simulator knows: creations succeed
HEADER = "companyIdType,companyIdValue,dossierReference,description,requiredDocuments"
COMMAND = "from eattest_async.cli import main; main()"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(seed=15, dossiers=60, process_delay=0.02) as simulator:
        yield simulator


def connection(sim: Simulator) -> dict[str, str]:
    return {
        "EATTEST_BASE_URL": sim.base_url,
        "EATTEST_TOKEN_URL": sim.token_url,
        "EATTEST_USERNAME": sim.username,
        "EATTEST_PASSWORD": sim.password,
    }


async def start(
    *args: str, env: dict[str, str] | None = None, preexec: Callable[[], Any] | None = None
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        COMMAND,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "80", **(env or {})},
        preexec_fn=preexec,  # only to lower a resource limit
    )


async def eattest(
    *args: str, env: dict[str, str] | None = None, preexec: Callable[[], Any] | None = None
) -> tuple[int, str, str]:
    process = await start(*args, env=env, preexec=preexec)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, out.decode(), err.decode()


def one_line_error(err: str, *fragments: str) -> None:
    """stderr is a single line (an error) naming what went wrong, and no traceback."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


async def gather(*runs: Any) -> list[tuple[int, str, str]]:
    """Several invocations at once: they are independent, and processes start slowly."""
    return list(await asyncio.gather(*runs))


_BATCH = """
import contextlib, io, json, os, sys
from eattest_async.cli import main
results = []
for argv, env in json.loads(sys.argv[1]):
    saved = dict(os.environ)
    os.environ.update(env)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
            code = 0
        except SystemExit as end:
            code = end.code if isinstance(end.code, int) else (0 if end.code is None else 1)
    os.environ.clear()
    os.environ.update(saved)
    results.append([code, out.getvalue(), err.getvalue()])
print(json.dumps(results))
"""


async def batch(
    *runs: tuple[list[str], dict[str, str]], timeout: float = 120
) -> list[tuple[int, str, str]]:
    """Many quick invocations of ``main`` (each as the console script calls it) in one
    process: the errors they check come before any network, and a process per case would
    spend its time importing. One that hangs is killed after ``timeout`` seconds."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _BATCH,
        orjson.dumps([[argv, env] for argv, env in runs]).decode(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "80"},
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()  # a hung case must not outlive the test
        await process.wait()
        raise
    assert process.returncode == 0, err.decode()
    return [(int(code), str(o), str(e)) for code, o, e in orjson.loads(out)]


# -- start-up, flags, environment ---------------------------------------------------------


async def test_help_loads_neither_the_simulator_nor_the_http_machinery() -> None:
    probe = (
        "import sys\n"
        "import eattest_async\n"
        "package_alone = 'aiohttp' in sys.modules\n"
        "from eattest_async.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as end:\n    assert end.code == 0, end\n"
        "heavy = {'eattest_async.simulator', 'aiohttp', 'anyio', 'rich.progress', 'rich.table'}\n"
        "print(package_alone)\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", probe, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    package_alone, loaded = out.decode().splitlines()[-2:]
    if package_alone == "True":
        # Not the command line's doing: the package's __init__ imports the client eagerly
        # (lazy public names are issue 16's). The simulator must stay out regardless.
        assert "eattest_async.simulator" not in loaded
        pytest.xfail("import eattest_async alone loads aiohttp")
    assert loaded == "[]"


async def test_version_and_every_bad_flag_or_environment_is_one_line_and_exit_2(
    tmp_path: Path,
) -> None:
    remote = {
        "EATTEST_TOKEN_URL": "https://auth.example.com/token",
        "EATTEST_USERNAME": "u",
        "EATTEST_PASSWORD": "p",
    }
    results = await batch(
        (["--version"], {}),
        (["scan", "dossiers", "--concurrency", "0"], {}),
        (["download", "--dossier", "1", "--to", str(tmp_path), "--concurrency", "0"], {}),
        (["demo", "--concurrency", "-3"], {}),
        (["scan", "dossiers", "--page-size", "0"], {}),
        (["create", "--csv", "x.csv", "--timeout", "0"], {}),
        (["whoami"], {**remote, "EATTEST_BASE_URL": "ftp://files.example.com/api/v1"}),
        (["whoami"], {**remote, "EATTEST_BASE_URL": "http://rs.example.com/api/v1"}),
        (["whoami"], {**remote, "EATTEST_BASE_URL": "not a url"}),
        (["scan", "nothing"], {}),
        (["whoami"], {"EATTEST_LOG": "loud"}),
    )
    code, script, _ = await eattest(env={"_EATTEST_COMPLETE": "bash_source"})
    assert code == 0
    assert "_EATTEST_COMPLETE=bash_complete" in script  # what the README tells bash to eval
    code, out, err = results[0]
    assert (code, out.strip(), err) == (0, "eattest, version 0.1.0", "")
    expected = [
        "'--concurrency': 0 is not in the range",
        "'--concurrency': 0 is not in the range",
        "'--concurrency': -3 is not in the range",
        "'--page-size': 0 is not in the range",
        "'--timeout': 0.0 is not in the range",
        "EATTEST_BASE_URL 'ftp://",
        "plain http is refused except on loopback",
        "EATTEST_BASE_URL 'not a url'",
        "'nothing' is not one of",
        "EATTEST_LOG",
    ]
    for (code, _, err), fragment in zip(results[1:], expected, strict=True):
        assert code == 2, err
        one_line_error(err, fragment)


async def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    env = {
        "EATTEST_BASE_URL": "ftp://x.example.com/api/v1",
        "EATTEST_TOKEN_URL": "https://a.example.com/t",
        "EATTEST_USERNAME": "u",
        "EATTEST_PASSWORD": "p",
    }
    (_, _, quiet), (_, _, loud) = await gather(
        eattest("download", "--from", str(tmp_path / "none.jsonl"), "--to", str(tmp_path)),
        eattest("--debug", "scan", "dossiers", "--resume", str(tmp_path / "none"), env=env),
    )
    one_line_error(quiet, "cannot read", "none.jsonl")
    assert "Traceback" in loud


# -- scan ---------------------------------------------------------------------------------


async def test_scan_refuses_a_bad_checkpoint_or_an_unwritable_out_before_signing_in(
    sim: Simulator, tmp_path: Path
) -> None:
    env = connection(sim)
    grants = sum(sim.stats.token_grants.values())
    empty, cut, garbage, wrong = (tmp_path / n for n in ("empty", "cut", "garbage", "wrong"))
    empty.write_bytes(b"")
    cut.write_bytes(b'{"version": 1, "operation": "list_dossiers", "filters": [], "page_')
    garbage.write_bytes(bytes(range(256)))
    wrong.write_bytes(b'{"version": 1, "operation": "list_dossiers"}')
    a_file = tmp_path / "a-file"
    a_file.write_text("mine")
    out = str(tmp_path / "d.jsonl")
    results = await batch(
        *(
            (["scan", "dossiers", "--out", out, "--resume", str(p)], env)
            for p in (tmp_path / "missing", empty, cut, garbage, wrong)
        ),
        (["scan", "dossiers", "--out", str(a_file / "d.jsonl")], env),
        (["scan", "dossiers", "--out", str(tmp_path)], env),
    )
    expected = [
        "no checkpoint",
        "is empty",
        "is not JSON",
        "is not JSON",
        "not a scan checkpoint",
        "cannot write",
        "cannot write",
    ]
    for (code, _, err), fragment in zip(results, expected, strict=True):
        assert code == 2, err
        one_line_error(err, fragment)
    assert sum(sim.stats.token_grants.values()) == grants  # nobody signed in
    assert a_file.read_text() == "mine"
    assert not Path(out).exists()


async def test_a_pipe_a_socket_a_device_or_a_folder_as_an_input_is_refused_at_once(
    sim: Simulator, tmp_path: Path
) -> None:
    """A named pipe nobody writes to once hung `scan --resume`, `sync --state` and
    `create --csv` for ever (open() waits for a writer): every file the CLI reads is now a
    regular file or one line and exit 2, at once and before signing in."""
    env = connection(sim)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    good = tmp_path / "good.csv"
    good.write_text(HEADER + f"\nCIT001,{SIRET},PIPE-1,,\n", encoding="utf-8")
    out = str(tmp_path / "d.jsonl")
    # A socket's path is at most about 100 bytes: tmp_path may be longer.
    with tempfile.TemporaryDirectory() as short, socket.socket(socket.AF_UNIX) as listener:
        sock = Path(short) / "s"
        listener.bind(str(sock))
        cases = [(["create", "--csv", str(good), "--out", str(tmp_path), "--dry-run"], "a folder")]
        for other, kind in ((fifo, "a named pipe"), (sock, "a socket"), ("/dev/null", "a device")):
            cases += [
                (["scan", "dossiers", "--out", out, "--resume", str(other)], kind),
                (["sync", "--state", str(other), "--out", out], kind),
                (["create", "--csv", str(other), "--dry-run"], kind),
                (["create", "--csv", str(good), "--out", str(other), "--dry-run"], kind),
                (["download", "--from", str(other), "--to", str(tmp_path / "dl")], kind),
            ]
        grants = sum(sim.stats.token_grants.values())
        # Each case is refused in milliseconds; the minute is for a loaded machine.
        results = await batch(*((args, env) for args, _ in cases), timeout=60)
    for (args, kind), (code, _, err) in zip(cases, results, strict=True):
        assert code == 2, (args, err)
        one_line_error(err, f"is {kind}, not a regular file")
    assert sum(sim.stats.token_grants.values()) == grants  # nobody signed in
    assert not Path(out).exists()
    assert not (tmp_path / "dl").exists()


# -- download -----------------------------------------------------------------------------


async def scan_lines(sim: Simulator, count: int) -> list[dict[str, Any]]:
    async with client_for(sim) as client:
        items = [item async for item in client.dossiers.scan(raw=True, page_size=20)]
    with_files = [d for d in items if any(files_in(doc) for doc in d["documents"])]
    return with_files[:count]


def files_in(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The files of a raw document, in either shape (v1.1 or v1.3)."""
    return document.get("listFileInformation") or document.get("evidences") or []


def files_of(dossiers: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    return {
        (str(d["dossierId"]), f"{doc['documentCode']}_{f.get('fileId', f.get('id'))}.pdf"): f[
            "fileSize"
        ]
        for d in dossiers
        for doc in d["documents"]
        for f in files_in(doc)
    }


def on_disk(folder: Path) -> dict[tuple[str, str], int]:
    return {(p.parent.name, p.name): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


async def test_download_from_a_cut_jsonl_says_what_it_skipped_and_keeps_user_files(
    sim: Simulator, tmp_path: Path
) -> None:
    env = connection(sim)
    dossiers = await scan_lines(sim, 4)
    lines = [orjson.dumps(d) for d in dossiers]
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"\n".join(lines[:3]) + b"\n" + lines[3][: len(lines[3]) // 2])
    expected = files_of(dossiers[:3])
    dest = tmp_path / "downloads"  # does not exist yet: created, as a folder
    (folder, name), size = next(iter(expected.items()))
    (dest / folder).mkdir(parents=True)
    (dest / folder / name).write_bytes(b"a file of the user's, not ours")
    code, out, err = await eattest("download", "--from", str(cut), "--to", f"{dest}/", env=env)
    assert code == 0, err
    one_line_error(err, "skipped 1 line(s)", "line 4")
    assert f"{len(expected)} downloaded, 0 already there, 0 failed" in out
    written = on_disk(dest)
    assert written.pop((folder, name)) == len(b"a file of the user's, not ours")
    numbered = name.replace(".pdf", " (1).pdf")
    assert written == {
        **{k: v for k, v in expected.items() if k != (folder, name)},
        (folder, numbered): size,
    }
    # Run again: everything is there (the numbered copy counts), nothing is fetched twice.
    code, out, err = await eattest("download", "--from", str(cut), "--to", str(dest), env=env)
    assert code == 0, err
    assert f"0 downloaded, {len(expected)} already there" in out
    # Nothing to download from: one line, exit 2.
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(b"\x00\x01 not json\n")
    code, _, err = await eattest("download", "--from", str(garbage), "--to", str(dest), env=env)
    assert code == 2
    assert "holds no dossier" in err
    assert "Traceback" not in err


async def test_download_onto_a_full_disk_reports_each_file_and_finishes_the_others(
    sim: Simulator, tmp_path: Path
) -> None:
    """A file-size limit (RLIMIT_FSIZE) makes the kernel refuse writes past it, as a full
    disk does: the files above it fail one by one, those below it are all written."""
    import resource

    env = connection(sim)
    dossiers = await scan_lines(sim, 6)
    expected = files_of(dossiers)
    sizes = sorted(set(expected.values()))
    assert len(sizes) >= 2
    limit = sizes[len(sizes) // 2] - 1
    source = tmp_path / "six.jsonl"
    source.write_bytes(b"\n".join(orjson.dumps(d) for d in dossiers) + b"\n")
    dest = tmp_path / "files"

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    code, out, err = await eattest(
        "download", "--from", str(source), "--to", str(dest), env=env, preexec=small_disk
    )
    too_big = {k for k, v in expected.items() if v > limit}
    assert code == 1
    assert (
        f"{len(expected) - len(too_big)} downloaded, 0 already there, {len(too_big)} failed" in out
    )
    assert "Traceback" not in err
    assert "ExceptionGroup" not in err
    failures = [line for line in err.splitlines() if line.strip()]
    assert len(failures) == len(too_big)
    assert all("failed:" in line and "File too large" in line for line in failures)
    assert on_disk(dest) == {k: v for k, v in expected.items() if k not in too_big}
    assert not list(dest.rglob("*.part"))


async def test_download_into_a_file_or_an_impossible_folder_is_one_line(
    sim: Simulator, tmp_path: Path
) -> None:
    env = connection(sim)
    a_file = tmp_path / "a-file"
    a_file.write_text("mine")
    (code1, _, err1), (code2, _, err2) = await batch(
        (["download", "--dossier", "1", "--to", str(a_file)], env),
        (["download", "--dossier", "1", "--to", str(a_file / "sub")], env),
    )
    assert code1 == code2 == 2
    one_line_error(err1, "a-file")
    one_line_error(err2, "cannot write into the folder")
    assert a_file.read_text() == "mine"


# -- create -------------------------------------------------------------------------------


def creations(sim: Simulator) -> list[dict[str, Any]]:
    return [orjson.loads(r.body) for r in sim.requests if r.operation == "create_dossier"]


async def test_create_reads_what_excel_writes(sim: Simulator, tmp_path: Path) -> None:
    env = connection(sim)
    rows = [
        f"CIT001,{SIRET},XL-CP1252,Dépôt légal façade,ATT_VIGI",
        f"CIT001,{SIRET},XL-UTF16,Entrepôt € ß,RIB",
        f"CIT001,{SIRET},XL-UTF8BOM,Société générale,",
    ]
    french = tmp_path / "fr.csv"  # Excel "CSV (separator ;)" in France: Windows-1252
    french.write_bytes(
        (HEADER + "\r\n" + rows[0] + "\r\n;;;;\r\n").replace(",", ";").encode("cp1252")
    )
    unicode = tmp_path / "unicode.txt"  # Excel "Unicode text": UTF-16, tab-separated
    unicode.write_bytes((HEADER + "\r\n" + rows[1] + "\r\n").replace(",", "\t").encode("utf-16"))
    bom = tmp_path / "bom.csv"  # Excel "CSV UTF-8", with its trailing empty rows
    bom.write_bytes(("\ufeff" + HEADER + "\r\n" + rows[2] + "\r\n,,,,\r\n,,,,\r\n").encode())
    before = len(creations(sim))
    results = await gather(
        *(eattest("create", "--csv", str(p), "--no-wait", env=env) for p in (french, unicode, bom))
    )
    for code, _out, err in results:
        assert code == 0, err
        assert "Traceback" not in err
    sent = {c["dossierReference"]: c for c in creations(sim)[before:]}
    assert sent["XL-CP1252"]["description"] == "Dépôt légal façade"
    assert sent["XL-UTF16"]["description"] == "Entrepôt € ß"
    assert sent["XL-UTF8BOM"]["description"] == "Société générale"
    assert len(sent) == 3


async def test_create_refuses_unusable_files_before_signing_in(
    sim: Simulator, tmp_path: Path
) -> None:
    env = connection(sim)
    files = {
        "empty.csv": b"",
        "header-only.csv": (HEADER + "\r\n,,,,\r\n").encode(),
        "garbage.csv": b"lorem ipsum dolor\nsit amet\n",
        "binary.csv": bytes(range(256)) * 8,
        "workbook.csv": b"PK\x03\x04" + bytes(100),
        "duplicate.csv": (HEADER + f"\nCIT001,{SIRET},SAME,,\nCIT001,{SIRET},SAME,,\n").encode(),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    grants = sum(sim.stats.token_grants.values())
    results = await batch(
        *((["create", "--csv", str(tmp_path / name)], env) for name in files),
        (["create", "--csv", str(tmp_path / "missing.csv")], env),
    )
    expected = [
        "is empty",
        "no data rows",
        "header line",
        "not a text file",
        "Excel workbook",
        "1 of 2 rows are invalid",
        "cannot read",
    ]
    for (code, _, err), fragment in zip(results, expected, strict=True):
        assert code == 2, err
        assert "Traceback" not in err
        assert fragment in err.splitlines()[-1], err
    assert "row 3: dossierReference 'SAME'" in results[5][2]  # each invalid row, one line
    assert sum(sim.stats.token_grants.values()) == grants  # nobody signed in
    assert not list(tmp_path.glob("*.results.csv"))


async def test_control_characters_in_any_row_are_refused_row_by_row(
    sim: Simulator, tmp_path: Path
) -> None:
    """Past the first 8 KiB (the binary-file probe), a NUL, an escape sequence, a bidi
    override or a line break in a cell once read as valid and would have been sent."""
    env = connection(sim)
    good = "".join(f"CIT001,{SIRET},CTRL-{n:04d},,\n" for n in range(300))
    bad = (
        f"CIT001,{SIRET},RE\x00F-A,,\n"  # row 302
        f"CIT001,{SIRET},REF-\x1b[31mB,,\n"  # row 303
        f"CIT001,{SIRET},REF-C,\u202etxt.exe,\n"  # row 304: in the description too
        f'CIT001,{SIRET},"REF\r\nD",,\n'  # row 305
        f'CIT001,{SIRET},MULTI-LINE,"first line\r\nsecond line",\n'  # row 306: allowed
    )
    path = tmp_path / "late.csv"
    path.write_bytes((HEADER + "\n" + good + bad).encode())
    assert len(HEADER + good) > 8192
    grants = sum(sim.stats.token_grants.values())
    [(code, out, err)] = await batch((["create", "--csv", str(path), "--dry-run"], env))
    assert code == 2, out + err
    lines = err.splitlines()
    assert lines[-1] == "error: 4 of 305 rows are invalid; nothing was sent", err
    assert lines[:-1] == [
        r"invalid: row 302: column dossierReference holds an invisible or control character "
        r"(\x00, character 3)",
        r"invalid: row 303: column dossierReference holds an invisible or control character "
        r"(\x1b, character 5)",
        r"invalid: row 304: column description holds an invisible or control character "
        r"(\u202e, character 1)",
        r"invalid: row 305: column dossierReference holds an invisible or control character "
        r"(\x0d, character 4)",
    ], err
    assert sum(sim.stats.token_grants.values()) == grants  # nobody signed in
    assert not list(tmp_path.glob("*.results.csv"))


def many_rows(path: Path, prefix: str, count: int) -> list[str]:
    references = [f"{prefix}-{n:04d}" for n in range(count)]
    path.write_text(
        HEADER + "\n" + "".join(f"CIT001,{SIRET},{r},,ATT_VIGI\n" for r in references),
        encoding="utf-8",
    )
    return references


async def interrupt_create(
    sim: Simulator, csv_path: Path, sig: signal.Signals, after: int
) -> tuple[int, str]:
    results = csv_path.with_name(csv_path.stem + ".results.csv")
    process = await start("create", "--csv", str(csv_path), env=connection(sim))
    with anyio.fail_after(60):  # wait for some rows to be sent, then interrupt
        while (  # noqa: ASYNC110 - another process writes the file
            not results.exists() or results.read_bytes().count(b",sent,") < after
        ):
            await asyncio.sleep(0.02)
    process.send_signal(sig)
    _, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, err.decode()


async def dossiers_named(sim: Simulator, references: list[str]) -> dict[str, int]:
    """How many dossiers the server holds for each reference."""
    wanted = set(references)
    counts = dict.fromkeys(references, 0)
    async with client_for(sim) as client:
        async for item in client.dossiers.scan(raw=True, page_size=200):
            if item.get("dossierReference") in wanted:
                counts[item["dossierReference"]] += 1
    return counts


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
async def test_an_interrupted_create_leaves_results_and_a_rerun_creates_nothing_twice(
    sim: Simulator, tmp_path: Path, sig: signal.Signals
) -> None:
    sim.faults.latency = 0.02  # slow enough to interrupt mid-way
    try:
        csv_path = tmp_path / "suppliers.csv"
        references = many_rows(csv_path, f"BULK-{sig.name}", 80)
        before = len(creations(sim))
        code, err = await interrupt_create(sim, csv_path, sig, after=20)
        sent_first = len(creations(sim)) - before
        assert 20 <= sent_first < 80
        results = csv_path.with_name("suppliers.results.csv")
        with results.open(encoding="utf-8", newline="") as handle:
            journal = list(csv.DictReader(handle))
        recorded = {line["dossierReference"] for line in journal if line["status"] == "sent"}
        assert len(recorded) >= sent_first - 1  # at most the one in flight is not known
        if sig == signal.SIGINT:
            assert code == 130
            assert "Traceback" not in err
            assert "run the same command again" in err
        else:
            assert code == -signal.SIGKILL
        sim.faults.latency = 0.0
        if sig == signal.SIGINT:  # dry run: says what it would do, sends nothing
            code, out, err = await eattest(
                "create", "--csv", str(csv_path), "--dry-run", env=connection(sim)
            )
            assert code == 0, err
            fresh = 80 - len({line["dossierReference"] for line in journal})
            assert f"would send {fresh}," in out
            assert "nothing was sent" in out
            assert len(creations(sim)) - before == sent_first
        code, out, err = await eattest("create", "--csv", str(csv_path), env=connection(sim))
        assert code == 0, err
        assert "resuming:" in err
        assert "are not sent again" in err
        assert "80 created, 0 failed" in out
        sent_again = [c["dossierReference"] for c in creations(sim)[before + sent_first :]]
        assert not set(sent_again) & recorded  # nothing known to be sent was sent again
        assert await dossiers_named(sim, references) == dict.fromkeys(references, 1)
        with results.open(encoding="utf-8", newline="") as handle:
            final = list(csv.DictReader(handle))
        assert sorted(line["dossierReference"] for line in final) == references
        assert {line["status"] for line in final} == {"created"}
        if sig == signal.SIGKILL:  # once more: everything is skipped, nothing is sent
            code, out, err = await eattest("create", "--csv", str(csv_path), env=connection(sim))
            assert code == 0, err
            assert "80 skipped" in out
            assert len(creations(sim)) - before == sent_first + len(sent_again)
    finally:
        sim.faults.latency = 0.0


async def test_after_a_kill_a_rerun_matches_each_row_to_its_own_result_exactly(
    sim: Simulator, tmp_path: Path
) -> None:
    """The journal once folded spaces ("A  B" and "A\u00a0B" became "A B"): after a kill,
    a row no longer matched its own line, and the rerun sent it again."""
    references = ["FOLD  TWO", "FOLD TWO", "FOLD\u00a0NBSP", "FOLD-PLAIN"]
    path = tmp_path / "spaces.csv"
    path.write_text(
        HEADER + "\n" + "".join(f"CIT001,{SIRET},{r},,ATT_VIGI\n" for r in references),
        encoding="utf-8",
    )
    before = len(creations(sim))
    sim.faults.latency = 0.5  # the run is still following its processes when killed
    try:
        code, _ = await interrupt_create(sim, path, signal.SIGKILL, after=len(references))
    finally:
        sim.faults.latency = 0.0
    assert code == -signal.SIGKILL
    assert sorted(c["dossierReference"] for c in creations(sim)[before:]) == sorted(references)
    code, out, err = await eattest("create", "--csv", str(path), env=connection(sim))
    assert code == 0, err
    assert "4 created, 0 failed" in out
    assert len(creations(sim)) - before == len(references)  # none sent twice
    with path.with_name("spaces.results.csv").open(encoding="utf-8", newline="") as handle:
        final = {line["dossierReference"]: line["status"] for line in csv.DictReader(handle)}
    assert final == dict.fromkeys(references, "created")


async def test_create_stops_at_an_exhausted_rate_limit_and_resumes_later(
    sim: Simulator, tmp_path: Path
) -> None:
    from eattest_async.simulator import FaultAction

    csv_path = tmp_path / "limited.csv"
    references = many_rows(csv_path, "LIMITED", 5)
    env = connection(sim)
    await_first = len(creations(sim))
    # The third creation meets a Retry-After longer than the client waits: exit 4, at once.
    sim.faults.add(FaultAction(kind="delay", operation="create_dossier", times=2))  # let 2 by
    sim.faults.add(
        FaultAction(kind="status", status=429, retry_after=400, operation="create_dossier")
    )
    code, out, err = await eattest("create", "--csv", str(csv_path), env=env)
    assert code == 4, err
    assert "Traceback" not in err
    assert "run the same command again" in err
    assert not sim.faults.script
    code, out, err = await eattest("create", "--csv", str(csv_path), env=env)
    assert code == 0, err
    assert "5 created, 0 failed" in out  # the 2 sent are followed, not sent again
    assert await dossiers_named(sim, references) == dict.fromkeys(references, 1)
    assert len(creations(sim)) - await_first == 3 + 3  # 2 created + the refused one; then 3


async def test_output_piped_to_head_stops_quietly(tmp_path: Path) -> None:
    async with Simulator(seed=16, dossiers=1000) as big:  # far more output than a pipe holds
        shell = (
            f"set -o pipefail; {sys.executable} -c '{COMMAND}' scan dossiers --out - "
            "2> err.txt | head -n 1 > first.txt"
        )
        process = await asyncio.create_subprocess_exec(
            "bash", "-c", shell, cwd=tmp_path, env={**os.environ, **connection(big)}
        )
        assert await asyncio.wait_for(process.wait(), 120) == 141
    assert orjson.loads((tmp_path / "first.txt").read_bytes())["dossierId"]
    err = (tmp_path / "err.txt").read_text()
    assert "Traceback" not in err
    assert "Exception ignored" not in err
    assert "error" not in err


async def test_scan_onto_a_full_disk_is_one_error_and_no_false_checkpoint(
    sim: Simulator, tmp_path: Path
) -> None:
    import resource

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (4_000, 4_000))

    out = tmp_path / "d.jsonl"
    code, _, err = await eattest(
        "scan",
        "dossiers",
        "--out",
        str(out),
        "--page-size",
        "10",
        env=connection(sim),
        preexec=small_disk,
    )
    assert code == 1
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines[-1] == f"error: {out}: File too large"
    assert "no new checkpoint" in lines[0]  # it would count pages the file does not hold
    checkpoint = Path(f"{out}.checkpoint.json")
    if checkpoint.exists():  # a periodic one, from before the failure: its pages are written
        whole_lines = out.read_bytes().count(b"\n")
        assert len(orjson.loads(checkpoint.read_bytes())["done_pages"]) * 10 <= whole_lines
