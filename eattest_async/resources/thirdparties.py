"""Third parties: list, details, and the EDGE search language."""

from __future__ import annotations

import datetime as dt

from .._exceptions import InvalidInputError
from .._validation import (
    check_date,
    check_page,
    check_page_size,
    check_siren,
    check_siret,
    check_vat,
)
from ..models import Page, Thirdparty, ThirdpartyDetails
from ._base import Resource, get
from ._filters import company_id_type_or_none, identifier, optional


class ThirdpartiesResource(Resource):
    """The account's repository of third parties (suppliers, partners)."""

    async def list(
        self,
        *,
        monitored: bool | None = None,
        company_id_type: str | None = None,
        company_id_value: str | None = None,
        name: str | None = None,
        siren: str | None = None,
        siret: str | None = None,
        tva: str | None = None,
        state_last_change_date: dt.date | str | None = None,
        global_state: bool | None = None,
        subscription_state: bool | None = None,
        page: int = 0,
        page_size: int | None = None,
        timeout: float | None = None,
    ) -> Page[Thirdparty]:
        """GET /account/{accountId}/thirdparties: one page (0-based) of third parties."""
        request = get(
            await self._account_path("/thirdparties"),
            "list_thirdparties",
            timeout=timeout,
            monitored=monitored,
            companyIdType=company_id_type_or_none(company_id_type),
            companyIdValue=company_id_value,
            name=name,
            siren=optional(check_siren, siren, "siren"),
            siret=optional(check_siret, siret, "siret"),
            tva=optional(check_vat, tva, "tva"),
            stateLastChangeDate=optional(
                check_date, state_last_change_date, "state_last_change_date"
            ),
            thirdpartyGlobalState=global_state,
            subscriptionState=subscription_state,
            page=check_page(page),
            pageSize=optional(check_page_size, page_size, "page_size"),
        )
        return await self._page(request, Thirdparty, page, page_size)

    async def get(self, thirdparty_id: int, *, timeout: float | None = None) -> ThirdpartyDetails:
        """GET /account/{accountId}/thirdparties/{thirdpartyId}: identity, address, users..."""
        path = await self._account_path(
            "/thirdparties/{thirdparty_id}",
            thirdparty_id=identifier(thirdparty_id, "thirdparty_id"),
        )
        return await self._one(get(path, "get_thirdparty", timeout=timeout), ThirdpartyDetails)

    async def search(
        self,
        query: str,
        *,
        page: int = 0,
        page_size: int | None = None,
        timeout: float | None = None,
    ) -> Page[ThirdpartyDetails]:
        """GET /account/{accountId}/thirdparties/q (EDGE v1.3): ``workforce>200 AND isActive:true``.

        Criteria are ``field`` + one of ``: ~ ! > <`` + value, joined by AND/OR, with
        spaced parentheses: ``( workforce>200 AND isActive:true ) OR workforce<2``.
        """
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError("query", "a non-empty search expression is required")
        request = get(
            await self._account_path("/thirdparties/q"),
            "search_thirdparties",
            timeout=timeout,
            search=query.strip(),
            page=check_page(page),
            pageSize=optional(check_page_size, page_size, "page_size"),
        )
        return await self._page(request, ThirdpartyDetails, page, page_size)
