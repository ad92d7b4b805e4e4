"""GET /account and GET /account/{accountId}."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from .._http import (
    ACCOUNT,
    API_PREFIX,
    ROUTES,
    json_response,
    messages,
)

if TYPE_CHECKING:
    from .._service import SimulatorService


@ROUTES.route("GET", API_PREFIX + "/account", "get_account")
async def get_account(sim: SimulatorService, request: web.Request) -> web.Response:
    return json_response({"content": sim.render.account(sim.data), "messages": messages()})


@ROUTES.route("GET", ACCOUNT, "get_account_statistics")
async def get_account_statistics(sim: SimulatorService, request: web.Request) -> web.Response:
    return json_response({"content": sim.render.statistics(sim.data), "messages": messages()})
