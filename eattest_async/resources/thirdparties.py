"""Third parties: list, details, and the EDGE search language."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, Literal, overload

from .._exceptions import InvalidInputError
from .._pagination import Checkpoint, Scan, ScanProgress
from .._protocol import query
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

    @staticmethod
    def _filters(
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
    ) -> tuple[tuple[str, str], ...]:
        """The filters in the API's spelling, each checked locally."""
        return query(
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
        )

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
        filters = self._filters(
            monitored=monitored,
            company_id_type=company_id_type,
            company_id_value=company_id_value,
            name=name,
            siren=siren,
            siret=siret,
            tva=tva,
            state_last_change_date=state_last_change_date,
            global_state=global_state,
            subscription_state=subscription_state,
        )
        return await self._list_page(
            "/thirdparties", "list_thirdparties", filters, Thirdparty, page, page_size, timeout
        )

    @overload
    def scan(self, *, raw: Literal[False] = False, **options: Any) -> Scan[Thirdparty]: ...

    @overload
    def scan(self, *, raw: Literal[True], **options: Any) -> Scan[dict[str, Any]]: ...

    def scan(
        self,
        *,
        page_size: int = 100,
        concurrency: int | None = None,
        order: Literal["page", "completed"] = "page",
        resume_from: Checkpoint | dict[str, Any] | None = None,
        on_progress: Callable[[ScanProgress], object] | None = None,
        prefetch: int | None = None,
        raw: bool = False,
        **filters: Any,
    ) -> Scan[Any]:
        """Every third party matching the filters of :meth:`list` (see ``dossiers.scan``)."""
        return self._scan(
            operation="list_thirdparties",
            template="/thirdparties",
            filters=self._filters(**filters),
            model=Thirdparty,
            key=lambda t: t.thirdparty_id,
            raw_key="thirdpartyId",
            page_size=page_size,
            concurrency=concurrency,
            order=order,
            resume_from=resume_from,
            on_progress=on_progress,
            raw=raw,
            prefetch=prefetch,
        )

    def search_scan(
        self,
        query_text: str,
        *,
        page_size: int = 100,
        concurrency: int | None = None,
        order: Literal["page", "completed"] = "page",
        resume_from: Checkpoint | dict[str, Any] | None = None,
        on_progress: Callable[[ScanProgress], object] | None = None,
        prefetch: int | None = None,
    ) -> Scan[ThirdpartyDetails]:
        """Every result of :meth:`search` (EDGE v1.3), pages fetched concurrently."""
        return self._scan(
            operation="search_thirdparties",
            template="/thirdparties/q",
            filters=(("search", _search(query_text)),),
            model=ThirdpartyDetails,
            key=lambda t: t.thirdparty_id,
            raw_key="thirdpartyId",
            page_size=page_size,
            concurrency=concurrency,
            order=order,
            resume_from=resume_from,
            on_progress=on_progress,
            raw=False,
            prefetch=prefetch,
        )

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


def _search(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError("query", "a non-empty search expression is required")
    return text.strip()
