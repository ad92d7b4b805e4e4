"""The client against the simulator over loopback: tokens, retries, errors, every operation."""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import logging
import sys
import time
from pathlib import Path

import aiohttp
import anyio
import orjson
import pytest

import eattest_async as ea
from eattest_async.simulator import DOSSIER_ID_BASE, FaultAction, Simulator

from .conftest import client_for

pytestmark = pytest.mark.anyio

TOMORROW = dt.date.today() + dt.timedelta(days=1)


def siret_with_prefix(prefix: str) -> str:
    from eattest_async._validation import luhn_check_digit

    body = (prefix + "12345678")[:8]
    siren = body + luhn_check_digit(body)
    return siren + "0001" + luhn_check_digit(siren + "0001")


# -- every operation ---------------------------------------------------------------------


async def test_every_operation_of_both_specs(
    sim: Simulator, client: ea.Client, tmp_path: Path
) -> None:
    account = await client.account.get()
    assert account.id == sim.account_id
    assert (await client.account.statistics()).number_of_dossiers == 2000
    thirdparties = await client.thirdparties.list(page_size=3)
    assert len(thirdparties) == 3
    assert thirdparties.total_elements == sim.data.thirdparty_count()
    details = await client.thirdparties.get(thirdparties.items[0].thirdparty_id or 0)
    assert details.siren == thirdparties.items[0].siren
    found = await client.thirdparties.search("workforce>100 AND isActive:true", page_size=5)
    assert all((t.workforce or 0) > 100 and not t.out_of_business for t in found)
    page = await client.dossiers.list(monitored=True, page=1, page_size=20)
    assert (page.page, page.size, page.page_count) == (1, 20, -(-page.total_elements // 20))  # type: ignore[operator]
    dossier = page.items[0]
    assert dossier.monitored is True
    assert await client.dossiers.get(dossier.dossier_id or 0) == dossier
    documents = await client.documents.list(dossier.dossier_id or 0)
    assert documents == dossier.documents
    document = next(d for d in documents if d.files)
    assert (
        await client.documents.get(dossier.dossier_id or 0, document.document_id or 0) == document
    )
    assert (
        await client.files.list(dossier.dossier_id or 0, document.document_id or 0)
        == document.files
    )
    evidences = await client.files.evidences(dossier.dossier_id or 0, document.document_id or 0)
    assert [e.file_id for e in evidences] == [f.file_id for f in document.files]
    assert evidences[0].metadata
    target = await client.files.download(
        dossier.dossier_id or 0,
        document.document_id or 0,
        document.files[0].file_id or 0,
        dest=tmp_path,
        expected_size=document.files[0].file_size,
    )
    assert target.parent == tmp_path
    assert target.read_bytes().startswith(b"%PDF")
    assert {r.code for r in await client.requirements.list()} >= {"ATT_VIGI", "JUSTIF_IMM"}
    assert [r.code for r in await client.requirements.for_dossier(dossier.dossier_id or 0)] == [
        d.document_code for d in documents
    ]
    await client.requirements.update(dossier.dossier_id or 0, ["ATT_VIGI", "RIB"])
    assert [r.code for r in await client.requirements.for_dossier(dossier.dossier_id or 0)] == [
        "ATT_VIGI",
        "RIB",
    ]
    await client.dossiers.update(
        dossier.dossier_id or 0, description="reviewed", expiration_date=TOMORROW
    )
    assert (await client.dossiers.get(dossier.dossier_id or 0)).description == "reviewed"
    await client.dossiers.stop(dossier.dossier_id or 0)
    assert (await client.dossiers.get(dossier.dossier_id or 0)).monitored is False
    await client.dossiers.reactivate(dossier.dossier_id or 0, expiration_date=TOMORROW)
    process = await client.dossiers.create(
        ea.NewDossier(
            company_id_type="CIT001",
            company_id_value=dossier.siret or "",
            dossier_reference="NEW-1",
            required_documents=["ATT_VIGI"],
            thirdparty_email=["achats@fournisseur.fr"],
        )
    )
    status = await client.processes.wait(process.process_id, interval=0.02)
    assert status.success is True
    created = await client.dossiers.list(dossier_reference="NEW-1")
    assert [d.dossier_id for d in created] == [status.dossier_id]
    assert process.process_id in [
        p.process_id for p in await client.processes.list(since="2020-01-01")
    ]
    assert (await client.processes.get(process.process_id)).complete is True
    operations = {
        "get_account",
        "get_account_statistics",
        "list_thirdparties",
        "get_thirdparty",
        "search_thirdparties",
        "list_dossiers",
        "get_dossier",
        "create_dossier",
        "update_dossier",
        "stop_dossier",
        "reactivate_dossier",
        "list_documents",
        "get_document",
        "list_files",
        "list_evidences",
        "download_file",
        "list_requirements",
        "list_dossier_requirements",
        "update_dossier_requirements",
        "get_process",
        "list_processes",
    }
    assert operations <= set(sim.stats.requests), operations - set(sim.stats.requests)


async def test_account_id_comes_from_the_token_and_can_be_given(sim: Simulator) -> None:
    async with client_for(sim) as client:
        assert await client.account_id() == sim.account_id
        assert sim.stats.requests["get_account"] == 0  # the JWT claim sufficed
    async with client_for(sim, account_id=123) as client:
        with pytest.raises(ea.NotFoundError) as info:
            await client.dossiers.list()
        assert info.value.status == 404
        assert "/account/123/dossiers" in str(info.value)


# -- tokens ----------------------------------------------------------------------------------


async def test_200_concurrent_calls_on_an_expired_token_make_one_token_request() -> None:
    # 2 s: the renewed token must outlive sending the 200 calls, even on a loaded machine
    # (with 0.5 s, a busy 2-core box sent some after it expired: a second renewal).
    async with Simulator(dossiers=50, access_token_lifetime=2) as sim, client_for(sim) as client:
        await client.account.get()
        await anyio.sleep(2)  # the token's real lifetime runs out (nothing races here)
        sim.reset()
        async with anyio.create_task_group() as group:
            for _ in range(200):
                group.start_soon(client.account.get)
        assert sim.stats.requests["token"] == 1
        assert sim.stats.token_grants == {"refresh_token": 1}
        assert sim.stats.requests["get_account"] == 200
        assert sim.stats.statuses[401] == 0


async def test_200_concurrent_calls_refused_by_the_server_renew_once(
    sim: Simulator, client: ea.Client
) -> None:
    await client.account.get()
    sim.expire_access_tokens()  # the server refuses a token the client still believes fresh
    sim.reset()
    results = []

    async def call() -> None:
        results.append(await client.account.get())

    async with anyio.create_task_group() as group:
        for _ in range(200):
            group.start_soon(call)
    assert len(results) == 200
    assert sim.stats.requests["token"] == 1
    assert sim.stats.token_grants == {"refresh_token": 1}


async def test_revoked_mid_run_every_call_succeeds_with_one_reauthentication(
    sim: Simulator, client: ea.Client
) -> None:
    done = 0

    async def worker(n: int) -> None:
        nonlocal done
        for i in range(10):
            await client.dossiers.list(page=(n + i) % 50)
            done += 1
            if n == 0 and i == 4:
                sim.revoke_tokens()

    async with anyio.create_task_group() as group:
        for n in range(10):
            group.start_soon(worker, n)
    assert done == 100
    assert sim.stats.token_grants["password"] == 2  # the first sign-in and one re-authentication
    assert sim.stats.token_refusals["invalid_grant"] == 1  # the refresh was tried first, once


async def test_expired_refresh_token_falls_back_to_the_password_grant() -> None:
    async with (
        Simulator(dossiers=10, access_token_lifetime=0.2, refresh_token_lifetime=0.4) as sim,
        client_for(sim) as client,
    ):
        await client.account.get()
        await anyio.sleep(0.45)  # both lifetimes run out
        await client.account.get()
        assert sim.stats.token_grants == {"password": 2}
        assert sim.stats.token_refusals == {}  # the client knew, and did not even try


async def test_refresh_rejected_by_the_server_falls_back_to_the_password_grant(
    sim: Simulator, client: ea.Client
) -> None:
    await client.account.get()
    sim.revoke_tokens()
    await client.account.get()
    assert sim.stats.token_refusals == {"invalid_grant": 1}
    assert sim.stats.token_grants == {"password": 2}


async def test_bad_credentials_are_an_authentication_error(sim: Simulator) -> None:
    async with ea.Client(sim.environment, username=sim.username, password="wrong") as client:
        with pytest.raises(ea.AuthenticationError) as info:
            await client.account.get()
    assert info.value.error == "invalid_grant"
    assert info.value.status == 401
    assert sim.stats.requests["get_account"] == 0


# -- the retry loop and the rate gate ------------------------------------------------------


@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_retry_after_is_honoured_in_both_forms(
    sim: Simulator, client: ea.Client, form: str
) -> None:
    await client.account.get()
    sim.faults.add(
        FaultAction(
            kind="status",
            status=429,
            retry_after=2,
            retry_after_format=form,  # type: ignore[arg-type]
            operation="get_account",
        )
    )
    started = time.time()
    await client.account.get()
    attempts = [r for r in sim.requests if r.operation == "get_account"][-2:]
    refused, accepted = attempts
    assert refused.status == 429
    assert accepted.status == 200
    assert sim.stats.early_requests == 0
    gap = accepted.time - refused.time
    minimum = (
        2.0
        if form == "seconds"
        else (int(started + 2) + (started + 2 > int(started + 2))) - refused.time
    )
    assert gap >= min(2.0, minimum) - 0.01
    assert client.stats.retries["429"] == 1


async def test_server_errors_are_retried_and_counted(sim: Simulator, client: ea.Client) -> None:
    sim.faults.add(
        FaultAction(kind="status", status=502),
        FaultAction(kind="status", status=504),
        FaultAction(kind="html", status=502),
    )
    assert (await client.account.get()).id == sim.account_id
    assert client.stats.retries == {"502": 2, "504": 1}


async def test_persistent_errors_surface_typed_after_the_policy(sim: Simulator) -> None:
    sim.faults.error_rate, sim.faults.error_statuses = 1.0, (500,)
    async with client_for(sim, retry=ea.RetryPolicy(attempts=3, initial_backoff=0.01)) as client:
        with pytest.raises(ea.ServerError) as info:
            await client.dossiers.list()
    assert info.value.status == 500
    assert sim.stats.requests["list_dossiers"] == 3


async def test_a_post_that_may_have_reached_the_server_is_not_repeated(
    sim: Simulator, client: ea.Client
) -> None:
    new = ea.NewDossier(
        company_id_type="CIT001", company_id_value="50382936800045", dossier_reference="R"
    )
    sim.faults.add(FaultAction(kind="status", status=500, operation="create_dossier"))
    with pytest.raises(ea.ServerError):
        await client.dossiers.create(new)
    assert sim.stats.requests["create_dossier"] == 1
    sim.faults.add(FaultAction(kind="status", status=500, operation="create_dossier"))
    process = await client.dossiers.create(new, retry=True)  # the caller opted in
    assert process.process_id
    assert sim.stats.requests["create_dossier"] == 3
    sim.faults.add(
        FaultAction(kind="status", status=503, retry_after=1, operation="create_dossier")
    )
    await client.dossiers.create(new)  # a 503 with Retry-After was not acted on: safe to repeat
    assert sim.stats.requests["create_dossier"] == 5


async def test_timeouts_per_client_and_per_call(sim: Simulator) -> None:
    sim.faults.latency = 0.3
    async with client_for(
        sim, timeouts=ea.Timeouts(json=0.1), retry=ea.RetryPolicy.none()
    ) as client:
        await client.account_id()  # the token endpoint has no latency
        with pytest.raises(ea.RequestTimeoutError) as info:
            await client.dossiers.list()
        assert isinstance(info.value, TimeoutError)
        assert (await client.dossiers.list(timeout=2.0)).total_elements == 2000


async def test_dropped_and_truncated_answers_are_retried(sim: Simulator, client: ea.Client) -> None:
    sim.faults.add(
        FaultAction(kind="drop"),
        FaultAction(kind="truncate"),
        FaultAction(kind="malformed"),
        FaultAction(kind="empty"),
    )
    page = await client.dossiers.list(page=3)
    assert page.page == 3
    assert client.stats.retries == {"incomplete": 2, "bad-body": 2}


# -- typed errors ------------------------------------------------------------------------------


async def test_each_e_code_family_is_its_typed_error(client: ea.Client) -> None:
    dossier = (await client.dossiers.list(monitored=True)).items[0]
    did = dossier.dossier_id or 0
    with pytest.raises(ea.ParameterError) as parameter:
        await client.thirdparties.search("( workforce>2")
    assert parameter.value.codes == ("E010",)
    with pytest.raises(ea.RequirementError) as requirement:
        await client.requirements.update(did, ["NOT_A_CODE"])
    assert requirement.value.codes == ("E302",)
    assert "NOT_A_CODE" in requirement.value.messages[0]
    await client.dossiers.stop(did)
    with pytest.raises(ea.DossierUpdateError) as update:
        await client.dossiers.stop(did)
    assert update.value.codes == ("E201",)
    assert update.value.path.endswith(f"/dossiers/{did}/stop")
    await client.dossiers.reactivate(did)
    with pytest.raises(ea.DossierUpdateError) as reactivate:
        await client.dossiers.reactivate(did)
    assert reactivate.value.codes == ("E204",)
    process = await client.dossiers.create(
        ea.NewDossier(
            company_id_type="CIT001",
            company_id_value=siret_with_prefix("999"),
            dossier_reference="X",
        )
    )
    with pytest.raises(ea.DossierCreationError) as creation:
        await client.processes.wait(process.process_id, interval=0.02)
    assert creation.value.codes == ("E102",)
    assert creation.value.messages == ("The establishment does not exist",)
    failed = await client.processes.wait(process.process_id, raise_on_failure=False)
    assert failed.failed
    with pytest.raises(ea.NotFoundError):
        await client.dossiers.get(1)


async def test_server_side_page_size_limit_is_a_parameter_error() -> None:
    async with Simulator(dossiers=10, max_page_size=100) as sim, client_for(sim) as client:
        with pytest.raises(ea.ParameterError) as info:
            await client.dossiers.list(page_size=500)
    assert info.value.codes == ("E011",)


# -- local validation ----------------------------------------------------------------------------


async def test_bad_input_raises_before_any_request(sim: Simulator, client: ea.Client) -> None:
    await client.account_id()
    before = sim.stats.total_requests
    attempts = [
        (client.dossiers.list(siret="50382936800046"), "siret"),
        (client.dossiers.list(siren="12345678"), "siren"),
        (client.thirdparties.list(tva="FR00503829368"), "tva"),
        (client.dossiers.list(state_last_change_date="15/01/2024"), "state_last_change_date"),
        (client.dossiers.list(page_size=0), "page_size"),
        (client.dossiers.list(page=-1), "page"),
        (client.dossiers.list(company_id_type="SIRET"), "company_id_type"),
        (client.dossiers.get(-3), "dossier_id"),
        (
            client.dossiers.create(
                ea.NewDossier(
                    company_id_type="CIT001",
                    company_id_value="50382936800045",
                    dossier_reference="R",
                    thirdparty_email=["not-an-email"],
                )
            ),
            "thirdparty_email",
        ),
        (
            client.dossiers.create(
                ea.NewDossier(
                    company_id_type="CIT002",
                    company_id_value="FR00503829368",
                    dossier_reference="R",
                )
            ),
            "company_id_value",
        ),
        (
            client.dossiers.create(
                ea.NewDossier(
                    company_id_type="CIT001",
                    company_id_value="50382936800045",
                    dossier_reference=" ",
                )
            ),
            "dossier_reference",
        ),
        (
            client.dossiers.create(
                ea.NewDossier(
                    company_id_type="CIT001",
                    company_id_value="50382936800045",
                    dossier_reference="R",
                    expiration_date="2001-01-01",
                )
            ),
            "expiration_date",
        ),
        (client.dossiers.update(DOSSIER_ID_BASE), "update"),
        (client.requirements.update(DOSSIER_ID_BASE, "ATT_VIGI"), "codes"),
        (client.processes.list(since="yesterday"), "since"),
    ]
    for call, field in attempts:
        with pytest.raises(ea.InvalidInputError) as info:
            await call
        assert info.value.field == field
    assert sim.stats.total_requests == before


def test_configuration_is_checked_locally() -> None:
    with pytest.raises(ea.InvalidInputError, match="plain http"):
        ea.Environment.custom(base_url="http://rs.example.com/api/v1", token_url="https://a/t")
    assert ea.Environment.custom(
        base_url="http://rs.example.com/api/v1", token_url="http://a/t", allow_http=True
    ).allow_http
    assert ea.Environment.custom(base_url="http://[::1]:8/api/v1", token_url="http://localhost:9/t")
    with pytest.raises(ea.InvalidInputError, match="password"):
        ea.Client(ea.Environment.TEST, username="u")
    with pytest.raises(ea.InvalidInputError):
        ea.Client(ea.Environment.TEST)
    with pytest.raises(ea.InvalidInputError):
        ea.Timeouts(json=0)
    assert ea.Environment.PROD.base_url == "https://rs.e-attestations.com/api/v1"
    assert ea.Environment.TEST.token_url.startswith(
        "https://auth.test-e-attestations.com/auth/realms/eat_realm/"
    )


# -- lifecycle -----------------------------------------------------------------------------------


async def test_use_outside_or_after_the_context_is_a_clear_error(sim: Simulator) -> None:
    client = client_for(sim)
    with pytest.raises(ea.ClientClosedError, match="async with"):
        await client.dossiers.list()
    async with client:
        await client.account.get()
    with pytest.raises(ea.ClientClosedError, match="closed"):
        await client.account.get()
    with pytest.raises(ea.ClientClosedError):
        async with client:
            pass


async def test_an_injected_session_is_used_and_left_open(sim: Simulator) -> None:
    async with aiohttp.ClientSession() as session:
        async with client_for(sim, session=session) as client:
            await client.account.get()
        assert not session.closed
        async with session.get(sim.origin + "/_simulator/stats") as response:
            assert response.status == 200


# -- downloads ------------------------------------------------------------------------------------


async def first_file(client: ea.Client) -> tuple[int, int, ea.FileInfo]:
    for dossier in await client.dossiers.list(page_size=20):
        for document in dossier.documents:
            if document.files:
                return dossier.dossier_id or 0, document.document_id or 0, document.files[0]
    raise AssertionError("no file in the first page")


@pytest.mark.parametrize("kind", ["truncate", "drop"])
async def test_a_failed_download_leaves_no_file(sim: Simulator, tmp_path: Path, kind: str) -> None:
    async with client_for(sim, retry=ea.RetryPolicy.none()) as client:
        dossier_id, document_id, info = await first_file(client)
        sim.faults.add(FaultAction(kind=kind, operation="download_file"))
        with pytest.raises(ea.IncompleteResponseError):
            await client.files.download(dossier_id, document_id, info.file_id or 0, dest=tmp_path)
    assert list(tmp_path.iterdir()) == []


_FILLING_DISK = """
import asyncio, json, resource, signal, sys
import eattest_async as ea
base_url, token_url, username, password, dest, ids, limit = sys.argv[1:]
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails: EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (int(limit), int(limit)))
async def main():
    environment = ea.Environment.custom(base_url=base_url, token_url=token_url, name="sim")
    async with ea.Client(environment, username=username, password=password) as client:
        try:
            await client.files.download(*map(int, ids.split(",")), dest=dest)
        except ea.EattestError as error:
            print(json.dumps({"type": type(error).__name__, "errno": getattr(error, "errno", 0),
                              "oserror": isinstance(error, OSError), "message": str(error)}))
asyncio.run(main())
"""


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
async def test_a_disk_that_fills_up_mid_download_is_a_typed_error_and_leaves_nothing(
    sim: Simulator, client: ea.Client, tmp_path: Path
) -> None:
    dossier_id, document_id, info = await first_file(client)
    assert (info.file_size or 0) > 100
    # Another process, whose files may not grow past 100 bytes: the disk "fills up" then.
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _FILLING_DISK,
        sim.base_url,
        sim.token_url,
        sim.username,
        sim.password,
        str(tmp_path),
        f"{dossier_id},{document_id},{info.file_id}",
        "100",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    outcome = orjson.loads(out)
    assert outcome["type"] == "FileWriteError"
    assert outcome["errno"] == errno.EFBIG
    assert outcome["oserror"]
    assert outcome["message"].startswith(f"could not write the file into {tmp_path}: ")
    assert list(tmp_path.iterdir()) == []  # no partial file, no temp file


async def test_a_download_retried_after_a_cut_completes_whole(
    sim: Simulator, client: ea.Client, tmp_path: Path
) -> None:
    dossier_id, document_id, info = await first_file(client)
    sim.faults.add(FaultAction(kind="truncate", operation="download_file"))
    target = await client.files.download(dossier_id, document_id, info.file_id or 0, dest=tmp_path)
    assert target.stat().st_size == info.file_size
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


async def test_a_size_mismatch_is_refused(sim: Simulator, tmp_path: Path) -> None:
    async with client_for(sim, retry=ea.RetryPolicy.none()) as client:
        dossier_id, document_id, info = await first_file(client)
        with pytest.raises(ea.IncompleteResponseError, match="announced"):
            await client.files.download(
                dossier_id,
                document_id,
                info.file_id or 0,
                dest=tmp_path,
                expected_size=(info.file_size or 0) + 1,
            )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("hostile", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("/etc/shadow", "shadow"),
        ("..\\..\\windows\\system.ini", "system.ini"),
        ("a\x00b\x1f.pdf", "a_b_.pdf"),
        ("..", "file-"),
        ("invoice\u202efdp.exe", "invoicefdp.exe"),
        ("é" * 300 + ".pdf", None),
        ("CON.pdf", "_CON.pdf"),
    ],
)
async def test_hostile_file_names_stay_inside_the_destination(
    sim: Simulator, client: ea.Client, tmp_path: Path, hostile: str, expected: str | None
) -> None:
    dossier_id, document_id, info = await first_file(client)
    sim.faults.download_filename = hostile
    dest = tmp_path / "downloads"
    dest.mkdir()
    target = await client.files.download(dossier_id, document_id, info.file_id or 0, dest=dest)
    assert target.parent == dest
    assert [p.name for p in dest.iterdir()] == [target.name]
    assert list(tmp_path.iterdir()) == [dest]
    if expected is not None:
        assert target.name.startswith(expected)
    assert len(target.name.encode()) <= 200


# -- secrets ------------------------------------------------------------------------------------


async def test_debug_logging_never_shows_the_password_or_a_token(
    sim: Simulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with client_for(sim) as client:
        for page in range(3):
            await client.dossiers.list(page=page)
        sim.revoke_tokens()  # exercise refresh, fallback and re-authentication too
        await client.dossiers.list()
        sim.faults.add(FaultAction(kind="status", status=429, retry_after=1))
        await client.account.get()
        seen = [repr(client), repr(client._tokens), repr(client._tokens.current), str(client.stats)]  # type: ignore[union-attr]
        try:
            await client.dossiers.get(1)
        except ea.NotFoundError as exc:
            seen += [str(exc), repr(exc), repr(exc.__dict__)]
    secrets = {sim.password}
    for request in sim.requests:
        authorization = request.headers.get("Authorization", "")
        if authorization:
            secrets.add(authorization.split(" ", 1)[1])
        if request.operation == "token":
            for part in request.body.decode().split("&"):
                key, _, value = part.partition("=")
                if key in ("refresh_token", "password"):
                    from urllib.parse import unquote_plus

                    secrets.add(unquote_plus(value))
    assert len(secrets) >= 4  # password, two access tokens at least, a refresh token
    output = "\n".join(caplog.messages + [r.getMessage() for r in caplog.records] + seen)
    assert "retrying after 429" in output  # the log was really captured
    for secret in secrets:
        assert secret not in output


async def test_a_renewed_token_revoked_again_is_renewed_once_more_and_no_more(
    sim: Simulator, client: ea.Client
) -> None:
    await client.account.get()
    sim.reset()
    sim.faults.add(FaultAction(kind="revoke", operation="get_account", times=2))
    assert (await client.account.get()).id == sim.account_id
    assert sim.stats.token_grants == {"password": 2}  # a re-authentication per revocation
    sim.reset()
    sim.faults.add(FaultAction(kind="revoke", operation="get_account", times=3))
    with pytest.raises(ea.UnauthorizedError):
        await client.account.get()
    assert sim.stats.requests["get_account"] == 3  # the call and two replays, never a storm
    assert sim.stats.token_grants == {"password": 2}
