"""Third parties: the list items and the details."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from ._base import field, items
from .common import Messages, messages_field

__all__ = ["Principal", "Thirdparty", "ThirdpartyDetails", "ThirdpartyUser"]


@attrs.frozen(kw_only=True)
class Principal:
    """A manager of the company (``principals`` of the captured list items)."""

    name: str | None = field()
    firstname: str | None = field()
    function: str | None = field()


@attrs.frozen(kw_only=True)
class Thirdparty:
    """A third party as listed: the v1.1 identification, the v1.3 representation
    (identity, activity, finances, address) and what real answers were seen adding."""

    thirdparty_id: int | None = field()
    company_id_type: str | None = field()
    company_id_value: str | None = field()
    thirdparty_code: str | None = field()
    name: str | None = field()
    siren: str | None = field()
    siret: str | None = field()
    tva: str | None = field()
    monitored: bool | None = field()
    global_state: bool | None = field("thirdpartyGlobalState")
    creation_date: dt.date | None = field("datecreation", key="dateCreation")
    company_start_date: dt.date | None = field()
    legal_category_code: str | None = field()
    legal_category_label: str | None = field()
    acronym: str | None = field()
    activity_code: str | None = field()
    activity_label: str | None = field()
    etab_activity_code: str | None = field()
    etab_activity_type: str | None = field()
    etab_activity_label: str | None = field()
    ceo: str | None = field()
    principals: tuple[Principal, ...] = items()
    capital: int | None = field()
    capital_currency: str | None = field()
    turnover: float | None = field()
    turnover_currency: str | None = field()
    last_balance_sheet_date: dt.date | None = field()
    workforce: int | None = field()
    address_street: str | None = field()
    address_city: str | None = field()
    address_post_code: str | None = field()
    address_country_code: str | None = field()
    etab_phone_number: str | None = field()
    website: str | None = field()
    category: str | None = field()
    sub_category: str | None = field()
    headquarter: bool | None = field()
    group_company_name: str | None = field()
    group_siren: str | None = field()
    group_percentage_ownership: float | None = field()
    registration_numbers: tuple[Any, ...] = items(key="listRegistrationNumber")


@attrs.frozen(kw_only=True)
class ThirdpartyUser:
    """A person registered for the third party on the platform."""

    firstname: str | None = field("firstName")
    lastname: str | None = field("lastName")
    email: str | None = field()
    phone: str | None = field()


@attrs.frozen(kw_only=True)
class ThirdpartyDetails:
    """Identity, address, activity, finances, states and users of a third party."""

    thirdparty_id: int | None = field()
    account_id: int | None = field()
    company_id_type: str | None = field()
    company_id_value: str | None = field()
    thirdparty_code: str | None = field()
    monitored: bool | None = field("isMonitored")
    name: str | None = field()
    acronym: str | None = field()
    siren: str | None = field()
    siret: str | None = field()
    tva: str | None = field()
    address_street: str | None = field()
    address_city: str | None = field()
    address_post_code: str | None = field()
    address_country_code: str | None = field()
    subscription_state: bool | None = field("isRegistered")
    subscription_date: dt.date | None = field()
    subscription_key: str | None = field()
    out_of_business: bool | None = field("isOutOfBusiness")
    active: bool | None = field("isActive")  # v1.3: in business (not out of business)
    state_last_change_date: dt.date | None = field()
    # The v1.1 spec spells the key with a stray quote; v1.3 says isComplete too.
    global_state: bool | None = field(
        'thirdpartyGlobalState"', "isComplete", key="thirdpartyGlobalState"
    )
    activity_code: str | None = field()
    activity_label: str | None = field()
    capital: int | None = field()
    capital_currency: str | None = field()
    ceo: str | None = field()
    creation_date: dt.date | None = field("dateCreation", key="datecreation")
    last_balance_sheet_date: dt.date | None = field()
    legal_category_code: str | None = field()
    legal_category_label: str | None = field()
    turnover: float | None = field()
    turnover_currency: str | None = field()
    workforce: int | None = field()
    users: tuple[ThirdpartyUser, ...] = items(key="thirdpartyUsers")
    messages: Messages = messages_field()
