"""HS256 JSON Web Tokens, enough to look like Keycloak's and to be checked by the simulator."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import orjson


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(claims: dict[str, Any], secret: bytes, *, kid: str = "sim") -> str:
    header = _b64(orjson.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}))
    payload = _b64(orjson.dumps(claims))
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def decode(token: str, secret: bytes) -> dict[str, Any] | None:
    """The claims of a token signed with ``secret``, or None when it is not one of ours."""
    try:
        header, payload, signature = token.split(".")
        expected = hmac.new(secret, f"{header}.{payload}".encode("ascii"), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(signature)):
            return None
        claims = orjson.loads(_unb64(payload))
    except (ValueError, orjson.JSONDecodeError):
        return None
    return claims if isinstance(claims, dict) else None
