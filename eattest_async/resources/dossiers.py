"""Dossiers: search, details, creation (asynchronous), update, stop, reactivate."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, Literal, overload

from .._exceptions import InvalidInputError
from .._pagination import Checkpoint, Scan, ScanProgress
from .._protocol import compact, query
from .._validation import (
    check_date,
    check_duns,
    check_email,
    check_siren,
    check_siret,
    check_vat,
)
from ..models import Dossier, DossierProcess, DossierUpdate, Messages, NewDossier, Page
from ._base import Resource, get, post
from ._filters import company_id_type_or_none, identifier, optional

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


def _codes(values: tuple[str, ...], field: str) -> list[str]:
    for code in values:
        if not isinstance(code, str) or not code.strip():
            raise InvalidInputError(field, "document codes are non-empty strings")
    return list(values)


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
            ("thirdpartyCode", dossier.thirdparty_code),
            ("description", dossier.description),
            ("purchasingCategory", dossier.purchasing_category),
            (
                "expirationDate",
                None
                if dossier.expiration_date is None
                else _future_date(dossier.expiration_date, "expiration_date"),
            ),
            ("requiredDocuments", _codes(dossier.required_documents, "required_documents") or None),
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


def dossier_update_body(update: DossierUpdate) -> dict[str, Any]:
    if not isinstance(update, DossierUpdate):
        raise InvalidInputError("update", "expected a DossierUpdate")
    body = compact(
        [
            (
                "dossierReference",
                None if update.dossier_reference is None else _reference(update.dossier_reference),
            ),
            ("description", update.description),
            ("purchasingCategory", update.purchasing_category),
            (
                "expirationDate",
                None
                if update.expiration_date is None
                else _future_date(update.expiration_date, "expiration_date"),
            ),
            ("thirdpartyCode", update.thirdparty_code),
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

    @staticmethod
    def _filters(
        *,
        thirdparty_id: int | None = None,
        company_id_type: str | None = None,
        company_id_value: str | None = None,
        thirdparty_code: str | None = None,
        dossier_reference: str | None = None,
        monitored: bool | None = None,
        state_last_change_date: dt.date | str | None = None,
        siren: str | None = None,
        siret: str | None = None,
        tva: str | None = None,
    ) -> tuple[tuple[str, str], ...]:
        """The search filters in the API's spelling, each checked locally."""
        return query(
            thirdpartyId=optional(identifier, thirdparty_id, "thirdparty_id"),
            companyIdType=company_id_type_or_none(company_id_type),
            companyIdValue=company_id_value,
            thirdpartyCode=thirdparty_code,
            dossierReference=dossier_reference,
            monitored=monitored,
            stateLastChangeDate=optional(
                check_date, state_last_change_date, "state_last_change_date"
            ),
            siren=optional(check_siren, siren, "siren"),
            siret=optional(check_siret, siret, "siret"),
            tva=optional(check_vat, tva, "tva"),
        )

    async def list(
        self,
        *,
        thirdparty_id: int | None = None,
        company_id_type: str | None = None,
        company_id_value: str | None = None,
        thirdparty_code: str | None = None,
        dossier_reference: str | None = None,
        monitored: bool | None = None,
        state_last_change_date: dt.date | str | None = None,
        siren: str | None = None,
        siret: str | None = None,
        tva: str | None = None,
        page: int = 0,
        page_size: int | None = None,
        timeout: float | None = None,
    ) -> Page[Dossier]:
        """GET /account/{accountId}/dossiers: one page (0-based) of the dossiers matching."""
        filters = self._filters(
            thirdparty_id=thirdparty_id,
            company_id_type=company_id_type,
            company_id_value=company_id_value,
            thirdparty_code=thirdparty_code,
            dossier_reference=dossier_reference,
            monitored=monitored,
            state_last_change_date=state_last_change_date,
            siren=siren,
            siret=siret,
            tva=tva,
        )
        return await self._list_page(
            "/dossiers", "list_dossiers", filters, Dossier, page, page_size, timeout
        )

    @overload
    def scan(self, *, raw: Literal[False] = False, **options: Any) -> Scan[Dossier]: ...

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
        """Every dossier matching the filters of :meth:`list`, pages fetched concurrently.

        ::

            scan = client.dossiers.scan(monitored=True, page_size=100, concurrency=16)
            async for dossier in scan:
                ...
            print(scan.report)

        ``order="page"`` yields in page order, ``"completed"`` as pages arrive.
        ``resume_from=`` takes ``scan.checkpoint()`` (or its ``to_json()``) to fetch only
        the pages not yet delivered. ``raw=True`` yields the JSON dicts, unstructured.
        ``prefetch`` pages (default: ``concurrency``) are requested before the total is
        known, saving a round trip; on a result smaller than that, the extra requests are
        cancelled or come back empty (those already sent still count at the server).
        ``prefetch=1`` asks for the first page alone.
        """
        return self._scan(
            operation="list_dossiers",
            template="/dossiers",
            filters=self._filters(**filters),
            model=Dossier,
            key=lambda d: d.dossier_id,
            raw_key="dossierId",
            page_size=page_size,
            concurrency=concurrency,
            order=order,
            resume_from=resume_from,
            on_progress=on_progress,
            raw=raw,
            prefetch=prefetch,
        )

    async def get(self, dossier_id: int, *, timeout: float | None = None) -> Dossier:
        """GET /account/{accountId}/dossiers/{dossierId}: the dossier with documents and files."""
        path = await self._account_path("/dossiers/{id}", id=identifier(dossier_id, "dossier_id"))
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
        if process_id is None:
            from .._exceptions import UnexpectedResponseError

            raise UnexpectedResponseError(
                "unexpected response: no processId", status=200, method="POST", path=request.path
            )
        status = content.get("status")
        return DossierProcess(
            process_id=str(process_id), status=str(status) if status is not None else None
        )

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
        body = dossier_update_body(update if update is not None else DossierUpdate(**fields))
        path = await self._account_path("/dossiers/{id}", id=identifier(dossier_id, "dossier_id"))
        return await self._action(
            post(path, "update_dossier", body, idempotent=retry, timeout=timeout)
        )

    async def stop(self, dossier_id: int, *, timeout: float | None = None) -> Messages:
        """POST /account/{accountId}/dossiers/{dossierId}/stop (E201 if already stopped)."""
        path = await self._account_path(
            "/dossiers/{id}/stop", id=identifier(dossier_id, "dossier_id")
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
            "/dossiers/{id}/reactivate", id=identifier(dossier_id, "dossier_id")
        )
        return await self._action(post(path, "reactivate_dossier", body, timeout=timeout))
