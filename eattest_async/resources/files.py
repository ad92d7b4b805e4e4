"""Files (evidences) of a document: list them, download one."""

from __future__ import annotations

import os
from pathlib import Path

from .._downloads import check_folder
from .._filters import identifier
from .._protocol import ApiRequest
from .._validation import check_optional_text
from ..models import FileInfo, Items
from ._base import Resource, get, started_for


class FilesResource(Resource):
    """The files provided for a document, mostly PDFs."""

    async def list(
        self, dossier_id: int, document_id: int, *, timeout: float | None = None
    ) -> Items[FileInfo]:
        """GET .../dossiers/{dossierId}/documents/{documentId}/files (EDGE v1.3)."""
        return await self._many(
            get(
                await self._document_path(dossier_id, document_id, "/files"),
                "list_files",
                timeout=timeout,
            ),
            FileInfo,
        )

    async def evidences(
        self, dossier_id: int, document_id: int, *, timeout: float | None = None
    ) -> Items[FileInfo]:
        """GET .../dossiers/{dossierId}/documents/{documentId}/evidences (EDGE v1.3)."""
        return await self._many(
            get(
                await self._document_path(dossier_id, document_id, "/evidences"),
                "list_evidences",
                timeout=timeout,
            ),
            FileInfo,
        )

    async def download(
        self,
        dossier_id: int,
        document_id: int,
        file_id: int,
        *,
        dest: str | os.PathLike[str] = ".",
        filename: str | None = None,
        overwrite: bool = False,
        expected_size: int | None = None,
        timeout: float | None = None,
    ) -> Path:
        """GET .../documents/{documentId}/files/{fileId}: stream the file to disk, atomically.

        ``dest`` is always a folder, created if missing. The file is named ``filename`` if
        given, else by the server's ``Content-Disposition``; either way made safe for any
        disk. A name already taken (a file or a folder) is never replaced: the download gets
        ``name (1).ext``, ``(2)``... unless ``overwrite=True`` (which replaces a file, never a
        folder). The size is checked against ``Content-Length`` and ``expected_size`` (pass
        ``FileInfo.file_size``); a short, failed or cancelled download leaves no file.
        Returns the path written.
        """
        file_id = identifier(file_id, "file_id")
        if expected_size is not None:
            identifier(expected_size, "expected_size")
        # Before the download: a name of the wrong type would only fail once the file is here.
        filename = check_optional_text(filename, "filename")
        folder = check_folder(dest)
        request_path = await self._document_path(
            dossier_id, document_id, "/files/{file_id}", file_id=file_id
        )
        request = ApiRequest(
            method="GET",
            path=request_path,
            operation="download_file",
            timeout=timeout,
            started=started_for(request_path),
        )
        return await self._core.download(
            request,
            folder,
            expected_size=expected_size,
            fallback_name=f"file-{file_id}",
            filename=filename,
            overwrite=overwrite,
        )

    async def _document_path(
        self, dossier_id: int, document_id: int, tail: str, **params: object
    ) -> str:
        return await self._account_path(
            "/dossiers/{dossier_id}/documents/{document_id}" + tail,
            dossier_id=identifier(dossier_id, "dossier_id"),  # checked before any request
            document_id=identifier(document_id, "document_id"),
            **params,
        )
