"""The control endpoints of the simulator itself (``/_simulator/...``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from .._http import (
    ROUTES,
    json_response,
)

if TYPE_CHECKING:
    from .._service import SimulatorService


@ROUTES.route("GET", "/_simulator/faults", "_admin")
async def admin_get_faults(sim: SimulatorService, request: web.Request) -> web.Response:
    return json_response(sim.faults.to_json())


@ROUTES.route("PUT", "/_simulator/faults", "_admin_put")
async def admin_put_faults(sim: SimulatorService, request: web.Request) -> web.Response:
    try:
        data = orjson.loads(await request.read())
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        sim.faults.update_from_json(data)
    except (ValueError, TypeError) as exc:
        return json_response({"error": str(exc)}, 400)
    return json_response(sim.faults.to_json())


@ROUTES.route("GET", "/_simulator/stats", "_admin_stats")
async def admin_stats(sim: SimulatorService, request: web.Request) -> web.Response:
    return json_response(sim.stats.to_json())


@ROUTES.route("POST", "/_simulator/reset", "_admin_reset")
async def admin_reset(sim: SimulatorService, request: web.Request) -> web.Response:
    sim.reset()
    return json_response({"reset": True})


@ROUTES.route("POST", "/_simulator/revoke", "_admin_revoke")
async def admin_revoke(sim: SimulatorService, request: web.Request) -> web.Response:
    sim.revoke_tokens()
    return json_response({"revoked": True})
