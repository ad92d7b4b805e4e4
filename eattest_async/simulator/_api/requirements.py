"""Requirements: the account's catalogue, a dossier's, and changing a dossier's."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from aiohttp import web

from .._data import REQUIREMENTS
from .._http import (
    ACCOUNT,
    ROUTES,
    Refusal,
    body_json,
    ecode,
    json_response,
    messages,
    query_params,
)
from .dossiers import dossier_or_404, requirement_errors

if TYPE_CHECKING:
    from .._service import SimulatorService


@ROUTES.route("GET", ACCOUNT + "/requirements", "list_requirements")
async def list_requirements(sim: SimulatorService, request: web.Request) -> web.Response:
    query_params(request, set())
    account = sim.data.account_id
    return json_response(
        {
            "content": [sim.render.requirement(r, account) for r in REQUIREMENTS],
            "messages": messages(),
        }
    )


@ROUTES.route("GET", ACCOUNT + "/dossiers/{dossier_id}/requirements", "list_dossier_requirements")
async def list_dossier_requirements(sim: SimulatorService, request: web.Request) -> web.Response:
    found = dossier_or_404(sim, request)
    documents = sim.data._documents(found, sim.data._base_fields(found))
    return json_response(
        {
            "content": [
                sim.render.dossier_requirement(d["requirement"], sim.data.account_id, found)
                for d in documents
            ],
            "messages": messages(),
        }
    )


@ROUTES.route(
    "POST", ACCOUNT + "/dossiers/{dossier_id}/requirements", "update_dossier_requirements"
)
async def update_dossier_requirements(sim: SimulatorService, request: web.Request) -> web.Response:
    found = dossier_or_404(sim, request)
    body = body_json(await request.read())
    # The spec sends a bare array; the official Postman collection wraps it in an object.
    if isinstance(body, dict) and set(body) == {"newRequiredDocuments"}:
        body = body["newRequiredDocuments"]
    if not isinstance(body, list) or not body:
        raise Refusal([ecode("E010", "expected a non-empty array of document codes")])
    errors = [e for code in body for e in requirement_errors(code)]
    if not sim.data.field(found, "monitored"):
        errors.append(ecode("E201", str(found)))
    if errors:
        raise Refusal(errors)
    sim.data.update_dossier(
        found, {"requiredDocuments": list(dict.fromkeys(body)), "changed": dt.datetime.now()}
    )
    return json_response({"messages": messages(info=["Requirements updated"])})
