"""Security promises: TLS verified by default, credentials never cross origins, no plain http."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import pytest
import trustme
from aiohttp import web

import eattest_async as ea
from eattest_async.simulator import Simulator

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_sim(authority: trustme.CA) -> AsyncIterator[Simulator]:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    async with Simulator(dossiers=20, ssl=server_context) as sim:
        yield sim


async def test_a_self_signed_server_is_refused_by_default(tls_sim: Simulator) -> None:
    assert tls_sim.base_url.startswith("https://")
    async with ea.Client(
        tls_sim.environment, username=tls_sim.username, password=tls_sim.password
    ) as client:
        with pytest.raises(ea.ConnectError) as info:
            await client.account.get()
    assert info.value.transient is False  # not retried: a certificate does not heal
    assert client.stats.retries == {}
    assert tls_sim.stats.total_requests == 0


async def test_a_custom_ca_is_accepted(tls_sim: Simulator, authority: trustme.CA) -> None:
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    async with ea.Client(
        tls_sim.environment,
        username=tls_sim.username,
        password=tls_sim.password,
        ssl=client_context,
    ) as client:
        assert (await client.account.get()).id == tls_sim.account_id


async def test_a_redirect_to_another_origin_never_carries_the_token(sim: Simulator) -> None:
    target = sim.base_url.replace("127.0.0.1", "localhost")  # same server, another origin

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(target + request.path_qs.removeprefix("/api/v1"))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", redirect)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        environment = ea.Environment.custom(
            base_url=f"http://127.0.0.1:{port}/api/v1", token_url=sim.token_url
        )
        async with ea.Client(
            environment, username=sim.username, password=sim.password, retry=ea.RetryPolicy.none()
        ) as client:
            with pytest.raises(ea.UnauthorizedError):
                await client.dossiers.list()
    finally:
        await runner.cleanup()
    followed = [r for r in sim.requests if r.operation == "list_dossiers"]
    assert followed, "the redirect was followed"
    assert all("Authorization" not in r.headers for r in followed)


def test_plain_http_is_refused_except_on_loopback() -> None:
    with pytest.raises(ea.InvalidInputError, match="plain http"):
        ea.Environment.custom(
            base_url="http://rs.example.com/api/v1", token_url="https://auth.example.com/t"
        )
    for host in ("127.0.0.1", "127.8.9.10", "[::1]", "localhost"):
        assert ea.Environment.custom(
            base_url=f"http://{host}:8080/api/v1", token_url=f"http://{host}:8080/t"
        )
    with pytest.raises(ea.InvalidInputError, match="credentials"):
        ea.Environment.custom(
            base_url="https://user:pw@rs.example.com/api/v1", token_url="https://a/t"
        )
    assert ea.Environment.custom(
        base_url="http://10.0.0.5/api/v1", token_url="http://10.0.0.5/t", allow_http=True
    ).allow_http


SECRET = "hunter2pw"


def test_a_url_given_with_a_secret_is_never_shown_with_it() -> None:
    # Accepted: a token in the query (a gateway's ?apikey=, say) or the fragment.
    environment = ea.Environment.custom(
        base_url=f"https://rs.example.com/api/v1?apikey={SECRET}",
        token_url=f"https://auth.example.com/t#{SECRET}",
    )
    client = ea.Client(environment, username="u", password="p")
    for shown in (repr(environment), str(environment), repr(client)):
        assert SECRET not in shown
        assert "https://rs.example.com/api/v1?***" in shown
    assert "'https://auth.example.com/t#***'" in repr(environment)
    # Refused: the errors say why without quoting what was given.
    for base_url in (
        f"https://u:{SECRET}@rs.example.com/api/v1",
        f"https://u:{SECRET}/x@rs.example.com/api/v1",  # a "/" in the password
        f"https://u:{SECRET}?x@rs.example.com/api/v1",  # a "?" in the password
        f"http://rs.example.com/api/v1?apikey={SECRET}",  # plain http
        f"https://rs.example.com:{SECRET}/api/v1",  # not a port
        f"https://[{SECRET}/api/v1",  # not a host
    ):
        with pytest.raises(ea.InvalidInputError) as info:
            ea.Environment.custom(base_url=base_url, token_url="https://a/t")
        assert info.value.field == "base_url"
        assert SECRET not in repr(info.value) + str(info.value)
