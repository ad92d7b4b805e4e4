"""Third parties: the list (with EDGE ``q``), the details, the EDGE search language."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..._filters import THIRDPARTY_FILTERS
from .._http import (
    ACCOUNT,
    ROUTES,
    NotFound,
    Refusal,
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

# The parameters the client declares for each list operation: one table for both sides.
_THIRDPARTY_FILTERS = {f.param for f in THIRDPARTY_FILTERS.values()}


@ROUTES.route("GET", ACCOUNT + "/thirdparties", "list_thirdparties")
async def list_thirdparties(sim: SimulatorService, request: web.Request) -> web.Response:
    params = query_params(request, _THIRDPARTY_FILTERS)
    page, size = paging(params, sim.max_page_size)
    identifier_checks(params)
    since = (
        date_param(params["stateLastChangeDate"], "stateLastChangeDate")
        if "stateLastChangeDate" in params
        else None
    )
    monitored = bool_param(params, "monitored")
    global_state = bool_param(params, "thirdpartyGlobalState")
    subscription = bool_param(params, "subscriptionState")
    direct = {k: params[k] for k in ("siren", "siret", "tva") if k in params}
    if "companyIdValue" in params:
        value = params["companyIdValue"]
        direct["siret" if value.isdigit() else "tva"] = value
    name = params.get("name", "").lower()
    id_type = params.get("companyIdType")
    searched = compile_search(params["q"]) if "q" in params else None
    account = sim.data.account_id

    def matches(tp: Any) -> bool:
        return (
            (monitored is None or tp.monitored == monitored)
            and (global_state is None or tp.global_state == global_state)
            and (subscription is None or tp.subscription_state == subscription)
            and (id_type is None or tp.company_id_type == id_type)
            and (not name or name in tp.name.lower())
            and (searched is None or searched({"accountId": account, **tp.details()}))
            and (
                since is None
                or sim.data.thirdparty(tp.index).details()["stateLastChangeDate"] >= since
            )
        )

    ids: Sequence[int]
    if direct:
        found = sim.data.find_thirdparty(**direct)
        ids = [found.index] if found is not None and matches(found) else []
    else:
        active = (
            any(
                x is not None
                for x in (monitored, global_state, subscription, id_type, since, searched)
            )
            or name
        )
        ids = sim.data.thirdparty_ids(matches if active else None, tuple(sorted(params.items())))
    return await page_envelope(
        sim, ids, page, size, lambda j: sim.render.thirdparty_item(sim.data.thirdparty(j))
    )


@ROUTES.route("GET", ACCOUNT + "/thirdparties/q", "search_thirdparties")
async def search_thirdparties(sim: SimulatorService, request: web.Request) -> web.Response:
    params = query_params(request, {"search"})
    page, size = paging(params, sim.max_page_size)
    if "search" not in params:
        raise Refusal([ecode("E001", "search")])
    predicate = compile_search(params["search"])
    account = sim.data.account_id
    ids = sim.data.thirdparty_ids(
        lambda tp: predicate({"accountId": account, **tp.details()}), ("q", params["search"])
    )
    return await page_envelope(
        sim, ids, page, size, lambda j: sim.render.thirdparty(sim.data.thirdparty(j), account)
    )


@ROUTES.route("GET", ACCOUNT + "/thirdparties/{thirdparty_id}", "get_thirdparty")
async def get_thirdparty(sim: SimulatorService, request: web.Request) -> web.Response:
    thirdparty_id = path_id(request, "thirdparty_id")
    tp = sim.data.thirdparty_by_id(thirdparty_id)
    if tp is None:
        raise NotFound(f"Thirdparty not found with id: {thirdparty_id}")
    return json_response(
        {
            "content": sim.render.thirdparty(tp, sim.data.account_id),
            "messages": messages(),
        }
    )


_CRITERION = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)([:~!<>])(.+)$")


def compile_search(text: str) -> Callable[[dict[str, Any]], bool]:
    """Parse the EDGE ``q?search=`` language: ``field<op>value`` joined by AND/OR and ( )."""
    tokens = text.split()
    position = 0

    def fail(reason: str) -> Refusal:
        return Refusal([ecode("E010", f"search: {reason}")])

    def criterion(token: str) -> Callable[[dict[str, Any]], bool]:
        match = _CRITERION.match(token)
        if not match:
            raise fail(f"cannot read criterion {token!r}")
        field, op, expected = match.groups()
        if field == "isActive":
            field, expected = "outOfBusiness", str(expected.lower() != "true").lower()

        def test(record: dict[str, Any]) -> bool:
            value = record.get(field)
            if value is None:
                return op == "!"
            actual = str(value).lower() if isinstance(value, bool) else str(value)
            if op in "<>":
                try:
                    a, b = float(actual), float(expected)
                except ValueError:
                    a, b = actual, expected  # type: ignore[assignment]
                return a > b if op == ">" else a < b
            if op == "~":
                return expected.lower() in actual.lower()
            equal = actual.lower() == expected.lower()
            return equal if op == ":" else not equal

        return test

    def parse_or() -> Callable[[dict[str, Any]], bool]:
        left = parse_and()
        nonlocal position
        while position < len(tokens) and tokens[position].upper() == "OR":
            position += 1
            right = parse_and()
            left = (lambda lhs, rhs: lambda r: lhs(r) or rhs(r))(left, right)
        return left

    def parse_and() -> Callable[[dict[str, Any]], bool]:
        left = parse_atom()
        nonlocal position
        while position < len(tokens) and tokens[position].upper() == "AND":
            position += 1
            right = parse_atom()
            left = (lambda lhs, rhs: lambda r: lhs(r) and rhs(r))(left, right)
        return left

    def parse_atom() -> Callable[[dict[str, Any]], bool]:
        nonlocal position
        if position >= len(tokens):
            raise fail("unexpected end")
        token = tokens[position]
        position += 1
        if token == "(":
            inner = parse_or()
            if position >= len(tokens) or tokens[position] != ")":
                raise fail("missing )")
            position += 1
            return inner
        return criterion(token)

    result = parse_or()
    if position != len(tokens):
        raise fail(f"unexpected {tokens[position]!r}")
    return result
