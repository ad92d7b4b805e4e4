"""The simulator's ``spec`` dialect and the client's requests, checked against the official
v1.1 OpenAPI document by a validator nobody here wrote (openapi-core)."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

import eattest_async as ea
from eattest_async.simulator import Dialect, Simulator

from .conftest import bearer, client_for
from .openapi_check import (
    mock_request,
    openapi,
    operation_of,
    request_violations,
    response_violations,
)

pytestmark = pytest.mark.anyio

TOMORROW = (dt.date.today() + dt.timedelta(days=1)).isoformat()

# The 18 operations of the v1.1 document.
OPERATIONS = {
    f"{method.upper()} {path}"
    for path, item in openapi().spec["paths"].items()
    for method in ("get", "post")
    if method in item
}


@pytest.fixture
async def spec_sim() -> AsyncIterator[Simulator]:
    async with Simulator(seed=5, dossiers=300, process_delay=0.01, dialect="spec") as sim:
        yield sim


class Recorder:
    """Raw HTTP calls to the simulator, each kept with its answer for the validator."""

    def __init__(self, http: aiohttp.ClientSession, sim: Simulator, headers: dict[str, str]):
        self.http, self.sim, self.headers = http, sim, headers
        self.exchanges: list[tuple[Any, int, dict[str, str], bytes]] = []

    async def __call__(
        self, method: str, path: str, body: Any = None, **query: str
    ) -> tuple[int, Any]:
        data = None if body is None else orjson.dumps(body)
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        async with self.http.request(
            method, self.sim.base_url + path, params=query or None, data=data, headers=headers
        ) as response:
            raw = await response.read()
            answer_headers = dict(response.headers)
            status = response.status
        request = mock_request(method, "/api/v1" + path, query=query, headers=headers, body=data)
        self.exchanges.append((request, status, answer_headers, raw))
        is_json = answer_headers.get("Content-Type", "").startswith("application/json")
        return status, orjson.loads(raw) if is_json and raw else raw


async def drive_every_operation(call: Recorder, sim: Simulator) -> None:
    acc = f"/account/{sim.account_id}"
    assert (await call("GET", "/account"))[0] == 200
    assert (await call("GET", acc))[0] == 200
    assert (await call("GET", acc + "/thirdparties", pageSize="5", page="1"))[0] == 200
    _, tps = await call("GET", acc + "/thirdparties", monitored="true", subscriptionState="false")
    tp_id = tps["content"][0]["thirdpartyId"]
    assert (await call("GET", f"{acc}/thirdparties/{tp_id}"))[0] == 200
    foreign = next(
        sim.data.thirdparty(j).thirdparty_id
        for j in range(300)
        if sim.data.thirdparty(j).country != "FR"
    )
    assert (await call("GET", f"{acc}/thirdparties/{foreign}"))[0] == 200  # no address: no null
    _, dossiers = await call("GET", acc + "/dossiers", pageSize="50")
    for dossier in dossiers["content"][:3]:
        did = dossier["dossierId"]
        assert (await call("GET", f"{acc}/dossiers/{did}"))[0] == 200
        _, docs = await call("GET", f"{acc}/dossiers/{did}/documents")
        for doc in docs["content"]:
            assert (await call("GET", f"{acc}/dossiers/{did}/documents/{doc['documentId']}"))[
                0
            ] == 200
            for info in doc["listFileInformation"]:
                status, _ = await call(
                    "GET",
                    f"{acc}/dossiers/{did}/documents/{doc['documentId']}/files/{info['fileId']}",
                )
                assert status == 200
        assert (await call("GET", f"{acc}/dossiers/{did}/requirements"))[0] == 200
    stopped = next(d for d in dossiers["content"] if not d["monitored"])
    assert stopped.get("stoppingDate")
    did = next(d["dossierId"] for d in dossiers["content"] if d["monitored"])
    assert (await call("GET", acc + "/requirements"))[0] == 200
    assert (await call("POST", f"{acc}/dossiers/{did}/requirements", ["ATT_VIGI"]))[0] == 200
    assert (await call("POST", f"{acc}/dossiers/{did}", {"description": "new"}))[0] == 200
    assert (await call("POST", f"{acc}/dossiers/{did}/stop"))[0] == 200
    assert (await call("GET", f"{acc}/dossiers/{did}"))[0] == 200  # stopped: a stoppingDate
    assert (await call("POST", f"{acc}/dossiers/{did}/reactivate", {"expirationDate": TOMORROW}))[
        0
    ] == 200
    tp = sim.data.thirdparty(0)
    new = {
        "companyIdType": tp.company_id_type,
        "companyIdValue": tp.company_id_value,
        "dossierReference": "SPEC-1",
        "requiredDocuments": ["ATT_VIGI"],
    }
    _, created = await call("POST", acc + "/dossiers", new)
    process_id = created["content"]["processId"]
    assert (await call("GET", f"{acc}/dossiers/process/{process_id}"))[0] == 200
    await asyncio.sleep(0.05)  # the simulated process takes 0.01 s
    assert (await call("GET", f"{acc}/dossiers/process/{process_id}"))[0] == 200
    assert (await call("GET", acc + "/dossiers/processes", fromDate="2020-01-01"))[0] == 200
    # Refusals and absences are answered too, and checked as well.
    assert (await call("GET", acc + "/dossiers", foo="1"))[0] == 400
    assert (await call("GET", f"{acc}/dossiers/1"))[0] == 404
    assert (await call("POST", f"{acc}/dossiers/{did}/reactivate", {}))[0] == 400  # E204


async def test_every_answer_of_the_spec_dialect_follows_the_spec(
    spec_sim: Simulator, http: aiohttp.ClientSession
) -> None:
    call = Recorder(http, spec_sim, await bearer(spec_sim, http))
    await drive_every_operation(call, spec_sim)
    seen: set[str] = set()
    violations: dict[str, list[str]] = collections.defaultdict(list)
    for request, status, headers, body in call.exchanges:
        operation = operation_of(request)
        seen.add(operation)
        violations[operation] += response_violations(request, status, headers, body)
    assert seen == OPERATIONS, len(OPERATIONS)
    assert {op: found for op, found in violations.items() if found} == {}


async def test_the_captured_dialect_is_what_the_spec_check_catches(
    http: aiohttp.ClientSession,
) -> None:
    """The check is not vacuous: the captured dialect's known deviations are found."""
    async with Simulator(seed=5, dossiers=300, dialect="captured") as sim:
        call = Recorder(http, sim, await bearer(sim, http))
        await call("GET", "/account")
        await call("GET", f"/account/{sim.account_id}/dossiers")
        found = [v for exchange in call.exchanges for v in response_violations(*exchange)]
    assert any("content: [" in v or "is not of type 'object'" in v for v in found)
    assert any("is not a 'date'" in v for v in found)
    assert any("not nullable" in v for v in found)


async def every_method(client: ea.Client, sim: Simulator) -> dict[str, Any]:
    """Every public method of the client once; what each returned, by name."""
    results: dict[str, Any] = {}
    results["account.get"] = await client.account.get()
    results["account.statistics"] = await client.account.statistics()
    results["thirdparties.list"] = page = await client.thirdparties.list(
        monitored=True, page_size=5
    )
    tp_id = page.items[0].thirdparty_id
    assert tp_id is not None
    results["thirdparties.get"] = await client.thirdparties.get(tp_id)
    results["thirdparties.search"] = await client.thirdparties.search("workforce>100")
    results["dossiers.list"] = dossiers = await client.dossiers.list(page_size=20)
    dossier = next(d for d in dossiers if d.monitored and d.dossier_id)
    did = dossier.dossier_id
    assert did is not None
    results["dossiers.get"] = await client.dossiers.get(did)
    results["documents.list"] = documents = await client.documents.list(did)
    document = next(d for d in documents if d.files)
    assert document.document_id is not None
    results["documents.get"] = await client.documents.get(did, document.document_id)
    results["files.list"] = await client.files.list(did, document.document_id)
    results["files.evidences"] = await client.files.evidences(did, document.document_id)
    results["requirements.list"] = await client.requirements.list()
    results["requirements.for_dossier"] = await client.requirements.for_dossier(did)
    results["requirements.update"] = await client.requirements.update(did, ["ATT_VIGI"])
    results["dossiers.update"] = await client.dossiers.update(did, description="checked")
    results["dossiers.stop"] = await client.dossiers.stop(did)
    results["dossiers.reactivate"] = await client.dossiers.reactivate(did, expiration_date=TOMORROW)
    tp = sim.data.thirdparty(1)
    results["dossiers.create"] = process = await client.dossiers.create(
        ea.NewDossier(
            company_id_type=tp.company_id_type,
            company_id_value=tp.company_id_value,
            dossier_reference="METHODS-1",
        )
    )
    results["processes.get"] = await client.processes.get(process.process_id)
    results["processes.wait"] = await client.processes.wait(process.process_id, interval=0.01)
    results["processes.list"] = await client.processes.list(since="2020-01-01")
    return results


async def test_the_clients_requests_follow_the_spec(spec_sim: Simulator, tmp_path: Any) -> None:
    async with client_for(spec_sim) as client:
        await every_method(client, spec_sim)
        dossier = (await client.dossiers.list(monitored=True)).items[0]
        assert dossier.dossier_id is not None
        document = next(d for d in dossier.documents if d.files)
        assert document.document_id is not None
        assert document.files[0].file_id is not None
        await client.files.download(
            dossier.dossier_id, document.document_id, document.files[0].file_id, dest=tmp_path
        )
    seen: set[str] = set()
    violations: dict[str, list[str]] = collections.defaultdict(list)
    for recorded in spec_sim.requests:
        if recorded.operation in ("token", "search_thirdparties", "list_files", "list_evidences"):
            continue  # the token endpoint and the EDGE reads are not in the v1.1 document
        request = mock_request(
            recorded.method,
            recorded.path,
            query=recorded.query,
            headers=recorded.headers,
            body=recorded.body,
        )
        operation = operation_of(request)
        seen.add(operation)
        violations[operation] += request_violations(request)
    assert seen == OPERATIONS, len(OPERATIONS)
    assert {op: found for op, found in violations.items() if found} == {}


@pytest.mark.parametrize(
    ("dialect", "documents"), [("spec", None), ("captured", None), ("captured", "v1.3")]
)
async def test_the_client_reads_both_dialects_alike(dialect: Dialect, documents: Any) -> None:
    async with (
        Simulator(seed=5, dossiers=300, process_delay=0.01, dialect=dialect) as sim,
        client_for(sim) as client,
    ):
        sim.faults.document_shape = documents
        results = await every_method(client, sim)
    account = results["account.get"]
    assert account.id == sim.account_id
    assert account.subscriptions
    assert results["account.statistics"].number_of_dossiers == 300
    assert results["thirdparties.list"].size == 5
    assert results["thirdparties.list"].total_elements > 0
    assert results["dossiers.list"].total_elements == 300
    dossier = results["dossiers.get"]
    assert dossier.state_last_change_date is not None
    assert dossier.documents
    assert all(d.request_date is not None for d in results["documents.list"])
    assert results["files.list"][0].file_size > 0
    assert results["processes.wait"].success is True
    assert results["requirements.list"]


@pytest.mark.parametrize("dialect", ["spec", "captured"])
async def test_every_method_gives_the_answers_messages(dialect: Dialect) -> None:
    async with (
        Simulator(seed=5, dossiers=300, process_delay=0.01, dialect=dialect) as sim,
        client_for(sim) as client,
    ):
        sim.faults.warning = "La clé d'API expire dans 3 jours"
        results = await every_method(client, sim)
    assert len(results) == 21
    for name, result in results.items():
        messages = result if isinstance(result, ea.Messages) else result.messages
        assert [m.code for m in messages.warning] == ["W001"], name
        assert messages.warning[0].message == "La clé d'API expire dans 3 jours", name
    assert results["dossiers.stop"].info  # the action's own info message, kept alongside


async def test_edge_parameters_q_and_op_are_sent_and_honoured(sim: Simulator) -> None:
    async with client_for(sim) as client:
        found = await client.thirdparties.list(q="workforce>400", page_size=100)
        assert found.total_elements
        details = [await client.thirdparties.get(t.thirdparty_id or 0) for t in found.items[:5]]
        assert all((d.workforce or 0) > 400 for d in details)
        starts = await client.dossiers.list(dossier_reference="DOS-000012", op="starts")
        assert {d.dossier_reference for d in starts} == {f"DOS-000012{i}" for i in range(10)}
        like = await client.dossiers.list(thirdparty_code="0000042", op="like")
        assert like.total_elements
        assert all("0000042" in (d.thirdparty_code or "") for d in like)
        with pytest.raises(ea.InvalidInputError, match="op"):
            await client.dossiers.list(op="starts")  # op needs a reference or a code
        with pytest.raises(ea.InvalidInputError, match="op"):
            await client.dossiers.list(dossier_reference="DOS", op="contains")
    sent = [(r.operation, r.query) for r in sim.requests if r.operation != "token"]
    assert ("list_thirdparties", {"q": "workforce>400", "page": "0", "pageSize": "100"}) in sent
    assert any(q.get("op") == "starts" for op, q in sent if op == "list_dossiers")


async def test_search_sends_only_what_its_operation_declares(sim: Simulator) -> None:
    async with client_for(sim) as client:
        first = await client.thirdparties.search("workforce>100")
        second = await client.thirdparties.search("workforce>100", page=1, page_size=5)
    assert first.page == 0
    assert second.page == 1
    queries = [r.query for r in sim.requests if r.operation == "search_thirdparties"]
    assert queries == [
        {"search": "workforce>100"},  # /thirdparties/q declares `search` alone
        {"search": "workforce>100", "page": "1", "pageSize": "5"},  # asked for explicitly
    ]
