"""The FastAPI example app, through its real ASGI stack, against the simulator."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

import eattest_async as ea
from eattest_async._validation import luhn_check_digit
from eattest_async.fastapi import EattestClient, install_error_handlers, lifespan
from eattest_async.simulator import FaultAction, Simulator

from .hostile import ACCOUNT_ID, PASSWORD, USERNAME, Server, serving

pytestmark = pytest.mark.anyio


@pytest.fixture
async def app_client(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("EATTEST_BASE_URL", sim.base_url)
    monkeypatch.setenv("EATTEST_TOKEN_URL", sim.token_url)
    monkeypatch.setenv("EATTEST_USERNAME", sim.username)
    monkeypatch.setenv("EATTEST_PASSWORD", sim.password)
    module = importlib.reload(importlib.import_module("examples.fastapi_app"))
    app: Any = module.app
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as http,
    ):
        yield http


async def test_compliance_status_by_siret(sim: Simulator, app_client: httpx.AsyncClient) -> None:
    siret = sim.data.thirdparty(3).siret
    response = await app_client.get(f"/suppliers/{siret}/compliance")
    assert response.status_code == 200
    body = response.json()
    assert body["siret"] == siret
    assert body["dossiers"]
    assert {"dossier_id", "duty_of_care", "missing_documents"} <= set(body["dossiers"][0])
    body_digits = "99912345"  # SIRENs starting 999 never occur among the simulator's suppliers
    siren = body_digits + luhn_check_digit(body_digits)
    unknown = siren + "0001" + luhn_check_digit(siren + "0001")
    assert (await app_client.get(f"/suppliers/{unknown}/compliance")).status_code == 404
    invalid = await app_client.get("/suppliers/12345678901234/compliance")
    assert invalid.status_code == 422
    assert "siret" in invalid.json()["message"]


async def test_concurrent_requests_share_one_token(
    sim: Simulator, app_client: httpx.AsyncClient
) -> None:
    sirets = [sim.data.thirdparty(j).siret for j in range(40) if sim.data.thirdparty(j).siret][:30]
    responses = await asyncio.gather(
        *(app_client.get(f"/suppliers/{s}/compliance") for s in sirets)
    )
    assert {r.status_code for r in responses} == {200}
    assert sim.stats.token_grants == {"password": 1}


async def test_an_upstream_429_reaches_the_caller_as_503_with_retry_after(
    sim: Simulator, app_client: httpx.AsyncClient
) -> None:
    siret = sim.data.thirdparty(3).siret
    await app_client.get(f"/suppliers/{siret}/compliance")  # signed in
    # Longer than the client's patience (RetryPolicy.max_retry_after): it gives up at once.
    sim.faults.add(FaultAction(kind="status", status=429, retry_after=400))
    response = await app_client.get(f"/suppliers/{siret}/compliance")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "400"
    assert response.json()["error"] == "RateLimitError"


async def test_streaming_ndjson_export(sim: Simulator, app_client: httpx.AsyncClient) -> None:
    async with app_client.stream("GET", "/exports/dossiers.ndjson") as response:
        assert response.headers["content-type"] == "application/x-ndjson"
        ids = [orjson.loads(line)["dossierId"] async for line in response.aiter_lines() if line]
    assert ids == sim.live_dossier_ids()


@pytest.fixture
async def passing_through(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Server]]:
    """An app whose routes hand their anonymous callers' input to the client, as is."""
    async with serving() as server:
        app = FastAPI(
            lifespan=lifespan(
                server.environment(),
                username=USERNAME,
                password=PASSWORD,
                account_id=ACCOUNT_ID,
                coordinator=ea.LocalCoordinator(),
            )
        )
        install_error_handlers(app)

        @app.get("/p/{process_id}")
        async def process(process_id: str, client: EattestClient) -> str:
            return (await client.processes.get(process_id)).process_id or ""

        @app.get("/save")
        async def save(dest: str, client: EattestClient) -> str:
            return str(await client.files.download(1, 2, 3, dest=dest))

        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://app"
            ) as http,
        ):
            yield http, server


async def test_a_dot_segment_from_a_caller_reaches_no_other_path(
    passing_through: tuple[httpx.AsyncClient, Server],
) -> None:
    http, server = passing_through
    response = await http.get("/p/%2E%2E")  # processes.get("..") listed the dossiers
    assert response.status_code == 422
    assert response.json()["message"].startswith("process_id:")
    assert server.requests == []


@pytest.mark.parametrize("dest", ["/etc/passwd", "/proc/self/x"])
async def test_a_folder_the_server_cannot_write_is_a_500_without_its_state(
    passing_through: tuple[httpx.AsyncClient, Server], dest: str
) -> None:
    if not Path(dest).parent.is_dir():
        pytest.skip(f"no {Path(dest).parent} here")
    http, server = passing_through
    response = await http.get("/save", params={"dest": dest})
    # The message told the server's filesystem ("... is a file", "cannot write into ...")
    # and blamed the caller for it: neither is the caller's business.
    assert response.status_code == 500
    assert response.json() == {
        "error": "DestinationError",
        "message": "this service could not write the file",
    }
    assert server.requests == []


async def test_a_bad_dest_argument_is_still_a_422_naming_it(
    passing_through: tuple[httpx.AsyncClient, Server],
) -> None:
    http, _ = passing_through
    response = await http.get("/save", params={"dest": "a\x00b"})
    assert response.status_code == 422
    assert response.json()["message"].startswith("dest:")
