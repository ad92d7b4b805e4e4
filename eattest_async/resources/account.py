"""GET /account, GET /account/{accountId}."""

from __future__ import annotations

from ..models import Account, AccountStatistics
from ._base import Resource, get


class AccountResource(Resource):
    """The account behind the credentials, and its statistics."""

    async def get(self, *, timeout: float | None = None) -> Account:
        """GET /account: the account and its subscriptions (also tells the account id)."""
        return await self._one(get("/account", "get_account", timeout=timeout), Account)

    async def statistics(self, *, timeout: float | None = None) -> AccountStatistics:
        """GET /account/{accountId}: counts of third parties and dossiers, per indicator."""
        request = get(await self._account_path(""), "get_account_statistics", timeout=timeout)
        return await self._one(request, AccountStatistics)
