"""GET /account and GET /account/{accountId}."""

from __future__ import annotations

import datetime as dt

import attrs

from ._base import field, items
from .common import Messages, messages_field

__all__ = ["Account", "AccountStatistics", "IndicatorStatistics", "Subscription"]


@attrs.frozen(kw_only=True)
class Subscription:
    """One subscription of the account to a service (``key``), with its status and dates."""

    account_id: int | None = field()
    key: str | None = field()
    status: str | None = field()
    start_subscription_date: dt.datetime | None = field()
    end_subscription_date: dt.datetime | None = field()


@attrs.frozen(kw_only=True)
class Account:
    """The account behind the credentials; ``id`` is the accountId of every other call."""

    id: int | None = field("accountId")
    account: str | None = field()
    name: str | None = field("accountName")
    company: str | None = field()
    creation: dt.datetime | None = field()
    max_dossiers: int | None = field()
    subscription_date: dt.datetime | None = field("subscriptionStartDate")
    subscription_status: str | None = field()
    subscriptions: tuple[Subscription, ...] = items()
    messages: Messages = messages_field()


@attrs.frozen(kw_only=True)
class IndicatorStatistics:
    """The account's counts restricted to one indicator's documents (I001: duty of care)."""

    indicator_code: str | None = field()
    number_of_thirdparties: int | None = field()
    number_of_subscribed_thirdparties: int | None = field()
    number_of_complete_thirdparties: int | None = field()
    number_of_dossiers: int | None = field()
    number_of_complete_dossiers: int | None = field()


@attrs.frozen(kw_only=True)
class AccountStatistics:
    """Statistics over monitored third parties and their dossiers."""

    number_of_thirdparties: int | None = field("totalThirdparties")
    number_of_subscribed_thirdparties: int | None = field("monitoredThirdparties")
    number_of_complete_thirdparties: int | None = field()
    number_of_dossiers: int | None = field("totalDossiers")
    number_of_complete_dossiers: int | None = field("completedDossiers")
    indicators: tuple[IndicatorStatistics, ...] = items(key="listIndicatorsStatistics")
    account_id: int | None = field()  # v1.3
    messages: Messages = messages_field()
