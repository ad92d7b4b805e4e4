"""The Keycloak-style token endpoint and the checking of bearer tokens.

Sessions are what a password grant opens; refresh grants keep them; revocation ends them.
Access tokens are JWTs carrying ``account_ids``; their expiry is kept here (by ``jti``)
so that tests can expire them at will.
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import TYPE_CHECKING, Any

import attrs
from aiohttp import web

from . import _jwt
from ._http import CLIENT_ID, ROUTES, TOKEN_PATH, json_response

if TYPE_CHECKING:
    from ._service import SimulatorService

__all__ = ["Tokens"]


@attrs.define
class _Session:
    sid: str
    refresh_expires_at: float
    revoked: bool = False


class _Refused(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(error)
        self.status, self.error, self.description = status, error, description


class Tokens:
    """Sessions and tokens of the one API user."""

    def __init__(
        self,
        *,
        username: str,
        password: str,
        account_id: int,
        access_lifetime: float,
        refresh_lifetime: float,
    ) -> None:
        self.username = username
        self.password = password
        self.account_id = account_id
        self.access_lifetime = access_lifetime
        self.refresh_lifetime = refresh_lifetime
        self._secret = secrets.token_bytes(32)
        self._sessions: dict[str, _Session] = {}
        self._access_expiry: dict[str, float] = {}  # jti -> wall-clock expiry
        self._expired_before = 0.0  # access tokens issued before this instant are expired

    # -- what tests and faults do to them ------------------------------------------------

    def revoke(self) -> None:
        for session in self._sessions.values():
            session.revoked = True

    def expire_access(self) -> None:
        self._expired_before = time.time()

    def expire_refresh(self) -> None:
        self.expire_access()
        now = time.time()
        for session in self._sessions.values():
            session.refresh_expires_at = min(session.refresh_expires_at, now)

    # -- granting --------------------------------------------------------------------------

    def grant(self, form: dict[str, str]) -> tuple[str, dict[str, Any]]:
        """(grant type, token answer) for a token request; raises :class:`_Refused`."""
        if form.get("client_id") != CLIENT_ID:
            raise _Refused(401, "invalid_client", "Invalid client or Invalid client credentials")
        grant = form.get("grant_type")
        if grant is None:
            raise _Refused(400, "invalid_request", "Missing form parameter: grant_type")
        now = time.time()
        if grant == "password":
            if form.get("username") != self.username or form.get("password") != self.password:
                raise _Refused(401, "invalid_grant", "Invalid user credentials")
            session = _Session(
                sid=str(uuid.uuid4()), refresh_expires_at=now + self.refresh_lifetime
            )
            self._sessions[session.sid] = session
        elif grant == "refresh_token":
            claims = _jwt.decode(str(form.get("refresh_token", "")), self._secret)
            if claims is None or claims.get("typ") != "Refresh":
                raise _Refused(400, "invalid_grant", "Invalid refresh token")
            found = self._sessions.get(str(claims.get("sid")))
            if found is None or found.revoked:
                raise _Refused(400, "invalid_grant", "Session not active")
            if now >= min(
                float(claims.get("exp_precise", claims.get("exp", 0))), found.refresh_expires_at
            ):
                raise _Refused(400, "invalid_grant", "Token is not active")
            session = found
        else:
            raise _Refused(400, "unsupported_grant_type", "Unsupported grant_type")
        return grant, self._issue(session)

    def _issue(self, session: _Session) -> dict[str, Any]:
        now = time.time()
        jti = str(uuid.uuid4())
        access_expiry = now + self.access_lifetime
        self._access_expiry[jti] = access_expiry
        if len(self._access_expiry) > 100_000:  # forget long-dead tokens
            self._access_expiry = {k: v for k, v in self._access_expiry.items() if v > now}
        base = {
            "iat": int(now),
            "iss": "http://simulator/auth/realms/eat_realm",
            "azp": CLIENT_ID,
            "sid": session.sid,
            "session_state": session.sid,
            "sub": "c848abbb-sim-user",
        }
        access = _jwt.encode(
            {
                **base,
                "jti": jti,
                "exp": int(access_expiry) + 1,
                "typ": "Bearer",
                "aud": "account",
                "scope": "profile email",
                "account_ids": str(self.account_id),
                "preferred_username": self.username,
                "iat_precise": now,
            },
            self._secret,
        )
        refresh = _jwt.encode(
            {
                **base,
                "jti": str(uuid.uuid4()),
                "exp": int(session.refresh_expires_at) + 1,
                "typ": "Refresh",
                "exp_precise": session.refresh_expires_at,
            },
            self._secret,
        )

        def seconds(value: float, configured: float) -> float | int:
            # Keycloak sends whole seconds; sub-second lifetimes exist only for fast tests.
            return round(value) if float(configured).is_integer() else round(value, 3)

        refresh_left = max(0.0, session.refresh_expires_at - now)
        return {
            "access_token": access,
            "expires_in": seconds(self.access_lifetime, self.access_lifetime),
            "refresh_expires_in": seconds(refresh_left, self.refresh_lifetime),
            "refresh_token": refresh,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "session_state": session.sid,
            "scope": "profile email",
        }

    # -- checking ----------------------------------------------------------------------------

    def claims(self, request: web.Request) -> dict[str, Any] | None:
        """The claims of the request's valid bearer token, or None (a 401)."""
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("bearer "):
            return None
        claims = _jwt.decode(header[7:].strip(), self._secret)
        if claims is None or claims.get("typ") != "Bearer":
            return None
        session = self._sessions.get(str(claims.get("sid")))
        expiry = self._access_expiry.get(str(claims.get("jti")))
        now = time.time()
        if session is None or session.revoked or expiry is None or now >= expiry:
            return None
        if float(claims.get("iat_precise", 0)) < self._expired_before:
            return None
        return claims


@ROUTES.route("POST", TOKEN_PATH, "token")
async def token(sim: SimulatorService, request: web.Request) -> web.Response:
    form = {k: str(v) for k, v in (await request.post()).items()}
    try:
        grant, answer = sim.tokens.grant(form)
    except _Refused as refused:
        sim.stats.token_refusals[refused.error] += 1
        return json_response(
            {"error": refused.error, "error_description": refused.description}, refused.status
        )
    sim.stats.token_grants[grant] += 1
    return json_response(answer)
