"""Dossiers: search, details, creation (asynchronous), update, stop, reactivate."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, overload

import attrs

from .._converter import structure
from .._exceptions import InvalidInputError, UnexpectedResponseError
from .._filters import (
    DOSSIER_FILTERS,
    DossierFilters,
    company_id_type_or_none,
    identifier,
    query_of,
)
from .._pagination import Scan, ScanProgress
from .._protocol import compact
from .._sync import DEFAULT_MARGIN, Changes, ChangeWindow
from .._validation import (
    check_codes,
    check_date,
    check_duns,
    check_email,
    check_optional_text,
    check_siret,
    check_vat,
)
from ..models import Dossier, DossierProcess, DossierUpdate, Messages, NewDossier, Page
from ..models.scans import Checkpoint, Watermark, environment_id
from ._base import Resource, get, post, with_messages

if TYPE_CHECKING:
    from typing_extensions import Unpack

_ID_CHECKS = {"CIT001": check_siret, "CIT002": check_vat, "CIT003": check_duns}


def _future_date(value: object, field: str) -> str:
    date = check_date(value, field)
    if date < dt.date.today():
        raise InvalidInputError(field, "is in the past (the service answers E021)")
    return date.isoformat()


def _reference(value: object, field: str = "dossier_reference") -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(field, "a non-empty string is required")
    if len(value.strip()) > 100:
        raise InvalidInputError(field, "at most 100 characters")
    return value.strip()


def new_dossier_body(dossier: NewDossier) -> dict[str, Any]:
    """The JSON body of a creation, after every local check (each error names its field)."""
    if not isinstance(dossier, NewDossier):
        raise InvalidInputError("dossier", "expected a NewDossier")
    id_type = company_id_type_or_none(dossier.company_id_type)
    assert id_type is not None
    return compact(
        [
            ("companyIdType", id_type),
            ("companyIdValue", _ID_CHECKS[id_type](dossier.company_id_value, "company_id_value")),
            ("dossierReference", _reference(dossier.dossier_reference)),
            ("thirdpartyCode", check_optional_text(dossier.thirdparty_code, "thirdparty_code")),
            ("description", check_optional_text(dossier.description, "description")),
            (
                "purchasingCategory",
                check_optional_text(dossier.purchasing_category, "purchasing_category"),
            ),
            (
                "expirationDate",
                None
                if dossier.expiration_date is None
                else _future_date(dossier.expiration_date, "expiration_date"),
            ),
            (
                "requiredDocuments",
                check_codes(dossier.required_documents, "required_documents") or None,
            ),
            (
                "thirdpartyEmail",
                [check_email(e, "thirdparty_email") for e in dossier.thirdparty_email] or None,
            ),
            (
                "userInCharge",
                [check_email(e, "user_in_charge") for e in dossier.user_in_charge] or None,
            ),
        ]
    )


_UPDATE_FIELDS = frozenset(field.name for field in attrs.fields(DossierUpdate))


def dossier_update_body(
    update: DossierUpdate | None, fields: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON body of an update, from a :class:`DossierUpdate` or its fields as keywords
    (not both), after every local check (each error names its field)."""
    fields = fields or {}
    if update is not None and fields:
        raise InvalidInputError(sorted(fields)[0], "give a DossierUpdate or its fields, not both")
    unknown = sorted(set(fields) - _UPDATE_FIELDS)
    if unknown:
        raise InvalidInputError(
            unknown[0], f"not a field of an update (fields: {', '.join(sorted(_UPDATE_FIELDS))})"
        )
    if update is None:
        update = DossierUpdate(**fields)
    if not isinstance(update, DossierUpdate):
        raise InvalidInputError("update", "expected a DossierUpdate")
    body = compact(
        [
            (
                "dossierReference",
                None if update.dossier_reference is None else _reference(update.dossier_reference),
            ),
            ("description", check_optional_text(update.description, "description")),
            (
                "purchasingCategory",
                check_optional_text(update.purchasing_category, "purchasing_category"),
            ),
            (
                "expirationDate",
                None
                if update.expiration_date is None
                else _future_date(update.expiration_date, "expiration_date"),
            ),
            ("thirdpartyCode", check_optional_text(update.thirdparty_code, "thirdparty_code")),
            (
                "thirdpartyEmail",
                None
                if update.thirdparty_email is None
                else [check_email(e, "thirdparty_email") for e in update.thirdparty_email],
            ),
        ]
    )
    if not body:
        raise InvalidInputError("update", "nothing to update: set at least one field")
    return body


class DossiersResource(Resource):
    """The account's dossiers: one per monitored third-party relationship."""

    async def list(
        self,
        *,
        page: int = 0,
        page_size: int | None = None,
        timeout: float | None = None,
        **filters: Unpack[DossierFilters],
    ) -> Page[Dossier]:
        """GET /account/{accountId}/dossiers: one page (0-based) of the dossiers matching.

        Filters (each optional, see :class:`DossierFilters`): ``thirdparty_id``,
        ``company_id_type``, ``company_id_value``, ``thirdparty_code``,
        ``dossier_reference``, ``monitored``, ``state_last_change_date``, ``siren``,
        ``siret``, ``tva``; and ``op`` (EDGE v1.3), which makes ``thirdparty_code`` or
        ``dossier_reference`` match as ``"like"`` (contains), ``"starts"`` or ``"ends"``.
        """
        query = query_of(DOSSIER_FILTERS, filters)
        return await self._list_page(
            "/dossiers", "list_dossiers", query, Dossier, page, page_size, timeout
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
        **filters: Unpack[DossierFilters],
    ) -> Scan[Dossier]: ...

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
        **filters: Unpack[DossierFilters],
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
        """Every dossier matching the filters of :meth:`list`, pages fetched concurrently.

        ::

            scan = client.dossiers.scan(monitored=True, page_size=100, concurrency=16)
            async for dossier in scan:
                ...
            print(scan.report)  # complete? if not, report.problems says why

        ``order="page"`` yields in page order, ``"completed"`` as pages arrive.
        ``resume_from=`` takes ``scan.checkpoint()`` (or its ``to_json()``) to fetch only
        what was not delivered yet. ``raw=True`` yields the JSON dicts, unstructured.
        ``prefetch`` pages (default: ``concurrency``) are requested before the total is
        known, saving a round trip; on a result smaller than that, the extra requests are
        cancelled or come back empty (those already sent still count at the server).
        ``prefetch=1`` asks for the first page alone.
        """
        return self._scan(
            operation="list_dossiers",
            template="/dossiers",
            filters=query_of(DOSSIER_FILTERS, filters),
            model=Dossier,
            raw_key="dossierId",
            page_size=page_size,
            concurrency=concurrency,
            order=order,
            resume_from=resume_from,
            on_progress=on_progress,
            raw=raw,
            prefetch=prefetch,
        )

    @overload
    def changes(
        self,
        *,
        since: Watermark | dict[str, Any] | dt.datetime | dt.date | None = ...,
        margin: dt.timedelta = ...,
        page_size: int = ...,
        concurrency: int | None = ...,
        on_progress: Callable[[ScanProgress], object] | None = ...,
        raw: Literal[False] = ...,
        **filters: Unpack[DossierFilters],
    ) -> Changes[Dossier]: ...

    @overload
    def changes(
        self,
        *,
        since: Watermark | dict[str, Any] | dt.datetime | dt.date | None = ...,
        margin: dt.timedelta = ...,
        page_size: int = ...,
        concurrency: int | None = ...,
        on_progress: Callable[[ScanProgress], object] | None = ...,
        raw: Literal[True],
        **filters: Unpack[DossierFilters],
    ) -> Changes[dict[str, Any]]: ...

    def changes(
        self,
        *,
        since: Watermark | dict[str, Any] | dt.datetime | dt.date | None = None,
        margin: dt.timedelta = DEFAULT_MARGIN,
        page_size: int = 100,
        concurrency: int | None = None,
        on_progress: Callable[[ScanProgress], object] | None = None,
        raw: bool = False,
        **filters: Any,
    ) -> Changes[Any]:
        """The dossiers changed since the last run, each once; then the next watermark.

        ::

            changes = client.dossiers.changes(since=saved)  # None the first time
            async for dossier in changes:
                ...
            if changes.next_watermark is not None:  # only when the run was complete
                saved = changes.next_watermark

        Asks for ``stateLastChangeDate`` from ``margin`` before the watermark (clocks of
        the service's nodes differ; several changes share a second), and skips what the
        last run already delivered. ``since`` is a :class:`Watermark` (or its
        ``to_json()``), or a naive datetime/date on the service's clock. ``margin`` is at
        most 366 days (``InvalidInputError`` otherwise, before any request).
        """
        if "state_last_change_date" in filters:
            raise InvalidInputError("state_last_change_date", "changes() sets it from since=")
        window = ChangeWindow.of(
            since,
            margin=margin,
            filters=query_of(DOSSIER_FILTERS, filters),
            account=self._core.known_account_id,
            environment=environment_id(self._core.environment.base_url),
        )
        scan = self.scan(
            page_size=page_size,
            concurrency=concurrency,
            on_progress=on_progress,
            raw=True,
            **filters,
            **window.query_filters(),
        )
        model = None if raw else Dossier
        return Changes(scan, window, model=model)

    async def get(self, dossier_id: int, *, timeout: float | None = None) -> Dossier:
        """GET /account/{accountId}/dossiers/{dossierId}: the dossier with documents and files."""
        path = await self._account_path(
            "/dossiers/{dossier_id}", dossier_id=identifier(dossier_id, "dossier_id")
        )
        return await self._one(get(path, "get_dossier", timeout=timeout), Dossier)

    async def create(
        self, dossier: NewDossier, *, retry: bool = False, timeout: float | None = None
    ) -> DossierProcess:
        """POST /account/{accountId}/dossiers: start the (asynchronous) creation.

        Returns the process to follow with ``client.processes.wait(process.process_id)``.
        Not retried once it may have reached the server, unless ``retry=True`` (a repeat
        could create a second process; the service refuses a duplicate reference, E202).
        """
        body = new_dossier_body(dossier)
        request = post(
            await self._account_path("/dossiers"),
            "create_dossier",
            body,
            idempotent=retry,
            timeout=timeout,
            expect_content=True,
        )
        envelope = await self._core.call(request)
        content = envelope.content if isinstance(envelope.content, dict) else {}
        process_id = content.get("processId")
        if process_id is None or isinstance(process_id, (dict, list)):
            raise UnexpectedResponseError(
                "unexpected response: no processId", status=200, method="POST", path=request.path
            )
        process = structure(content, DossierProcess, method="POST", path=request.path)
        return with_messages(attrs.evolve(process, process_id=str(process_id)), envelope)

    async def update(
        self,
        dossier_id: int,
        update: DossierUpdate | None = None,
        *,
        retry: bool = True,
        timeout: float | None = None,
        **fields: Any,
    ) -> Messages:
        """POST /account/{accountId}/dossiers/{dossierId}: change reference, description...

        Pass a :class:`DossierUpdate` or its fields as keywords. Setting the same values
        twice is harmless, so this is retried like a read unless ``retry=False``.
        """
        body = dossier_update_body(update, fields)
        path = await self._account_path(
            "/dossiers/{dossier_id}", dossier_id=identifier(dossier_id, "dossier_id")
        )
        return await self._action(
            post(path, "update_dossier", body, idempotent=retry, timeout=timeout)
        )

    async def stop(self, dossier_id: int, *, timeout: float | None = None) -> Messages:
        """POST /account/{accountId}/dossiers/{dossierId}/stop (E201 if already stopped)."""
        path = await self._account_path(
            "/dossiers/{dossier_id}/stop", dossier_id=identifier(dossier_id, "dossier_id")
        )
        return await self._action(post(path, "stop_dossier", None, timeout=timeout))

    async def reactivate(
        self,
        dossier_id: int,
        *,
        expiration_date: dt.date | str | None = None,
        timeout: float | None = None,
    ) -> Messages:
        """POST /account/{accountId}/dossiers/{dossierId}/reactivate (E204 active, E205 past)."""
        body = compact(
            [
                (
                    "expirationDate",
                    None
                    if expiration_date is None
                    else _future_date(expiration_date, "expiration_date"),
                )
            ]
        )
        path = await self._account_path(
            "/dossiers/{dossier_id}/reactivate", dossier_id=identifier(dossier_id, "dossier_id")
        )
        return await self._action(post(path, "reactivate_dossier", body, timeout=timeout))
