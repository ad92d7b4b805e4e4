"""The eattest command line, run as users run it (a process of its own)."""

from __future__ import annotations

import asyncio
import csv
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import orjson
import pytest

from eattest_async.simulator import SimulatorProcess

pytestmark = pytest.mark.anyio


async def eattest(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from eattest_async.cli import main; main()",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "120", **(env or {})},
        cwd=cwd,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 120)
    except asyncio.TimeoutError:  # TimeoutError itself from 3.11 on
        process.kill()  # not left behind
        await process.wait()
        raise
    return process.returncode or 0, out.decode(), err.decode()


async def test_demo_scans_every_dossier_once_and_writes_them(tmp_path: Path) -> None:
    code, out, err = await eattest("demo", "--dossiers", "3000", "--rate-limit", "20", cwd=tmp_path)
    assert code == 0, err
    assert "3,000 of 3,000, each exactly once: yes" in out
    assert "requests before a Retry-After deadline: 0" in out
    lines = (tmp_path / "dossiers.jsonl").read_bytes().splitlines()
    assert len({orjson.loads(line)["dossierId"] for line in lines}) == 3000


@pytest.fixture
async def remote() -> AsyncIterator[SimulatorProcess]:
    async with SimulatorProcess("--dossiers", "700", "--password", "cli-secret-pw") as sim:
        yield sim


def connection(sim: SimulatorProcess) -> dict[str, str]:
    return {
        "EATTEST_BASE_URL": sim.base_url,
        "EATTEST_TOKEN_URL": sim.values["EATTEST_TOKEN_URL"],
        "EATTEST_USERNAME": sim.username,
        "EATTEST_PASSWORD": sim.password,
    }


async def test_scan_to_jsonl_csv_and_stdout(remote: SimulatorProcess, tmp_path: Path) -> None:
    env = connection(remote)
    code, _, err = await eattest(
        "scan", "dossiers", "--out", str(tmp_path / "d.jsonl"), "--page-size", "50", env=env
    )
    assert code == 0, err
    assert len((tmp_path / "d.jsonl").read_bytes().splitlines()) == 700
    code, _, err = await eattest("scan", "dossiers", "--out", str(tmp_path / "d.csv"), env=env)
    assert code == 0, err
    with (tmp_path / "d.csv").open(encoding="utf-8") as exported:
        rows = list(csv.DictReader(exported))
    assert len(rows) == 700
    assert {"dossierId", "siret", "I001", "documents_missing"} <= set(rows[0])
    code, out, err = await eattest("scan", "thirdparties", "--monitored", env=env)
    assert code == 0, err
    # List items carry no "monitored" (neither the spec's nor the captured shape): the
    # filter shows in the count, 1 in 10 third parties being unmonitored.
    assert 0 < len(out.splitlines()) < 560
    assert all("thirdpartyId" in orjson.loads(line) for line in out.splitlines())
    assert "cli-secret-pw" not in out + err


async def test_whoami_and_clear_errors_with_exit_codes(remote: SimulatorProcess) -> None:
    env = connection(remote)
    code, out, _ = await eattest("whoami", env=env)
    assert code == 0
    assert "account 119631" in out
    assert "token lifetime: 1800 s" in out
    code, _, err = await eattest("whoami", env={**env, "EATTEST_PASSWORD": "wrong"})
    assert code == 3
    assert "invalid_grant" in err
    assert "Traceback" not in err
    code, _, err = await eattest("scan", "dossiers", "--siren", "123", env=env)
    assert code == 2
    assert "siren" in err
    code, _, err = await eattest(
        "whoami", env={k: v for k, v in env.items() if k != "EATTEST_PASSWORD"}
    )
    assert code == 2
    assert "EATTEST_PASSWORD" in err


async def test_download_from_a_scan_file_then_resume(
    remote: SimulatorProcess, tmp_path: Path
) -> None:
    env = connection(remote)
    scan_file = tmp_path / "few.jsonl"
    code, out, err = await eattest("scan", "dossiers", "--out", "-", "--page-size", "5", env=env)
    assert code == 0, err
    scan_file.write_text("\n".join(out.splitlines()[:4]) + "\n", encoding="utf-8")
    expected = {
        (str(d["dossierId"]), f"{doc['documentCode']}_{f['fileId']}.pdf"): f["fileSize"]
        for d in map(orjson.loads, out.splitlines()[:4])
        for doc in d["documents"]
        for f in doc["listFileInformation"]
    }
    dest = tmp_path / "files"
    code, out, err = await eattest("download", "--from", str(scan_file), "--to", str(dest), env=env)
    assert code == 0, err
    written = {(p.parent.name, p.name): p.stat().st_size for p in dest.rglob("*") if p.is_file()}
    assert written == expected
    assert f"{len(expected)} downloaded, 0 already there, 0 failed" in out
    first_dossier = next(iter(expected))[0]
    code, out, err = await eattest(
        "download", "--dossier", first_dossier, "--from", str(scan_file), "--to", str(dest), env=env
    )
    assert code == 0, err
    assert "0 downloaded" in out  # everything was already complete: resumable


async def test_create_from_csv_checks_every_row_first_then_reports_results(
    remote: SimulatorProcess, tmp_path: Path
) -> None:
    from eattest_async._validation import luhn_check_digit

    env = connection(remote)
    closed = "99812345"
    closed_siret = closed + luhn_check_digit(closed)
    closed_siret += "0001" + luhn_check_digit(closed_siret + "0001")
    header = "companyIdType,companyIdValue,dossierReference,requiredDocuments,thirdpartyEmail\n"
    bad = tmp_path / "bad.csv"
    bad.write_text(
        header + "CIT001,50382936800045,OK-1,ATT_VIGI,\n"
        "CIT001,50382936800046,BAD-SIRET,,\n"
        "CIT001,50382936800045,BAD-MAIL,,not-an-email\n",
        encoding="utf-8",
    )
    code, _, err = await eattest("create", "--csv", str(bad), env=env)
    assert code == 2
    assert "row 3: company_id_value" in err
    assert "row 4: thirdparty_email" in err
    assert (await remote.stats())["requests"].get("create_dossier", 0) == 0  # nothing was sent
    good = tmp_path / "good.csv"
    good.write_text(
        header + "CIT001,50382936800045,NEW-REF-1,ATT_VIGI;JUSTIF_IMM,achats@client.fr\n"
        f"CIT001,{closed_siret},CLOSED-1,,\n",
        encoding="utf-8",
    )
    code, out, err = await eattest("create", "--csv", str(good), env=env)
    assert code == 1  # one creation failed
    assert "1 created, 1 failed" in out
    with (tmp_path / "good.results.csv").open(encoding="utf-8") as handle:
        results = {row["dossierReference"]: row for row in csv.DictReader(handle)}
    assert results["NEW-REF-1"]["status"] == "created"
    assert results["NEW-REF-1"]["dossierId"]
    assert results["CLOSED-1"]["status"] == "failed"
    assert results["CLOSED-1"]["codes"] == "E103"


async def test_ctrl_c_leaves_a_valid_partial_file_and_a_checkpoint_to_resume() -> None:
    import signal
    import tempfile

    async with SimulatorProcess(
        "--dossiers", "3000", "--latency", "0.05", "--password", "pw"
    ) as sim:
        env = connection(sim)
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "d.jsonl"
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                "from eattest_async.cli import main; main()",
                "scan",
                "dossiers",
                "--out",
                str(out),
                "--page-size",
                "50",
                "--concurrency",
                "2",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={**os.environ, **env},
            )
            with anyio.fail_after(60):  # wait for some output, then interrupt mid-scan
                while not out.exists() or out.stat().st_size < 100_000:  # noqa: ASYNC110 - another process writes the file
                    await asyncio.sleep(0.05)
            process.send_signal(signal.SIGINT)
            _, err = await asyncio.wait_for(process.communicate(), 60)
            assert process.returncode == 130, err.decode()
            partial = [orjson.loads(line) for line in out.read_bytes().splitlines()]
            assert 0 < len(partial) < 3000
            checkpoint = Path(str(out) + ".checkpoint.json")
            assert checkpoint.exists()
            code, _, err_text = await eattest(
                "scan",
                "dossiers",
                "--out",
                str(out),
                "--page-size",
                "50",
                "--resume",
                str(checkpoint),
                env=env,
            )
            assert code == 0, err_text
            ids = [orjson.loads(line)["dossierId"] for line in out.read_bytes().splitlines()]
            assert len(ids) == len(set(ids)) == 3000


async def test_no_command_shows_a_secret_even_at_debug_level(tmp_path: Path) -> None:
    from urllib.parse import parse_qs

    from eattest_async.simulator import Simulator

    async with Simulator(dossiers=120, process_delay=0.05) as sim:
        env = {
            "EATTEST_BASE_URL": sim.base_url,
            "EATTEST_TOKEN_URL": sim.token_url,
            "EATTEST_USERNAME": sim.username,
            "EATTEST_PASSWORD": sim.password,
            "EATTEST_LOG": "debug",
        }
        rows = tmp_path / "new.csv"
        rows.write_text(
            "companyIdType,companyIdValue,dossierReference\nCIT001,50382936800045,SECRET-TEST\n",
            encoding="utf-8",
        )
        outputs = []
        for args in (
            ["whoami"],
            ["scan", "dossiers", "--out", "-"],
            ["scan", "thirdparties", "--out", "-"],
            ["download", "--dossier", "800001", "--to", str(tmp_path / "files")],
            ["create", "--csv", str(rows)],
            ["whoami", "--username", "nobody"],
        ):
            _, out, err = await eattest(*args, env=env)
            outputs.append(out + err)
        secrets = {sim.password}
        for request in sim.requests:
            if "Authorization" in request.headers:
                secrets.add(request.headers["Authorization"].split(" ", 1)[1])
            if request.operation == "token":
                form = parse_qs(request.body.decode())
                secrets.update(form.get("refresh_token", []) + form.get("password", []))
    text = "\n".join(outputs)
    assert "DEBUG eattest_async" in text  # the debug log was really on
    assert len(secrets) >= 6  # the password, and a token for each of the 5 commands that signed in
    leaked = [secret[:12] + "..." for secret in secrets if secret in text]
    assert leaked == []


async def test_an_exhausted_rate_limit_exits_with_code_4(remote: SimulatorProcess) -> None:
    # A Retry-After longer than the client's patience (RetryPolicy.max_retry_after): it gives up.
    await remote.set_faults(
        script=[{"kind": "status", "status": 429, "retry_after": 400, "operation": "get_account"}]
    )
    code, _, err = await eattest("whoami", env=connection(remote))
    assert code == 4
    assert "429" in err
    assert "Traceback" not in err
