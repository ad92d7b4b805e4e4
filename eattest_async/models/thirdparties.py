"""Third parties: the list items and the details."""

from __future__ import annotations

import datetime as dt

import attrs

from ._base import field, items

__all__ = ["Thirdparty", "ThirdpartyDetails", "ThirdpartyUser"]


@attrs.frozen(kw_only=True)
class Thirdparty:
    """A third party as listed (identification, plus what real answers add)."""

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
    address_country_code: str | None = field()


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
    monitored: bool | None = field()
    name: str | None = field()
    acronym: str | None = field()
    siren: str | None = field()
    siret: str | None = field()
    tva: str | None = field()
    address_street: str | None = field()
    address_city: str | None = field()
    address_post_code: str | None = field()
    address_country_code: str | None = field()
    subscription_state: bool | None = field()
    subscription_date: dt.date | None = field()
    subscription_key: str | None = field()
    out_of_business: bool | None = field()
    state_last_change_date: dt.date | None = field()
    global_state: bool | None = field('thirdpartyGlobalState"', key="thirdpartyGlobalState")
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
