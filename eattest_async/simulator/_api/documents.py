"""Documents of a dossier, their files (v1.1) or evidences (EDGE), and downloads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from .._data import pdf_bytes
from .._http import (
    ACCOUNT,
    ROUTES,
    NotFound,
    json_response,
    messages,
    path_id,
)
from .dossiers import dossier_or_404

if TYPE_CHECKING:
    from .._service import SimulatorService


def document_or_404(sim: SimulatorService, request: web.Request) -> tuple[int, dict[str, Any]]:
    found = dossier_or_404(sim, request)
    document_id = path_id(request, "document_id")
    document = sim.data.document(found, document_id)
    if document is None:
        raise NotFound(f"Document not found with id: {document_id}")
    return found, document


@ROUTES.route("GET", ACCOUNT + "/dossiers/{dossier_id}/documents", "list_documents")
async def list_documents(sim: SimulatorService, request: web.Request) -> web.Response:
    found = dossier_or_404(sim, request)
    shape = sim.render.document_shape(sim.faults.document_shape)
    documents = sim.data._documents(found, sim.data._base_fields(found))
    return json_response(
        {
            "content": [sim.render.document(d, shape) for d in documents],
            "messages": messages(),
        }
    )


@ROUTES.route("GET", ACCOUNT + "/dossiers/{dossier_id}/documents/{document_id}", "get_document")
async def get_document(sim: SimulatorService, request: web.Request) -> web.Response:
    found = document_or_404(sim, request)
    return json_response(
        {
            "content": sim.render.document(
                found[1], sim.render.document_shape(sim.faults.document_shape)
            ),
            "messages": messages(),
        }
    )


@ROUTES.route("GET", ACCOUNT + "/dossiers/{dossier_id}/documents/{document_id}/files", "list_files")
async def list_files(sim: SimulatorService, request: web.Request) -> web.Response:
    found = document_or_404(sim, request)
    shape = sim.render.document_shape(sim.faults.document_shape)
    return json_response(
        {
            "content": [sim.render.file(f, shape) for f in found[1]["files"]],
            "messages": messages(),
        }
    )


@ROUTES.route(
    "GET", ACCOUNT + "/dossiers/{dossier_id}/documents/{document_id}/evidences", "list_evidences"
)
async def list_evidences(sim: SimulatorService, request: web.Request) -> web.Response:
    found = document_or_404(sim, request)
    return json_response(
        {
            "content": [sim.render.file(f, "v1.3") for f in found[1]["files"]],
            "messages": messages(),
        }
    )


@ROUTES.route(
    "GET",
    ACCOUNT + "/dossiers/{dossier_id}/documents/{document_id}/files/{file_id}",
    "download_file",
)
async def download_file(sim: SimulatorService, request: web.Request) -> web.Response:
    found = document_or_404(sim, request)
    file_id = path_id(request, "file_id")
    entry = next((f for f in found[1]["files"] if f["file_id"] == file_id), None)
    if entry is None:
        raise NotFound(f"File not found with id: {file_id}")
    requirement = found[1]["requirement"]
    filename = sim.faults.download_filename or f"{requirement.code}_{file_id}.pdf"
    if (
        filename.isascii()
        and filename.isprintable()
        and '"' not in filename
        and "\\" not in filename
    ):
        disposition = f'attachment; filename="{filename}"'
    else:
        disposition = f"attachment; filename*=UTF-8''{quote(filename, safe='')}"
    return web.Response(
        body=pdf_bytes(file_id, requirement.name),
        # The spec declares application/octet-stream; the service was captured sending PDFs.
        content_type="application/octet-stream" if sim.render.spec else "application/pdf",
        headers={"Content-Disposition": disposition},
    )
