"""The filters of each list operation, declared once.

One table per operation: the keyword of ``list()``/``scan()``/``changes()`` (typed by the
``TypedDict`` beside it, so ``scan(sirne=...)`` is a mypy error), the query parameter
the API takes, the local check, and the option of the command line. The simulator
accepts exactly the parameters of these tables.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import TypedDict, TypeVar

import attrs

from ._exceptions import InvalidInputError
from ._protocol import format_query_value
from ._validation import (
    MAX_FILTER_TEXT,
    check_bool,
    check_date,
    check_id,
    check_siren,
    check_siret,
    check_vat,
)

__all__ = [
    "DOSSIER_FILTERS",
    "THIRDPARTY_FILTERS",
    "DossierFilters",
    "Filter",
    "ThirdpartyFilters",
    "company_id_type_or_none",
    "identifier",
    "optional",
    "query_of",
    "text_filter",
]

T = TypeVar("T")

COMPANY_ID_TYPES = ("CIT001", "CIT002", "CIT003")


def optional(check: Callable[[object, str], T], value: object, field: str) -> T | None:
    """``check(value)`` unless the caller left the filter out."""
    return None if value is None else check(value, field)


def company_id_type_or_none(value: str | None) -> str | None:
    if value is None:
        return None
    if value not in COMPANY_ID_TYPES:
        raise InvalidInputError(
            "company_id_type", "expected CIT001 (SIRET), CIT002 (VAT) or CIT003 (DUNS)"
        )
    return value


# A numeric id of the API (dossier, document, file, third party): see check_id.
identifier = check_id


def text_filter(value: object, field: str) -> str:
    """A text filter or search expression: non-empty, and short enough for a request line."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(field, "expected a non-empty string")
    if len(value.strip()) > MAX_FILTER_TEXT:
        raise InvalidInputError(field, f"at most {MAX_FILTER_TEXT} characters")
    return value.strip()


_text = text_filter
_flag = check_bool


def _id_type(value: object, field: str) -> str:
    if value not in COMPANY_ID_TYPES:
        raise InvalidInputError(field, "expected CIT001 (SIRET), CIT002 (VAT) or CIT003 (DUNS)")
    return str(value)


def _date(value: object, field: str) -> dt.date:
    return check_date(value, field)


_OPERATORS = ("like", "starts", "ends")


def _operator(value: object, field: str) -> str:
    if value not in _OPERATORS:
        raise InvalidInputError(field, "expected 'like', 'starts' or 'ends'")
    return str(value)


@attrs.frozen(kw_only=True)
class Filter:
    """One filter: keyword, API parameter, local check, command-line option."""

    name: str
    param: str
    check: Callable[[object, str], object]
    help: str
    option: str | None = None  # the CLI's flag ("--siren", "--monitored/--all")
    needs: tuple[str, ...] = ()  # it only works beside one of these parameters
    cli_type: type | None = None  # what the CLI converts the option's text to
    choices: tuple[str, ...] | None = None


def _table(*filters: Filter) -> Mapping[str, Filter]:
    return {f.name: f for f in filters}


class DossierFilters(TypedDict, total=False):
    """The filters of ``client.dossiers.list()``/``scan()`` (each optional; None: left out)."""

    thirdparty_id: int | None
    company_id_type: str | None
    company_id_value: str | None
    thirdparty_code: str | None
    dossier_reference: str | None
    monitored: bool | None
    state_last_change_date: dt.date | str | None
    siren: str | None
    siret: str | None
    tva: str | None
    op: str | None  # EDGE v1.3: "like", "starts" or "ends"


class ThirdpartyFilters(TypedDict, total=False):
    """The filters of ``client.thirdparties.list()``/``scan()`` (each optional; None: left out)."""

    monitored: bool | None
    company_id_type: str | None
    company_id_value: str | None
    name: str | None
    siren: str | None
    siret: str | None
    tva: str | None
    state_last_change_date: dt.date | str | None
    global_state: bool | None
    subscription_state: bool | None
    q: str | None  # EDGE v1.3: a search expression, the language of search()


_MONITORED = Filter(
    name="monitored",
    param="monitored",
    check=_flag,
    help="monitored (true) or stopped (false) only",
    option="--monitored/--all",
)
_ID_TYPE = Filter(
    name="company_id_type",
    param="companyIdType",
    check=_id_type,
    help="CIT001 (SIRET), CIT002 (VAT) or CIT003 (DUNS)",
    option="--company-id-type",
    choices=COMPANY_ID_TYPES,
)
_ID_VALUE = Filter(
    name="company_id_value",
    param="companyIdValue",
    check=_text,
    help="the identifier, of the type above",
    option="--company-id-value",
)
_SIREN = Filter(name="siren", param="siren", check=check_siren, help="SIREN", option="--siren")
_SIRET = Filter(name="siret", param="siret", check=check_siret, help="SIRET", option="--siret")
_TVA = Filter(name="tva", param="tva", check=check_vat, help="EU VAT number", option="--tva")
_SINCE = Filter(
    name="state_last_change_date",
    param="stateLastChangeDate",
    check=_date,
    help="changed since this date (YYYY-MM-DD)",
    option="--since",
)

DOSSIER_FILTERS = _table(
    Filter(
        name="thirdparty_id",
        param="thirdpartyId",
        check=identifier,
        help="the third party's id",
        option="--thirdparty-id",
        cli_type=int,
    ),
    _ID_TYPE,
    _ID_VALUE,
    Filter(
        name="thirdparty_code",
        param="thirdpartyCode",
        check=_text,
        help="the third party's code in your system",
        option="--thirdparty-code",
    ),
    Filter(
        name="dossier_reference",
        param="dossierReference",
        check=_text,
        help="the dossier's reference in your system",
        option="--reference",
    ),
    _MONITORED,
    _SINCE,
    _SIREN,
    _SIRET,
    _TVA,
    Filter(
        name="op",
        param="op",
        check=_operator,
        help="EDGE v1.3: thirdparty_code/dossier_reference contain (like), start or end with",
        needs=("thirdpartyCode", "dossierReference"),
    ),
)

THIRDPARTY_FILTERS = _table(
    _MONITORED,
    _ID_TYPE,
    _ID_VALUE,
    Filter(name="name", param="name", check=_text, help="company name", option="--name"),
    _SIREN,
    _SIRET,
    _TVA,
    _SINCE,
    Filter(name="global_state", param="thirdpartyGlobalState", check=_flag, help="global state"),
    Filter(
        name="subscription_state",
        param="subscriptionState",
        check=_flag,
        help="subscription state",
    ),
    Filter(name="q", param="q", check=_text, help="EDGE v1.3: a search expression"),
)


def query_of(
    table: Mapping[str, Filter], filters: Mapping[str, object]
) -> tuple[tuple[str, str], ...]:
    """The filters in the API's spelling, each checked locally; None means left out."""
    unknown = sorted(set(filters) - set(table))
    if unknown:
        raise InvalidInputError(
            unknown[0], f"not a filter of this operation (filters: {', '.join(sorted(table))})"
        )
    out: list[tuple[str, str]] = []
    for name, spec in table.items():
        value = filters.get(name)
        if value is not None:
            out.append((spec.param, format_query_value(spec.check(value, name))))
    sent = {param for param, _ in out}
    for name, spec in table.items():
        if spec.needs and spec.param in sent and sent.isdisjoint(spec.needs):
            raise InvalidInputError(
                name, f"works beside {' or '.join(spec.needs)} only (EDGE v1.3)"
            )
    return tuple(out)
