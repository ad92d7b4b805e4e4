"""Dossiers: list (with EDGE ``op``), details, creation (asynchronous), update, stop, reactivate."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .._http import (
    ACCOUNT,
    ECODE_TEXT,
    ROUTES,
    NotFound,
    Refusal,
    body_json,
    bool_param,
    date_param,
    ecode,
    identifier_checks,
    json_response,
    messages,
    page_envelope,
    paging,
    path_id,
    query_params,
)

if TYPE_CHECKING:
    from .._service import SimulatorService

from ..._exceptions import InvalidInputError
from ..._filters import DOSSIER_FILTERS
from ..._validation import check_duns, check_email, check_siret, check_vat
from .._data import REQUIREMENTS_BY_CODE, RESERVED_SIREN_PREFIXES, Process

_BLOCKED_EMAIL_DOMAINS = ("invalid", "mailinator.com", "example.invalid")

_NEW_DOSSIER_FIELDS = {
    "companyIdType",
    "companyIdValue",
    "thirdpartyCode",
    "dossierReference",
    "description",
    "purchasingCategory",
    "expirationDate",
    "requiredDocuments",
    "thirdpartyEmail",
    "userInCharge",
}
_UPDATE_FIELDS = {
    "dossierReference",
    "description",
    "purchasingCategory",
    "expirationDate",
    "thirdpartyCode",
    "thirdpartyEmail",
}
# The parameters the client declares for each list operation: one table for both sides.
_DOSSIER_FILTERS = {f.param for f in DOSSIER_FILTERS.values()}
_TEXT_MATCH: dict[str, Callable[[str, str], bool]] = {
    "like": lambda value, text: text.lower() in value.lower(),
    "starts": str.startswith,
    "ends": str.endswith,
}


def dossier_or_404(sim: SimulatorService, request: web.Request) -> int:
    dossier_id = path_id(request, "dossier_id")
    if not sim.data.exists(dossier_id):
        raise NotFound(f"Dossier not found with id: {dossier_id}")
    return dossier_id


def maybe_drift(sim: SimulatorService) -> None:
    plan = sim.faults
    sim.list_dossier_calls += 1
    if plan.drift_every <= 0 or sim.list_dossier_calls % plan.drift_every:
        return
    order = sim.data.order()
    if plan.drift_delete and len(order):
        victims = [order[sim.rng.randrange(len(order))] for _ in range(plan.drift_delete)]
        sim.data.delete_dossiers(victims)
    if plan.drift_touch and len(order):
        victims = [order[sim.rng.randrange(len(order))] for _ in range(plan.drift_touch)]
        sim.touch_dossiers(victims)
    for _ in range(plan.drift_insert):
        order = sim.data.order()
        anchor = float(order[sim.rng.randrange(len(order))]) + 0.5 if len(order) else None
        tp = sim.data.thirdparty(sim.rng.randrange(sim.data.base_thirdparties))
        sim.data.insert_dossier(
            thirdparty=tp,
            fields={"dossierReference": f"DRIFT-{uuid.uuid4().hex[:10]}"},
            position=anchor,
        )


@ROUTES.route("GET", ACCOUNT + "/dossiers/all", "list_dossiers")
@ROUTES.route("GET", ACCOUNT + "/dossiers", "list_dossiers")
async def list_dossiers(sim: SimulatorService, request: web.Request) -> web.Response:
    params = query_params(request, _DOSSIER_FILTERS)
    page, size = paging(params, sim.max_page_size)
    identifier_checks(params)
    maybe_drift(sim)
    monitored = bool_param(params, "monitored")
    since = (
        date_param(params["stateLastChangeDate"], "stateLastChangeDate")
        if "stateLastChangeDate" in params
        else None
    )
    reference = params.get("dossierReference")
    id_type = params.get("companyIdType")
    op = params.get("op")
    code_pattern = reference_pattern = None
    if op is not None:
        if op not in _TEXT_MATCH:
            raise Refusal([ecode("E010", "op must be like, starts or ends")])
        if "thirdpartyCode" not in params and reference is None:
            raise Refusal([ecode("E001", "thirdpartyCode or dossierReference (with op)")])
        code_pattern, reference_pattern = params.get("thirdpartyCode"), reference
        reference = None  # matched by the operator, not exactly
    text_match = _TEXT_MATCH[op] if op is not None else None
    candidates: Sequence[int] | None = None
    tp_lookup: dict[str, str] = {k: params[k] for k in ("siren", "siret", "tva") if k in params}
    if "companyIdValue" in params:
        value = params["companyIdValue"]
        tp_lookup["siret" if value.isdigit() else "tva"] = value
    if "thirdpartyCode" in params and op is None:
        tp_lookup["code"] = params["thirdpartyCode"]
    tp_index: int | None = None
    if tp_lookup or "thirdpartyId" in params:
        tp = sim.data.find_thirdparty(**tp_lookup) if tp_lookup else None
        if "thirdpartyId" in params:
            if not params["thirdpartyId"].isdigit():
                raise Refusal([ecode("E010", "thirdpartyId")])
            by_id = sim.data.thirdparty_by_id(int(params["thirdpartyId"]))
            tp = (
                by_id
                if (tp is None and not tp_lookup)
                or (tp is not None and by_id is not None and tp.index == by_id.index)
                else None
            )
        if tp is None:
            return await page_envelope(sim, [], page, size, lambda d: {})
        tp_index = tp.index
        candidates = sim.data.dossiers_of_thirdparty(tp.index)
    elif reference is not None:
        candidates = sim.data.dossier_reference_candidates(reference)

    field = sim.data.field

    def matches(dossier_id: int) -> bool:
        if tp_index is not None and field(dossier_id, "tp") != tp_index:
            return False
        if monitored is not None and field(dossier_id, "monitored") != monitored:
            return False
        if reference is not None and field(dossier_id, "dossierReference") != reference:
            return False
        if since is not None and field(dossier_id, "changed").date() < since:
            return False
        if text_match is not None:
            if reference_pattern is not None and not text_match(
                field(dossier_id, "dossierReference"), reference_pattern
            ):
                return False
            if code_pattern is not None and not text_match(
                sim.data.thirdparty(field(dossier_id, "tp")).code, code_pattern
            ):
                return False
        return not (
            id_type is not None
            and sim.data.thirdparty(field(dossier_id, "tp")).company_id_type != id_type
        )

    active = tp_index is not None or any(
        x is not None for x in (monitored, since, reference, id_type, op)
    )
    ids = sim.data.dossier_ids(
        matches if active else None, tuple(sorted(params.items())), candidates
    )
    shape = sim.render.document_shape(sim.faults.document_shape)
    cache_key = (request.path_qs, sim.data.version, shape)
    cached = sim.page_cache.get(cache_key)
    if cached is not None:
        return web.Response(body=cached, content_type="application/json")
    response = await page_envelope(
        sim, ids, page, size, lambda d: sim.render.dossier(sim.data, d, shape)
    )
    remember_page(sim, cache_key, response)
    return response


def remember_page(sim: SimulatorService, key: tuple[str, int, str], response: web.Response) -> None:
    """Keep rendered pages when a cache is configured (benchmarks measure the client)."""
    body = response.body
    if not sim.page_cache_bytes or not isinstance(body, bytes):
        return
    sim.page_cache[key] = body
    sim.page_cache_size += len(body)
    while sim.page_cache_size > sim.page_cache_bytes and sim.page_cache:
        oldest = next(iter(sim.page_cache))
        sim.page_cache_size -= len(sim.page_cache.pop(oldest))


@ROUTES.route("GET", ACCOUNT + "/dossiers/{dossier_id}", "get_dossier")
async def get_dossier(sim: SimulatorService, request: web.Request) -> web.Response:
    found = dossier_or_404(sim, request)
    return json_response(
        {
            "content": sim.render.dossier(
                sim.data, found, sim.render.document_shape(sim.faults.document_shape)
            ),
            "messages": messages(),
        }
    )


def check_new_dossier(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise Refusal([ecode("E010", "body must be a JSON object")])
    errors = [ecode("E002", k) for k in body if k not in _NEW_DOSSIER_FIELDS]
    for name in ("companyIdType", "companyIdValue", "dossierReference"):
        if name not in body or body[name] is None:
            errors.append(ecode("E001", name))
        elif not isinstance(body[name], str) or not body[name].strip():
            errors.append(ecode("E003", name))
    if errors:
        raise Refusal(errors)
    id_type, value = body["companyIdType"], body["companyIdValue"].replace(" ", "")
    checks: dict[str, Callable[[object, str], str]] = {
        "CIT001": check_siret,
        "CIT002": check_vat,
        "CIT003": check_duns,
    }
    if id_type not in checks:
        errors.append(ecode("E010", "companyIdType must be CIT001, CIT002 or CIT003"))
    else:
        try:
            body["companyIdValue"] = checks[id_type](value, "companyIdValue")
        except InvalidInputError as exc:
            errors.append(ecode("E010", str(exc)))
    errors += check_common_fields(body)
    for code in body.get("requiredDocuments") or []:
        errors += requirement_errors(code)
    if errors:
        raise Refusal(errors)
    return body


def check_common_fields(body: dict[str, Any]) -> list[tuple[str, str]]:
    errors = []
    if len(str(body.get("dossierReference") or "")) > 100:
        errors.append(ecode("E011", "dossierReference (max 100)"))
    if len(str(body.get("description") or "")) > 1000:
        errors.append(ecode("E011", "description (max 1000)"))
    if body.get("expirationDate"):
        expiration = date_param(str(body["expirationDate"]), "expirationDate")
        if expiration < dt.date.today():
            errors.append(ecode("E021", "expirationDate"))
    for name in ("thirdpartyEmail", "userInCharge"):
        emails = body.get(name)
        if emails is None:
            continue
        if not isinstance(emails, list):
            errors.append(ecode("E010", f"{name} must be an array"))
            continue
        for email in emails:
            try:
                check_email(email, name)
            except InvalidInputError as exc:
                errors.append(ecode("E010", str(exc)))
                continue
            if email.rsplit("@", 1)[1].lower().endswith(_BLOCKED_EMAIL_DOMAINS):
                errors.append(ecode("E030", email.rsplit("@", 1)[1]))
    return errors


def requirement_errors(code: Any) -> list[tuple[str, str]]:
    requirement = REQUIREMENTS_BY_CODE.get(code) if isinstance(code, str) else None
    if requirement is None:
        return [ecode("E302", str(code))]
    if not requirement.active:
        return [ecode("E301", code)]
    return []


def creation_outcome(
    sim: SimulatorService, body: dict[str, Any]
) -> tuple[list[dict[str, str]], Any]:
    id_type, value = body["companyIdType"], body["companyIdValue"]
    code = body.get("thirdpartyCode") or None
    tp = None
    if id_type == "CIT001":
        reserved = RESERVED_SIREN_PREFIXES.get(value[:3])
        if reserved:
            return [{"code": reserved[0], "message": reserved[1]}], None
        tp = sim.data.find_thirdparty(siret=value)
    elif id_type == "CIT002":
        if value.startswith("FR"):
            return [{"code": "E121", "message": ECODE_TEXT["E121"]}], None
        tp = sim.data.find_thirdparty(tva=value)
        if tp is None:
            return [{"code": "E122", "message": ECODE_TEXT["E122"]}], None
    else:
        return [{"code": "E100", "message": "There is no third party for this criteria"}], None
    if code is not None:
        owner = sim.data.find_thirdparty(code=code)
        if owner is not None and (tp is None or owner.index != tp.index):
            return [{"code": "E112", "message": ECODE_TEXT["E112"]}], None
    if tp is not None:
        reference = body["dossierReference"].strip()
        for dossier_id in sim.data.dossier_ids(
            lambda d: (
                sim.data.field(d, "tp") == tp.index
                and sim.data.field(d, "dossierReference") == reference
            ),
            ("ref", tp.index, reference),
            sim.data.dossiers_of_thirdparty(tp.index),
        ):
            return [{"code": "E202", "message": ECODE_TEXT["E202"]}], dossier_id
    return [], tp


@ROUTES.route("POST", ACCOUNT + "/dossiers", "create_dossier")
async def create_dossier(sim: SimulatorService, request: web.Request) -> web.Response:
    body = check_new_dossier(body_json(await request.read()))
    errors, tp = creation_outcome(sim, body)
    process = Process(
        process_id=sim.data.new_process_id(),
        created=dt.datetime.now(),
        ready_at=time.monotonic() + sim.process_delay,
        body=body,
        errors=errors,
    )
    sim.data.processes[process.process_id] = process
    loop = asyncio.get_running_loop()

    def complete() -> None:
        sim.timers.discard(timer)
        if process.errors:
            return
        thirdparty = (
            tp
            if tp is not None
            else sim.data.add_thirdparty(
                body["companyIdType"], body["companyIdValue"], body.get("thirdpartyCode")
            )
        )
        process.dossier_id = sim.data.insert_dossier(
            thirdparty=thirdparty,
            fields={
                "dossierReference": body["dossierReference"].strip(),
                "description": body.get("description") or "",
                "purchasingCategory": body.get("purchasingCategory") or "",
                "expirationDate": body.get("expirationDate"),
                "requiredDocuments": body.get("requiredDocuments") or None,
            },
        )

    timer = loop.call_later(sim.process_delay, complete)
    sim.timers.add(timer)
    return json_response(
        {
            "content": {"processId": process.process_id},
            "messages": messages(info=["Dossier creation in progress"]),
        }
    )


@ROUTES.route("POST", ACCOUNT + "/dossiers/{dossier_id}", "update_dossier")
async def update_dossier(sim: SimulatorService, request: web.Request) -> web.Response:
    found = dossier_or_404(sim, request)
    body = body_json(await request.read())
    if not isinstance(body, dict):
        raise Refusal([ecode("E010", "body must be a JSON object")])
    errors = [ecode("E002", k) for k in body if k not in _UPDATE_FIELDS]
    if "dossierReference" in body and not str(body["dossierReference"] or "").strip():
        errors.append(ecode("E003", "dossierReference"))
    errors += check_common_fields(body)
    fields = sim.data._base_fields(found)
    if not fields["monitored"]:
        errors.append(ecode("E201", str(found)))
    reference = str(body.get("dossierReference") or "").strip()
    if reference and reference != fields["dossierReference"]:
        clash = sim.data.dossier_ids(
            lambda d: (
                sim.data.field(d, "tp") == fields["tp"]
                and sim.data.field(d, "dossierReference") == reference
            ),
            ("ref", fields["tp"], reference),
            sim.data.dossiers_of_thirdparty(fields["tp"]),
        )
        if len(clash):
            errors.append(ecode("E202", reference))
    if errors:
        raise Refusal(errors)
    changes = {
        k: body[k] for k in ("description", "purchasingCategory", "expirationDate") if k in body
    }
    if reference:
        changes["dossierReference"] = reference
    changes["changed"] = dt.datetime.now()
    sim.data.update_dossier(found, changes)
    return json_response(
        sim.render.action({"dossierId": found, "updated": True}, "Dossier updated successfully")
    )


@ROUTES.route("POST", ACCOUNT + "/dossiers/{dossier_id}/stop", "stop_dossier")
async def stop_dossier(sim: SimulatorService, request: web.Request) -> web.Response:
    found = dossier_or_404(sim, request)
    if not sim.data.field(found, "monitored"):
        raise Refusal([ecode("E201", f"dossier {found} is not monitored")])
    sim.data.update_dossier(
        found,
        {
            "monitored": False,
            "stoppingReason": "STOPREQUEST",
            "stoppingDate": dt.date.today().isoformat(),
            "changed": dt.datetime.now(),
        },
    )
    return json_response(
        sim.render.action({"dossierId": found, "stopped": True}, "Dossier monitoring stopped")
    )


@ROUTES.route("POST", ACCOUNT + "/dossiers/{dossier_id}/reactivate", "reactivate_dossier")
async def reactivate_dossier(sim: SimulatorService, request: web.Request) -> web.Response:
    found = dossier_or_404(sim, request)
    body = body_json(await request.read()) or {}
    if not isinstance(body, dict):
        raise Refusal([ecode("E010", "body must be a JSON object")])
    errors = [ecode("E002", k) for k in body if k != "expirationDate"]
    expiration = body.get("expirationDate")
    if expiration and date_param(str(expiration), "expirationDate") < dt.date.today():
        errors.append(ecode("E205", str(expiration)))
    if sim.data.field(found, "monitored"):
        errors.append(ecode("E204", str(found)))
    if errors:
        raise Refusal(errors)
    sim.data.update_dossier(
        found,
        {
            "monitored": True,
            "stoppingReason": "NA",
            "stoppingDate": None,
            "expirationDate": expiration,
            "changed": dt.datetime.now(),
        },
    )
    return json_response(
        sim.render.action(
            {"dossierId": found, "complete": True, "success": True}, "Dossier reactivated"
        )
    )
