"""The simulator over real loopback HTTP: tokens, every operation, error families, faults."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import json
import time
from typing import Any

import aiohttp
import pytest

from eattest_async._validation import fr_vat_key, luhn_valid
from eattest_async.simulator import DOSSIER_ID_BASE, Dialect, FaultAction, Simulator
from eattest_async.simulator._jwt import _unb64

from .conftest import bearer

pytestmark = pytest.mark.anyio

TOMORROW = (dt.date.today() + dt.timedelta(days=1)).isoformat()
YESTERDAY = (dt.date.today() - dt.timedelta(days=1)).isoformat()


async def get(
    http: aiohttp.ClientSession, sim: Simulator, path: str, headers: dict[str, str], **params: Any
) -> tuple[int, Any]:
    async with http.get(sim.base_url + path, headers=headers, params=params or None) as response:
        return response.status, await response.json(content_type=None)


async def post(
    http: aiohttp.ClientSession, sim: Simulator, path: str, headers: dict[str, str], body: Any
) -> tuple[int, Any]:
    async with http.post(sim.base_url + path, headers=headers, json=body) as response:
        return response.status, await response.json(content_type=None)


def codes(body: dict[str, Any]) -> list[str]:
    return [m["code"] for m in body["messages"]["error"]]


# -- token endpoint -------------------------------------------------------------------


async def test_password_grant_issues_jwt_with_account_ids(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    form = {
        "client_id": "ea-api-edge",
        "grant_type": "password",
        "username": sim.username,
        "password": sim.password,
    }
    async with http.post(sim.token_url, data=form) as response:
        assert response.status == 200
        token = await response.json()
    assert token["expires_in"] == 1800
    assert token["refresh_expires_in"] == 1800
    assert token["token_type"].lower() == "bearer"
    import orjson

    claims = orjson.loads(_unb64(token["access_token"].split(".")[1]))
    assert claims["account_ids"] == str(sim.account_id)
    assert claims["exp"] > time.time() + 1700
    assert sim.stats.token_grants["password"] == 1


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"client_id": "other", "grant_type": "password"}, 401, "invalid_client"),
        ({"client_id": "ea-api-edge"}, 400, "invalid_request"),
        (
            {"client_id": "ea-api-edge", "grant_type": "client_credentials"},
            400,
            "unsupported_grant_type",
        ),
        (
            {
                "client_id": "ea-api-edge",
                "grant_type": "password",
                "username": "x",
                "password": "y",
            },
            401,
            "invalid_grant",
        ),
        (
            {"client_id": "ea-api-edge", "grant_type": "refresh_token", "refresh_token": "a.b.c"},
            400,
            "invalid_grant",
        ),
    ],
)
async def test_token_refusals_are_keycloak_shaped(
    sim: Simulator, http: aiohttp.ClientSession, form: dict[str, str], status: int, error: str
) -> None:
    async with http.post(sim.token_url, data=form) as response:
        assert response.status == status
        body = await response.json()
    assert body["error"] == error
    assert body["error_description"]


async def test_refresh_grant_then_revocation_then_expiry(http: aiohttp.ClientSession) -> None:
    async with Simulator(refresh_token_lifetime=0.4, access_token_lifetime=0.2) as sim:
        form = {
            "client_id": "ea-api-edge",
            "grant_type": "password",
            "username": sim.username,
            "password": sim.password,
        }
        async with http.post(sim.token_url, data=form) as response:
            first = await response.json()
        assert first["expires_in"] == 0.2
        refresh = {
            "client_id": "ea-api-edge",
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
        }
        async with http.post(sim.token_url, data=refresh) as response:
            assert response.status == 200
        await asyncio.sleep(0.45)  # let the refresh token's real lifetime run out
        async with http.post(sim.token_url, data=refresh) as response:
            assert response.status == 400
            assert (await response.json())["error_description"] == "Token is not active"
        async with http.post(sim.token_url, data=form) as response:
            second = await response.json()
        sim.revoke_tokens()
        refresh["refresh_token"] = second["refresh_token"]
        async with http.post(sim.token_url, data=refresh) as response:
            assert (await response.json())["error_description"] == "Session not active"
        assert sim.stats.token_grants == {"password": 2, "refresh_token": 1}


async def test_api_refuses_missing_expired_and_revoked_tokens(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    status, body = await get(http, sim, "/account", {})
    assert status == 401
    assert set(body) == {"timestamp", "status", "error", "message", "path"}
    assert body["timestamp"].endswith("+0000")
    headers = await bearer(sim, http)
    assert (await get(http, sim, "/account", headers))[0] == 200
    sim.expire_access_tokens()
    assert (await get(http, sim, "/account", headers))[0] == 401
    headers = await bearer(sim, http)
    assert (await get(http, sim, "/account", headers))[0] == 200
    sim.revoke_tokens()
    assert (await get(http, sim, "/account", headers))[0] == 401
    status, body = await get(http, sim, "/account/1/dossiers", await bearer(sim, http))
    assert (status, body["status"]) == (404, 404)


# -- every operation -------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["spec", "captured"])
async def test_every_operation_of_both_specs(http: aiohttp.ClientSession, dialect: Dialect) -> None:
    async with Simulator(seed=42, dossiers=2_000, process_delay=0.05, dialect=dialect) as sim:
        await every_operation(sim, http)


async def every_operation(sim: Simulator, http: aiohttp.ClientSession) -> None:
    spec = sim.dialect == "spec"
    h = await bearer(sim, http)
    acc = f"/account/{sim.account_id}"
    status, account = await get(http, sim, "/account", h)
    assert status == 200
    # An object as the spec says; a list as the real service was captured answering.
    assert (account["content"] if spec else account["content"][0])["id"] == sim.account_id
    status, stats = await get(http, sim, acc, h)
    assert stats["content"]["numberOfDossiers"] == 2000
    status, tps = await get(http, sim, acc + "/thirdparties", h)
    size_key = "pageSize" if spec else "size"
    assert (tps["page"], tps[size_key], len(tps["content"])) == (0, 10, 10)
    tp_id = tps["content"][0]["thirdpartyId"]
    status, tp = await get(http, sim, f"{acc}/thirdparties/{tp_id}", h)
    assert tp["content"]["thirdpartyId"] == tp_id
    assert tp["content"]["thirdpartyUsers"]
    status, found = await get(
        http, sim, acc + "/thirdparties/q", h, search="( workforce>200 AND isActive:true )"
    )
    assert status == 200
    assert all(t["workforce"] > 200 for t in found["content"])
    status, dossiers = await get(http, sim, acc + "/dossiers", h, pageSize="5")
    assert dossiers["totalElements"] == 2000
    assert len(dossiers["content"]) == 5
    dossier = next(d for d in dossiers["content"] if d["monitored"])
    did = dossier["dossierId"]
    status, one = await get(http, sim, f"{acc}/dossiers/{did}", h)
    assert one["content"] == dossier
    status, docs = await get(http, sim, f"{acc}/dossiers/{did}/documents", h)
    assert 3 <= len(docs["content"]) <= 6
    files_key, id_key = "listFileInformation", "fileId"  # v1.1 documents in both dialects
    doc = next(d for d in docs["content"] if d[files_key])
    status, one_doc = await get(http, sim, f"{acc}/dossiers/{did}/documents/{doc['documentId']}", h)
    assert one_doc["content"] == doc
    status, files = await get(
        http, sim, f"{acc}/dossiers/{did}/documents/{doc['documentId']}/files", h
    )
    assert files["content"][0][id_key] == doc[files_key][0][id_key]
    status, evidences = await get(
        http, sim, f"{acc}/dossiers/{did}/documents/{doc['documentId']}/evidences", h
    )
    assert evidences["content"][0]["id"] == doc[files_key][0][id_key]
    file_info = doc[files_key][0]
    async with http.get(
        f"{sim.base_url}{acc}/dossiers/{did}/documents/{doc['documentId']}/files/"
        f"{file_info[id_key]}",
        headers=h,
    ) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == (
            "application/octet-stream" if spec else "application/pdf"
        )
        assert "attachment; filename=" in response.headers["Content-Disposition"]
        content = await response.read()
    assert content.startswith(b"%PDF-1.4")
    assert content.rstrip().endswith(b"%%EOF")
    assert len(content) == file_info["fileSize"]
    status, reqs = await get(http, sim, acc + "/requirements", h)
    assert {"ATT_VIGI", "JUSTIF_IMM", "LST_SAL_ETR"} <= {r["code"] for r in reqs["content"]}
    status, dreqs = await get(http, sim, f"{acc}/dossiers/{did}/requirements", h)
    assert [r["code"] for r in dreqs["content"]] == [d["documentCode"] for d in docs["content"]]
    assert (
        await post(http, sim, f"{acc}/dossiers/{did}/requirements", h, ["ATT_VIGI", "JUSTIF_IMM"])
    )[0] == 200
    assert (
        await post(
            http,
            sim,
            f"{acc}/dossiers/{did}/requirements",
            h,
            {"newRequiredDocuments": ["ATT_VIGI", "CATC"]},
        )
    )[0] == 200
    status, dreqs = await get(http, sim, f"{acc}/dossiers/{did}/requirements", h)
    assert [r["code"] for r in dreqs["content"]] == ["ATT_VIGI", "CATC"]
    status, updated = await post(
        http, sim, f"{acc}/dossiers/{did}", h, {"description": "new", "dossierReference": "REF-NEW"}
    )
    assert updated["messages"]["info"]
    assert updated.get("content") == (None if spec else {"dossierId": did, "updated": True})
    assert (await get(http, sim, f"{acc}/dossiers/{did}", h))[1]["content"][
        "dossierReference"
    ] == "REF-NEW"
    async with http.post(f"{sim.base_url}{acc}/dossiers/{did}/stop", headers=h) as response:
        assert response.status == 200  # no body: the operation has none
    status, reactivated = await post(
        http, sim, f"{acc}/dossiers/{did}/reactivate", h, {"expirationDate": TOMORROW}
    )
    assert status == 200
    assert reactivated["messages"]["info"]
    tp_ref = sim.data.thirdparty(sim.data.field(did, "tp"))
    status, created = await post(
        http,
        sim,
        acc + "/dossiers",
        h,
        {
            "companyIdValue": tp_ref.company_id_value,
            "companyIdType": tp_ref.company_id_type,
            "dossierReference": "BRAND-NEW",
            "requiredDocuments": ["ATT_VIGI"],
            "thirdpartyEmail": ["contact@fournisseur.fr"],
        },
    )
    process_id = created["content"]["processId"]
    assert process_id.isdigit()
    status, process = await get(http, sim, f"{acc}/dossiers/process/{process_id}", h)
    assert process["content"]["complete"] is False
    await asyncio.sleep(0.1)  # the simulated process runs for process_delay=0.05 s
    status, process = await get(http, sim, f"{acc}/dossiers/process/{process_id}", h)
    assert process["content"]["complete"]
    assert process["content"]["success"]
    status, processes = await get(http, sim, acc + "/dossiers/processes", h, fromDate="2019-01-01")
    assert [p["processId"] for p in processes["content"]] == [process_id]
    status, by_ref = await get(http, sim, acc + "/dossiers", h, dossierReference="BRAND-NEW")
    assert len(by_ref["content"]) == 1
    if not spec:  # an extension of the captured dialect: the dossier created
        assert [d["dossierId"] for d in by_ref["content"]] == [process["content"]["dossierId"]]
    # the 18 + 3 operations were all served
    expected = {
        "get_account",
        "get_account_statistics",
        "list_thirdparties",
        "search_thirdparties",
        "get_thirdparty",
        "list_dossiers",
        "get_dossier",
        "list_documents",
        "get_document",
        "list_files",
        "list_evidences",
        "download_file",
        "list_requirements",
        "list_dossier_requirements",
        "update_dossier_requirements",
        "update_dossier",
        "stop_dossier",
        "reactivate_dossier",
        "create_dossier",
        "get_process",
        "list_processes",
    }
    assert expected <= set(sim.stats.requests)


async def test_variants_and_aliases_are_accepted(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    h = await bearer(sim, http)
    acc = f"/account/{sim.account_id}"
    assert (await get(http, sim, acc + "/dossier/processes", h))[0] == 200
    assert (await get(http, sim, acc + "/dossiers/all", h))[1]["totalElements"] == 2000
    assert (await get(http, sim, acc + "/dossiers", h, size="3"))[1]["size"] == 3
    sim.faults.document_shape = "v1.3"
    _status, body = await get(http, sim, acc + "/dossiers", h)
    document = body["content"][0]["documents"][0]
    assert {"documentName", "evidences", "isPresent"} <= set(document)
    assert "listFileInformation" not in document


# -- pagination and filters ------------------------------------------------------------


async def test_pages_cover_every_dossier_once(sim: Simulator, http: aiohttp.ClientSession) -> None:
    h = await bearer(sim, http)
    seen: list[int] = []
    for page in range(7):
        _status, body = await get(
            http, sim, f"/account/{sim.account_id}/dossiers", h, page=str(page), pageSize="300"
        )
        assert body["page"] == page
        assert body["totalElements"] == 2000
        seen += [d["dossierId"] for d in body["content"]]
    assert seen == list(range(DOSSIER_ID_BASE, DOSSIER_ID_BASE + 2000))


async def test_filters_find_what_they_name(sim: Simulator, http: aiohttp.ClientSession) -> None:
    h = await bearer(sim, http)
    acc = f"/account/{sim.account_id}/dossiers"
    sample = (await get(http, sim, acc, h, page="3"))[1]["content"][4]
    # siren/siret/tva are not in the v1.1 Dossier schema: read them from the data set.
    record = sim.data.dossier_record(sample["dossierId"])
    for name in ("siren", "siret", "tva", "thirdpartyCode", "thirdpartyId"):
        body = (await get(http, sim, acc, h, **{name: str(record[name])}))[1]
        assert body["totalElements"] >= 1
        assert all(
            sim.data.dossier_record(d["dossierId"])[name] == record[name] for d in body["content"]
        )
        assert sample["dossierId"] in [d["dossierId"] for d in body["content"]]
    body = (
        await get(
            http,
            sim,
            acc,
            h,
            companyIdValue=sample["companyIdValue"],
            companyIdType=sample["companyIdType"],
        )
    )[1]
    assert sample["dossierId"] in [d["dossierId"] for d in body["content"]]
    body = (await get(http, sim, acc, h, monitored="false", pageSize="2000"))[1]
    assert body["totalElements"] == len(body["content"]) > 0
    assert not any(d["monitored"] for d in body["content"])
    body = (await get(http, sim, acc, h, stateLastChangeDate="2023-01-01", pageSize="2000"))[1]
    assert all(d["stateLastChangeDate"] >= "2023-01-01" for d in body["content"])
    tps = f"/account/{sim.account_id}/thirdparties"
    body = (await get(http, sim, tps, h, name="dupont", pageSize="50"))[1]
    assert body["totalElements"] > 0
    names = [sim.data.thirdparty_by_id(t["thirdpartyId"]) for t in body["content"]]
    assert all(tp is not None and "dupont" in tp.name.lower() for tp in names)
    body = (await get(http, sim, tps, h, siren=record["siren"]))[1]
    assert [t["thirdpartyId"] for t in body["content"]] == [sample["thirdpartyId"]]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"foo": "1"}, "E002"),
        ({"siren": ""}, "E003"),
        ({"siren": "123"}, "E010"),
        ({"siret": "50382936800046"}, "E010"),
        ({"tva": "FR00503829368"}, "E010"),
        ({"monitored": "yes"}, "E010"),
        ({"stateLastChangeDate": "01/01/2020"}, "E010"),
        ({"pageSize": "0"}, "E010"),
        ({"page": "-1"}, "E010"),
        ({"pageSize": "2001"}, "E011"),
    ],
)
async def test_search_errors_carry_e_codes(
    sim: Simulator, http: aiohttp.ClientSession, params: dict[str, str], code: str
) -> None:
    status, body = await get(
        http, sim, f"/account/{sim.account_id}/dossiers", await bearer(sim, http), **params
    )
    assert status == 400
    assert codes(body) == [code]


async def test_unknown_ids_are_spring_404s(sim: Simulator, http: aiohttp.ClientSession) -> None:
    h = await bearer(sim, http)
    acc = f"/account/{sim.account_id}"
    for path in (
        f"{acc}/dossiers/1",
        f"{acc}/thirdparties/1",
        f"{acc}/dossiers/process/1",
        f"{acc}/dossiers/{DOSSIER_ID_BASE}/documents/1",
        "/nowhere",
    ):
        status, body = await get(http, sim, path, h)
        assert (status, body["status"], body["path"]) == (404, 404, "/api/v1" + path)


# -- writes and their E-codes -----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"companyIdValue": "50382936800045", "dossierReference": "R"}, ["E001"]),
        ({"companyIdType": "CIT001", "companyIdValue": " ", "dossierReference": "R"}, ["E003"]),
        (
            {
                "companyIdType": "CIT001",
                "companyIdValue": "50382936800046",
                "dossierReference": "R",
            },
            ["E010"],
        ),
        ({"companyIdType": "CIT009", "companyIdValue": "1", "dossierReference": "R"}, ["E010"]),
        (
            {
                "companyIdType": "CIT001",
                "companyIdValue": "50382936800045",
                "dossierReference": "R",
                "x": 1,
            },
            ["E002"],
        ),
        (
            {
                "companyIdType": "CIT001",
                "companyIdValue": "50382936800045",
                "dossierReference": "R" * 101,
            },
            ["E011"],
        ),
        (
            {
                "companyIdType": "CIT001",
                "companyIdValue": "50382936800045",
                "dossierReference": "R",
                "expirationDate": YESTERDAY,
            },
            ["E021"],
        ),
        (
            {
                "companyIdType": "CIT001",
                "companyIdValue": "50382936800045",
                "dossierReference": "R",
                "thirdpartyEmail": ["someone@mailinator.com"],
            },
            ["E030"],
        ),
        (
            {
                "companyIdType": "CIT001",
                "companyIdValue": "50382936800045",
                "dossierReference": "R",
                "userInCharge": ["not-an-email"],
            },
            ["E010"],
        ),
        (
            {
                "companyIdType": "CIT001",
                "companyIdValue": "50382936800045",
                "dossierReference": "R",
                "requiredDocuments": ["NOPE", "NIT0RSS"],
            },
            ["E302", "E301"],
        ),
    ],
)
async def test_dossier_creation_refusals(
    sim: Simulator, http: aiohttp.ClientSession, body: dict[str, Any], expected: list[str]
) -> None:
    status, answer = await post(
        http, sim, f"/account/{sim.account_id}/dossiers", await bearer(sim, http), body
    )
    assert status == 400
    assert codes(answer) == expected


def valid_siret(siren_prefix: str) -> str:
    """A Luhn-valid SIRET whose SIREN starts with ``siren_prefix``."""
    from eattest_async._validation import luhn_check_digit

    body = (siren_prefix + "12345678")[:8]
    siren = body + luhn_check_digit(body)
    return siren + "0001" + luhn_check_digit(siren + "0001")


@pytest.mark.parametrize(
    ("id_type", "value", "code"),
    [
        ("CIT001", valid_siret("999"), "E102"),
        ("CIT001", valid_siret("998"), "E103"),
        ("CIT001", valid_siret("997"), "E101"),
        ("CIT001", valid_siret("996"), "E104"),
        ("CIT002", "FR69503829368", "E121"),
        ("CIT002", "DE999999999", "E122"),
    ],
)
async def test_creation_processes_that_fail(
    sim: Simulator, http: aiohttp.ClientSession, id_type: str, value: str, code: str
) -> None:
    h = await bearer(sim, http)
    acc = f"/account/{sim.account_id}"
    status, created = await post(
        http,
        sim,
        acc + "/dossiers",
        h,
        {"companyIdType": id_type, "companyIdValue": value, "dossierReference": "X"},
    )
    assert status == 200
    await asyncio.sleep(0.1)  # the simulated process runs for process_delay=0.05 s
    process = (
        await get(http, sim, f"{acc}/dossiers/process/{created['content']['processId']}", h)
    )[1]["content"]
    assert process["complete"] is True
    assert process["success"] is False
    assert [e["code"] for e in process["errors"]] == [code]


async def test_creation_conflicts_e112_and_e202(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    h = await bearer(sim, http)
    acc = f"/account/{sim.account_id}"
    first, second = (
        sim.data.dossier_record(d["dossierId"])
        for d in (await get(http, sim, acc + "/dossiers", h))[1]["content"][:2]
    )
    attempts = [
        (
            {
                "companyIdType": "CIT001",
                "companyIdValue": first["siret"],
                "dossierReference": "Y",
                "thirdpartyCode": second["thirdpartyCode"],
            },
            "E112",
        ),
        (
            {
                "companyIdType": "CIT001",
                "companyIdValue": first["siret"],
                "dossierReference": first["dossierReference"],
            },
            "E202",
        ),
    ]
    for body, code in attempts:
        process_id = (await post(http, sim, acc + "/dossiers", h, body))[1]["content"]["processId"]
        await asyncio.sleep(0.1)
        process = (await get(http, sim, f"{acc}/dossiers/process/{process_id}", h))[1]["content"]
        assert [e["code"] for e in process["errors"]] == [code]


async def test_update_stop_reactivate_refusals(sim: Simulator, http: aiohttp.ClientSession) -> None:
    h = await bearer(sim, http)
    acc = f"/account/{sim.account_id}"
    dossiers = (await get(http, sim, acc + "/dossiers", h, pageSize="50"))[1]["content"]
    live = next(d for d in dossiers if d["monitored"])
    sibling_ref = "DOS-0000000"
    did = live["dossierId"]
    assert codes((await post(http, sim, f"{acc}/dossiers/{did}", h, {"bogus": 1}))[1]) == ["E002"]
    assert codes(
        (await post(http, sim, f"{acc}/dossiers/{did}", h, {"expirationDate": YESTERDAY}))[1]
    ) == ["E021"]
    assert codes((await post(http, sim, f"{acc}/dossiers/{did}/reactivate", h, {}))[1]) == ["E204"]
    same_tp = (
        await get(
            http, sim, acc + "/dossiers", h, thirdpartyId=str(live["thirdpartyId"]), pageSize="50"
        )
    )[1]["content"]
    if len(same_tp) > 1:
        other = next(d for d in same_tp if d["dossierId"] != did)
        sibling_ref = other["dossierReference"]
        assert codes(
            (await post(http, sim, f"{acc}/dossiers/{did}", h, {"dossierReference": sibling_ref}))[
                1
            ]
        ) == ["E202"]
    assert (await post(http, sim, f"{acc}/dossiers/{did}/stop", h, None))[0] == 200
    assert codes((await post(http, sim, f"{acc}/dossiers/{did}/stop", h, None))[1]) == ["E201"]
    assert codes((await post(http, sim, f"{acc}/dossiers/{did}", h, {"description": "x"}))[1]) == [
        "E201"
    ]
    assert codes(
        (await post(http, sim, f"{acc}/dossiers/{did}/requirements", h, ["ATT_VIGI"]))[1]
    ) == ["E201"]
    assert codes(
        (
            await post(
                http, sim, f"{acc}/dossiers/{did}/reactivate", h, {"expirationDate": YESTERDAY}
            )
        )[1]
    ) == ["E205"]
    assert (
        await post(http, sim, f"{acc}/dossiers/{did}/reactivate", h, {"expirationDate": TOMORROW})
    )[0] == 200
    assert codes(
        (await post(http, sim, f"{acc}/dossiers/{did}/requirements", h, ["NIT0RSS"]))[1]
    ) == ["E301"]
    assert codes(
        (await post(http, sim, f"{acc}/dossiers/{did}/requirements", h, {"x": []}))[1]
    ) == ["E010"]


# -- data -------------------------------------------------------------------------------


def test_generated_identifiers_are_valid_and_invertible() -> None:
    sim = Simulator(seed=3, dossiers=50_000)
    data = sim.data
    for j in range(0, data.base_thirdparties, 7):
        tp = data.thirdparty(j)
        if tp.siret is None:
            assert tp.company_id_type == "CIT002"
            assert not tp.tva.startswith("FR")
            continue
        assert luhn_valid(tp.siret)
        assert luhn_valid(tp.siren or "")
        assert tp.siret.startswith(tp.siren or "-")
        assert tp.tva == "FR" + fr_vat_key(tp.siret[:9]) + tp.siret[:9]
        assert tp.siren is not None
        assert tp.siren[:2] != "99"
        assert data.find_thirdparty(siret=tp.siret) == tp
        assert data.find_thirdparty(tva=tp.tva) == tp
    assert Simulator(seed=3, dossiers=50_000).data.dossier_record(
        DOSSIER_ID_BASE + 777
    ) == data.dossier_record(DOSSIER_ID_BASE + 777)


async def test_a_million_dossiers_without_building_them(http: aiohttp.ClientSession) -> None:
    async with Simulator(dossiers=1_000_000) as sim:
        h = await bearer(sim, http)
        status, body = await get(
            http, sim, f"/account/{sim.account_id}/dossiers", h, page="999", pageSize="1000"
        )
        assert status == 200
        assert body["totalElements"] == 1_000_000
        assert [d["dossierId"] for d in body["content"]][-1] == DOSSIER_ID_BASE + 999_999
        sample = body["content"][500]
        siret = sim.data.dossier_record(sample["dossierId"])["siret"]
        _status, found = await get(http, sim, f"/account/{sim.account_id}/dossiers", h, siret=siret)
        assert sample["dossierId"] in [d["dossierId"] for d in found["content"]]


# -- faults -----------------------------------------------------------------------------


async def test_rate_limit_429_with_both_retry_after_forms_and_early_counting(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    h = await bearer(sim, http)
    sim.faults.rate_limit, sim.faults.rate_window = 3, 1.5
    statuses = []
    for _ in range(4):
        async with http.get(sim.base_url + "/account", headers=h) as response:
            statuses.append(response.status)
            headers = response.headers
    assert statuses == [200, 200, 200, 429]
    assert headers["RateLimit-Limit"] == "3"
    assert headers["RateLimit-Remaining"] == "0"
    retry_after = int(headers["Retry-After"])
    assert 1 <= retry_after <= 2
    assert sim.stats.rate_limited == 1
    assert sim.stats.early_requests == 0
    await asyncio.sleep(0.2)  # past the in-flight grace, well before the deadline
    async with http.get(sim.base_url + "/account", headers=h) as response:
        assert response.status == 429
    assert sim.stats.early_requests == 1
    await asyncio.sleep(retry_after)
    async with http.get(sim.base_url + "/account", headers=h) as response:
        assert response.status == 200
    assert sim.stats.early_requests == 1
    sim.faults.retry_after_format = "http-date"
    for _ in range(3):
        async with http.get(sim.base_url + "/account", headers=h) as response:
            headers = response.headers
    assert response.status == 429
    parsed = email.utils.parsedate_to_datetime(headers["Retry-After"])
    assert 0 < parsed.timestamp() - time.time() <= 2.5


async def test_ietf_ratelimit_fields(sim: Simulator, http: aiohttp.ClientSession) -> None:
    h = await bearer(sim, http)
    sim.faults.rate_limit, sim.faults.ratelimit_headers = 10, "ietf"
    async with http.get(sim.base_url + "/account", headers=h) as response:
        assert response.headers["RateLimit-Policy"] == '"default";q=10;w=60'
        assert response.headers["RateLimit"].startswith('"default";r=9;t=')


@pytest.mark.parametrize(
    ("action", "status", "content_type"),
    [
        (FaultAction(kind="status", status=503, retry_after=1), 503, "application/json"),
        (FaultAction(kind="status", status=500), 500, "application/json"),
        (FaultAction(kind="html", status=502), 502, "text/html"),
        (FaultAction(kind="empty"), 200, "application/json"),
        (FaultAction(kind="malformed"), 200, "application/json"),
    ],
)
async def test_scripted_answers(
    sim: Simulator, http: aiohttp.ClientSession, action: FaultAction, status: int, content_type: str
) -> None:
    h = await bearer(sim, http)
    sim.faults.add(action)
    async with http.get(sim.base_url + "/account", headers=h) as response:
        assert response.status == status
        assert response.content_type == content_type
        if action.retry_after:
            assert response.headers["Retry-After"] == "1"
    async with http.get(sim.base_url + "/account", headers=h) as response:
        assert response.status == 200  # one-shot


async def test_drop_truncate_and_slow_bodies(sim: Simulator) -> None:
    async with aiohttp.ClientSession() as http:
        # aiohttp silently re-sends an idempotent request once when the connection drops;
        # its own test client turns that off the same way, so that the drop is seen.
        http._retry_connection = False
        h = await bearer(sim, http)
        sim.faults.add(FaultAction(kind="drop", operation="get_account"))
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await http.get(sim.base_url + "/account", headers=h)
        sim.faults.add(FaultAction(kind="truncate"))
        async with http.get(sim.base_url + "/account", headers=h) as response:
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()
        sim.faults.add(FaultAction(kind="slow", delay=0.3))
        started = time.monotonic()
        async with http.get(sim.base_url + "/account", headers=h) as response:
            body = await response.json()
        assert time.monotonic() - started >= 0.3
        assert body["content"][0]["id"] == sim.account_id
        assert sim.stats.faults == {"drop": 1, "truncate": 1, "slow": 1}


async def test_random_faults_and_latency(sim: Simulator, http: aiohttp.ClientSession) -> None:
    h = await bearer(sim, http)
    sim.faults.error_rate, sim.faults.error_statuses = 0.5, (502,)
    statuses = []
    for _ in range(40):
        async with http.get(sim.base_url + "/account", headers=h) as response:
            statuses.append(response.status)
    assert set(statuses) == {200, 502}
    sim.faults.error_rate, sim.faults.latency = 0.0, 0.15
    started = time.monotonic()
    async with http.get(sim.base_url + "/account", headers=h) as response:
        assert response.status == 200
    assert time.monotonic() - started >= 0.15


async def test_drift_inserts_and_deletes_between_pages(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    h = await bearer(sim, http)
    sim.faults.drift_every, sim.faults.drift_insert, sim.faults.drift_delete = 1, 5, 3
    totals = []
    for page in range(3):
        totals.append(
            (await get(http, sim, f"/account/{sim.account_id}/dossiers", h, page=str(page)))[1][
                "totalElements"
            ]
        )
    assert totals == [2002, 2004, 2006]
    inserted = sim.insert_dossiers(2)
    removed = sim.delete_dossiers(count=4)
    live = sim.live_dossier_ids()
    assert len(live) == 2006 + 2 - len(removed)
    assert set(inserted) <= set(live)
    assert not set(removed) & set(live)


async def test_admin_endpoints(sim: Simulator, http: aiohttp.ClientSession) -> None:
    async with http.put(
        sim.origin + "/_simulator/faults",
        json={"rate_limit": 5, "script": [{"kind": "status", "status": 504}]},
    ) as response:
        assert response.status == 200
    assert sim.faults.rate_limit == 5
    assert sim.faults.script[0].status == 504
    async with http.put(sim.origin + "/_simulator/faults", json={"nope": 1}) as response:
        assert response.status == 400
    h = await bearer(sim, http)
    async with http.get(sim.base_url + "/account", headers=h) as response:
        assert response.status == 504
    async with http.get(sim.origin + "/_simulator/stats") as response:
        stats = await response.json()
    assert stats["requests"] == {"token": 1, "get_account": 1}
    assert stats["statuses"]["504"] == 1
    async with http.post(sim.origin + "/_simulator/revoke") as response:
        assert response.status == 200
    async with http.get(sim.base_url + "/account", headers=h) as response:
        assert response.status == 401
    async with http.post(sim.origin + "/_simulator/reset") as response:
        assert response.status == 200
    assert sim.stats.total_requests == 0
    recorded = sim.requests
    assert recorded == []


@pytest.mark.parametrize(
    "plan",
    [
        {"rate_limit": "many"},
        {"rate_limit": True},
        {"error_rate": 2},
        {"latency": -1},
        {"rate_window": 0},
        {"error_statuses": ["500"]},
        {"error_statuses": 503},
        {"retry_after_format": "minutes"},
        {"script": [{"kind": "explode"}]},
        {"script": [{"kind": "status", "status": 99}]},
        {"script": [{"kind": "status", "colour": "red"}]},
        {"script": {"kind": "status"}},
        {"script": ["status"]},
        {"document_shape": "v2"},
        [1, 2],
        "null",
    ],
)
async def test_a_garbage_fault_plan_is_refused_whole_and_changes_nothing(
    sim: Simulator, http: aiohttp.ClientSession, plan: Any
) -> None:
    before = sim.faults.to_json()
    # A valid field beside the garbage must not be applied either: all or nothing.
    body = {"drift_every": 7, **plan} if isinstance(plan, dict) else plan
    async with http.put(sim.origin + "/_simulator/faults", json=body) as response:
        assert response.status == 400
        assert (await response.json())["error"]
    assert sim.faults.to_json() == before
    h = await bearer(sim, http)
    assert (await get(http, sim, "/account", h))[0] == 200  # and the service still serves


def test_the_fault_plan_checks_fields_set_from_python() -> None:
    plan = Simulator().faults
    with pytest.raises(ValueError, match="error_rate"):
        plan.error_rate = 1.5
    with pytest.raises(TypeError, match="rate_limit"):
        plan.rate_limit = "10"  # type: ignore[assignment]
    with pytest.raises(ValueError, match="kind"):
        FaultAction(kind="explode")
    assert plan.error_rate == 0.0
    assert plan.rate_limit is None


@pytest.mark.parametrize(
    "path",
    [
        "/dossiers/²",
        "/dossiers/" + "9" * 5000,
        "/dossiers/-",
        "/dossiers/١٢٣",
        "/thirdparties/²³",
        "/thirdparties/" + "1" * 40,
        "/dossiers/800000/documents/²",
        "/dossiers/800000/documents/8000000/files/" + "7" * 5000,
    ],
)
async def test_hostile_ids_get_the_spring_400(
    sim: Simulator, http: aiohttp.ClientSession, path: str
) -> None:
    h = await bearer(sim, http)
    status, body = await get(http, sim, f"/account/{sim.account_id}{path}", h)
    assert status == 400
    assert body["status"] == 400
    assert body["error"] == "Bad Request"
    assert "convert" in body["message"]
    assert len(body["message"]) < 400  # the value is not echoed whole


@pytest.mark.parametrize(
    "params",
    [
        {"page": "²"},
        {"pageSize": "²"},
        {"page": "9" * 5000},
        {"pageSize": "1" * 5000},
        {"page": "1e3"},
        {"page": "99999999999"},
    ],
)
async def test_hostile_paging_gets_the_spring_400(
    sim: Simulator, http: aiohttp.ClientSession, params: dict[str, str]
) -> None:
    h = await bearer(sim, http)
    for operation in ("/dossiers", "/thirdparties"):
        status, body = await get(http, sim, f"/account/{sim.account_id}{operation}", h, **params)
        assert status == 400
        assert body["error"] == "Bad Request"
    assert sim.stats.statuses.get(500, 0) == 0


async def test_every_route_is_registered_beside_its_handler() -> None:
    from eattest_async.simulator._http import ROUTES

    names = {route.name for route in ROUTES.routes}
    assert {"token", "get_account", "list_dossiers", "download_file", "_admin_put"} <= names
    assert len(ROUTES.routes) == len({(r.method, r.path) for r in ROUTES.routes})


async def test_records_what_the_client_sent(sim: Simulator, http: aiohttp.ClientSession) -> None:
    h = await bearer(sim, http)
    await post(
        http, sim, f"/account/{sim.account_id}/dossiers/{DOSSIER_ID_BASE}", h, {"description": "é"}
    )
    last = sim.requests[-1]
    assert (last.method, last.operation, last.status) == ("POST", "update_dossier", 200)
    assert last.headers["Authorization"] == h["Authorization"]
    assert json.loads(last.body) == {"description": "é"}
    assert "Bearer" not in repr(last)


async def test_start_serve_1000_requests_stop_leaves_nothing_behind() -> None:
    tasks_before = asyncio.all_tasks()
    sim = Simulator(dossiers=100)
    async with sim, aiohttp.ClientSession() as http:
        h = await bearer(sim, http)

        async def one(i: int) -> int:
            async with http.get(
                f"{sim.base_url}/account/{sim.account_id}/dossiers",
                params={"page": str(i % 10)},
                headers=h,
            ) as response:
                await response.read()
                return response.status

        statuses = await asyncio.gather(*(one(i) for i in range(1000)))
        assert set(statuses) == {200}
        port = sim.port
    assert asyncio.all_tasks() == tasks_before
    with pytest.raises(aiohttp.ClientConnectorError):  # the port is closed
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/api/v1/account"),
        ):
            pass


async def test_command_line_simulator_serves_until_terminated() -> None:
    import signal
    import sys

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "eattest_async.simulator",
        "--port",
        "0",
        "--dossiers",
        "50",
        "--password",
        "pw",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        lines = [(await asyncio.wait_for(process.stdout.readline(), 20)).decode() for _ in range(5)]
        base_url = next(
            line.split("=", 1)[1].strip() for line in lines if "EATTEST_BASE_URL" in line
        )
        token_url = next(
            line.split("=", 1)[1].strip() for line in lines if "EATTEST_TOKEN_URL" in line
        )
        async with aiohttp.ClientSession() as http:
            form = {
                "client_id": "ea-api-edge",
                "grant_type": "password",
                "username": "api-user@simulator.test",
                "password": "pw",
            }
            async with http.post(token_url, data=form) as response:
                token = (await response.json())["access_token"]
            async with http.get(
                base_url + "/account", headers={"Authorization": f"Bearer {token}"}
            ) as response:
                assert response.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0
