"""Required documents: the account's catalogue, a dossier's, and changing a dossier's."""

from __future__ import annotations

from collections.abc import Iterable

from .._filters import identifier
from .._validation import check_codes
from ..models import Items, Messages, Requirement
from ._base import Resource, get, post


class RequirementsResource(Resource):
    """Which documents can be, or are, required."""

    async def list(self, *, timeout: float | None = None) -> Items[Requirement]:
        """GET /account/{accountId}/requirements: the documents this account may require."""
        return await self._many(
            get(await self._account_path("/requirements"), "list_requirements", timeout=timeout),
            Requirement,
        )

    async def for_dossier(
        self, dossier_id: int, *, timeout: float | None = None
    ) -> Items[Requirement]:
        """GET /account/{accountId}/dossiers/{dossierId}/requirements."""
        path = await self._account_path(
            "/dossiers/{dossier_id}/requirements", dossier_id=identifier(dossier_id, "dossier_id")
        )
        return await self._many(
            get(path, "list_dossier_requirements", timeout=timeout), Requirement
        )

    async def update(
        self, dossier_id: int, codes: Iterable[str], *, timeout: float | None = None
    ) -> Messages:
        """POST /account/{accountId}/dossiers/{dossierId}/requirements: the new list of codes.

        Sent as the spec's bare array; E301/E302 come back as :class:`RequirementError`.
        Setting the same list twice is harmless, so it is retried like a read.
        """
        body = check_codes(codes, "codes", required=True)
        path = await self._account_path(
            "/dossiers/{dossier_id}/requirements", dossier_id=identifier(dossier_id, "dossier_id")
        )
        return await self._action(
            post(path, "update_dossier_requirements", body, idempotent=True, timeout=timeout)
        )
