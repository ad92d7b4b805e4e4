"""Dossier-creation processes."""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING

from aiohttp import web

from .._http import (
    ACCOUNT,
    ROUTES,
    NotFound,
    Refusal,
    date_param,
    ecode,
    json_response,
    messages,
    query_params,
)

if TYPE_CHECKING:
    from .._service import SimulatorService


@ROUTES.route("GET", ACCOUNT + "/dossiers/process/{process_id}", "get_process")
@ROUTES.route("GET", ACCOUNT + "/dossier/process/{process_id}", "get_process")
@ROUTES.route("GET", ACCOUNT + "/dossier/{process_id}", "get_process")
async def get_process(sim: SimulatorService, request: web.Request) -> web.Response:
    process_id = request.match_info["process_id"]
    process = sim.data.processes.get(process_id)
    if process is None:
        raise NotFound(f"No process with id {process_id}")
    return json_response(
        {"content": sim.render.process(process, time.monotonic()), "messages": messages()}
    )


@ROUTES.route("GET", ACCOUNT + "/dossiers/processes", "list_processes")
@ROUTES.route("GET", ACCOUNT + "/dossier/processes", "list_processes")
async def list_processes(sim: SimulatorService, request: web.Request) -> web.Response:
    params = query_params(request, {"fromDate"})
    params.pop("page", None), params.pop("pageSize", None), params.pop("size", None)
    if "fromDate" in params:
        since = dt.datetime.combine(date_param(params["fromDate"], "fromDate"), dt.time())
        if since.date() > dt.date.today():
            raise Refusal([ecode("E022", "fromDate")])
    else:
        since = dt.datetime.now() - dt.timedelta(hours=24)
    now = time.monotonic()
    return json_response(
        {
            "content": [
                sim.render.process(p, now)
                for p in sim.data.processes.values()
                if p.created >= since
            ],
            "messages": messages(),
        }
    )
