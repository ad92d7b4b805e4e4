"""A compliance backend on FastAPI: one e-Attestations client for the whole app.

Run against the simulator:  eattest simulator --port 8080 --password pw  then
    EATTEST_BASE_URL=http://127.0.0.1:8080/api/v1 \\
    EATTEST_TOKEN_URL=http://127.0.0.1:8080/auth/realms/eat_realm/protocol/openid-connect/token \\
    EATTEST_USERNAME=api-user@simulator.test EATTEST_PASSWORD=pw uvicorn examples.fastapi_app:app
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.responses import StreamingResponse

import eattest_async as ea
from eattest_async.fastapi import EattestClient, install_error_handlers, lifespan


def environment() -> ea.Environment:
    if os.environ.get("EATTEST_BASE_URL"):
        return ea.Environment.custom(
            base_url=os.environ["EATTEST_BASE_URL"], token_url=os.environ["EATTEST_TOKEN_URL"]
        )
    return ea.Environment.TEST


app = FastAPI(
    lifespan=lifespan(
        environment(),
        username=os.environ.get("EATTEST_USERNAME", ""),
        password=os.environ.get("EATTEST_PASSWORD", ""),
    )
)
install_error_handlers(app)


@app.get("/suppliers/{siret}/compliance")
async def compliance(siret: str, client: EattestClient) -> dict[str, Any]:
    """Is this supplier (by SIRET) compliant with the duty of care, and what is missing?"""
    page = await client.dossiers.list(siret=siret)
    if not page.items:
        raise ea.NotFoundError(f"no dossier for SIRET {siret}", status=404)
    dossiers = []
    for dossier in page.items:
        indicator = dossier.indicator("I001")
        dossiers.append(
            {
                "dossier_id": dossier.dossier_id,
                "monitored": dossier.monitored,
                "duty_of_care": indicator.state if indicator else None,
                "missing_documents": [d.document_code for d in dossier.documents if not d.present],
            }
        )
    return {
        "siret": siret,
        "compliant": all(d["duty_of_care"] for d in dossiers),
        "dossiers": dossiers,
    }


@app.get("/exports/dossiers.ndjson")
async def export(client: EattestClient, monitored: bool | None = None) -> StreamingResponse:
    """Every dossier as JSON lines, streamed as the scan delivers them."""
    scan = client.dossiers.scan(raw=True, page_size=200, concurrency=8, monitored=monitored)

    async def lines() -> AsyncIterator[bytes]:
        async with scan:
            async for dossier in scan:
                yield orjson.dumps(dossier) + b"\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")
