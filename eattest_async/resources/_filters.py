"""Local checks shared by the resources' filters."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from .._exceptions import InvalidInputError

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


def identifier(value: object, field: str) -> int:
    """A numeric id of the API (dossier, document, file, third party)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError(field, "expected a non-negative integer id")
    return value
