"""Documents of a dossier."""

from __future__ import annotations

from .._filters import identifier
from ..models import Document, Items
from ._base import Resource, get


class DocumentsResource(Resource):
    """The required documents of a dossier, with the files provided for each."""

    async def list(self, dossier_id: int, *, timeout: float | None = None) -> Items[Document]:
        """GET /account/{accountId}/dossiers/{dossierId}/documents."""
        path = await self._account_path(
            "/dossiers/{dossier_id}/documents", dossier_id=identifier(dossier_id, "dossier_id")
        )
        return await self._many(get(path, "list_documents", timeout=timeout), Document)

    async def get(
        self, dossier_id: int, document_id: int, *, timeout: float | None = None
    ) -> Document:
        """GET /account/{accountId}/dossiers/{dossierId}/documents/{documentId}."""
        path = await self._account_path(
            "/dossiers/{dossier_id}/documents/{document_id}",
            dossier_id=identifier(dossier_id, "dossier_id"),
            document_id=identifier(document_id, "document_id"),
        )
        return await self._one(get(path, "get_document", timeout=timeout), Document)
