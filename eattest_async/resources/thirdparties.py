"""Third parties: list, details, and the EDGE search language."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, overload

from .._filters import (
    THIRDPARTY_FILTERS,
    ThirdpartyFilters,
    identifier,
    optional,
    query_of,
    text_filter,
)
from .._pagination import Scan, ScanProgress
from .._validation import (
    check_page,
    check_page_size,
)
from ..models import Page, Thirdparty, ThirdpartyDetails
from ..models.scans import Checkpoint
from ._base import Resource, get

if TYPE_CHECKING:
    from typing_extensions import Unpack


class ThirdpartiesResource(Resource):
    """The account's repository of third parties (suppliers, partners)."""

    async def list(
        self,
        *,
        page: int = 0,
        page_size: int | None = None,
        timeout: float | None = None,
        **filters: Unpack[ThirdpartyFilters],
    ) -> Page[Thirdparty]:
        """GET /account/{accountId}/thirdparties: one page (0-based) of third parties.

        Filters (each optional, see :class:`ThirdpartyFilters`): ``monitored``,
        ``company_id_type``, ``company_id_value``, ``name``, ``siren``, ``siret``, ``tva``,
        ``state_last_change_date``, ``global_state``, ``subscription_state``; and ``q``
        (EDGE v1.3), a search expression in the language of :meth:`search`.
        """
        query = query_of(THIRDPARTY_FILTERS, filters)
        return await self._list_page(
            "/thirdparties", "list_thirdparties", query, Thirdparty, page, page_size, timeout
        )

    @overload
    def scan(
        self,
        *,
        page_size: int = ...,
        concurrency: int | None = ...,
        order: Literal["page", "completed"] = ...,
        resume_from: Checkpoint | dict[str, Any] | None = ...,
        on_progress: Callable[[ScanProgress], object] | None = ...,
        prefetch: int | None = ...,
        raw: Literal[False] = ...,
        **filters: Unpack[ThirdpartyFilters],
    ) -> Scan[Thirdparty]: ...

    @overload
    def scan(
        self,
        *,
        page_size: int = ...,
        concurrency: int | None = ...,
        order: Literal["page", "completed"] = ...,
        resume_from: Checkpoint | dict[str, Any] | None = ...,
        on_progress: Callable[[ScanProgress], object] | None = ...,
        prefetch: int | None = ...,
        raw: Literal[True],
        **filters: Unpack[ThirdpartyFilters],
    ) -> Scan[dict[str, Any]]: ...

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
            filters=query_of(THIRDPARTY_FILTERS, filters),
            model=Thirdparty,
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
        The operation declares ``search`` alone: ``page``/``pageSize`` are sent only when
        you ask for a page other than the first or for a page size.
        """
        # Every argument checked before the account id is discovered (a request itself).
        search = _search(query)
        page_sent = check_page(page) or None
        size_sent = optional(check_page_size, page_size, "page_size")
        request = get(
            await self._account_path("/thirdparties/q"),
            "search_thirdparties",
            timeout=timeout,
            search=search,
            page=page_sent,
            pageSize=size_sent,
        )
        return await self._page(request, ThirdpartyDetails, page, page_size)


def _search(text: object) -> str:
    return text_filter(text, "query")
