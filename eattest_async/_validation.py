"""Local checks of user input, run before any request leaves.

Each ``check_*`` function returns the normalised value or raises
:class:`~eattest_async.InvalidInputError` naming the field, so that a typo never costs a
round trip (nor counts against the server's rate limit).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable

from ._exceptions import InvalidInputError

__all__ = [
    "MAX_CONCURRENCY",
    "MAX_FILTER_TEXT",
    "MAX_ID",
    "MAX_PAGE_SIZE",
    "check_bool",
    "check_callable",
    "check_codes",
    "check_concurrency",
    "check_date",
    "check_duns",
    "check_email",
    "check_id",
    "check_optional_text",
    "check_page",
    "check_page_size",
    "check_process_id",
    "check_seconds",
    "check_siren",
    "check_siret",
    "check_vat",
    "fr_vat_key",
    "luhn_check_digit",
    "luhn_valid",
]

_MIN_SECONDS = 0.001
# No maximum is documented; the service answers E011 above this, and so does the simulator.
MAX_PAGE_SIZE = 2000
# Every id, page and size of the spec is an int64: beyond it the server could only fail, and
# Python would first fail to write the number (4300 digits at most, ValueError).
MAX_ID = 2**63 - 1
# The spec bounds no text filter; each goes into the request line, which servers and proxies
# refuse beyond about 8 KB (414). A thousand characters is far more than any name or code.
MAX_FILTER_TEXT = 1000

_DIGITS = re.compile(r"[0-9]+")
# EU VAT: two-letter country prefix (EL for Greece, XI for Northern Ireland) and 2 to 13
# alphanumerics; the per-country formats are the member states' own and change over time.
_EU_VAT = re.compile(
    r"(AT|BE|BG|CY|CZ|DE|DK|EE|EL|ES|FI|FR|HR|HU|IE|IT|LT|LU|LV|MT|NL|PL|PT|RO|SE|SI|SK|XI)[0-9A-Z+*]{2,13}"
)
_FR_VAT = re.compile(r"FR[0-9A-HJ-NP-Z]{2}[0-9]{9}")
# Deliberately simple: one @, no spaces, a dot in the domain. The server owns the rest (E030).
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


def luhn_valid(digits: str) -> bool:
    """True when ``digits`` (ASCII digits only) passes the Luhn checksum."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def luhn_check_digit(body: str) -> str:
    """The digit to append to ``body`` so that the whole passes Luhn."""
    total = 0
    for index, char in enumerate(reversed(body)):
        value = ord(char) - 48
        if index % 2 == 0:  # doubled once the check digit is appended on the right
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str(-total % 10)


def fr_vat_key(siren: str) -> str:
    """The two-digit key of a French VAT number for a SIREN: (12 + 3 * (SIREN mod 97)) mod 97."""
    return f"{(12 + 3 * (int(siren) % 97)) % 97:02d}"


def _strip(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(field, f"expected a string, got {type(value).__name__}")
    return value.replace(" ", "").strip()


def check_siren(value: object, field: str = "siren") -> str:
    """A SIREN: 9 digits passing Luhn (spaces are tolerated and removed)."""
    siren = _strip(value, field)
    if len(siren) != 9 or not _DIGITS.fullmatch(siren):
        raise InvalidInputError(field, "a SIREN has exactly 9 digits")
    if not luhn_valid(siren):
        raise InvalidInputError(field, "fails the Luhn checksum")
    return siren


def check_siret(value: object, field: str = "siret") -> str:
    """A SIRET: 14 digits passing Luhn, whose first nine form a valid SIREN.

    La Poste's establishments (SIREN 356000000) may use a digit sum divisible by 5 instead
    of Luhn; both forms are accepted, as the register issues both.
    """
    siret = _strip(value, field)
    if len(siret) != 14 or not _DIGITS.fullmatch(siret):
        raise InvalidInputError(field, "a SIRET has exactly 14 digits")
    if siret.startswith("356000000") and sum(int(c) for c in siret) % 5 == 0:
        return siret
    if not luhn_valid(siret):
        raise InvalidInputError(field, "fails the Luhn checksum")
    if not luhn_valid(siret[:9]):
        raise InvalidInputError(field, "its first nine digits are not a valid SIREN")
    return siret


def check_vat(value: object, field: str = "tva") -> str:
    """An EU VAT number; French ones must carry the key matching their SIREN."""
    vat = _strip(value, field).upper()
    if not _EU_VAT.fullmatch(vat):
        raise InvalidInputError(
            field, "not an EU VAT number (country prefix then 2 to 13 characters)"
        )
    if vat.startswith("FR"):
        if not _FR_VAT.fullmatch(vat):
            raise InvalidInputError(
                field, "a French VAT number is FR, a 2-character key and a SIREN"
            )
        siren = vat[4:]
        if not luhn_valid(siren):
            raise InvalidInputError(field, "its SIREN fails the Luhn checksum")
        if vat[2:4].isdigit() and vat[2:4] != fr_vat_key(siren):
            raise InvalidInputError(field, "its key does not match its SIREN")
    return vat


def check_duns(value: object, field: str = "duns") -> str:
    """A D-U-N-S number: 9 digits (dashes tolerated)."""
    duns = _strip(value, field).replace("-", "")
    if len(duns) != 9 or not _DIGITS.fullmatch(duns):
        raise InvalidInputError(field, "a D-U-N-S number has exactly 9 digits")
    return duns


def check_email(value: object, field: str = "email") -> str:
    """An e-mail address of plausible shape."""
    if not isinstance(value, str):
        raise InvalidInputError(field, f"expected a string, got {type(value).__name__}")
    email = value.strip()
    if len(email) > 254 or not _EMAIL.fullmatch(email):
        raise InvalidInputError(field, "not an e-mail address")
    return email


def check_date(value: object, field: str = "date") -> dt.date:
    """A calendar date, given as :class:`datetime.date` or an ISO ``YYYY-MM-DD`` string."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise InvalidInputError(field, "expected a date or an ISO string YYYY-MM-DD")


def _int64(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ID


def check_id(value: object, field: str) -> int:
    """A numeric id of the API (dossier, document, file, third party, size): an int64 >= 0."""
    if not _int64(value):
        raise InvalidInputError(field, "expected a non-negative integer id (int64)")
    assert isinstance(value, int)
    return value


_MAX_PROCESS_ID = 200  # characters: ids are short; a URL line is not the place for more


def check_process_id(value: object, field: str = "process_id") -> str:
    """A process id as ``dossiers.create()`` returned it: the path declares an int64 but
    the answer a string, so any short printable text is kept as it is (outer spaces
    aside), but for what could only name another path: "/", ".", "..", "%" escapes."""
    if _int64(value):
        return str(value)
    text = value.strip() if isinstance(value, str) else ""
    if (
        not text
        or len(text) > _MAX_PROCESS_ID
        or text in (".", "..")
        or any(c in text for c in "/\\%")
        or not text.isprintable()
    ):
        raise InvalidInputError(field, "expected the processId returned by dossiers.create()")
    return text


def check_page(value: object, field: str = "page") -> int:
    """A 0-based page number."""
    if not _int64(value):
        raise InvalidInputError(field, "expected an integer >= 0 (pages are 0-based)")
    assert isinstance(value, int)
    return value


def check_bool(value: object, field: str) -> bool:
    """A flag: True or False only. A truthy "false" or None must not turn an option on."""
    if not isinstance(value, bool):
        raise InvalidInputError(field, f"expected True or False, got {type(value).__name__}")
    return value


def check_callable(value: object, field: str) -> object:
    """A callback, checked when given rather than when first called (mid-scan)."""
    if not callable(value):
        raise InvalidInputError(field, f"expected a callable, got {type(value).__name__}")
    return value


def check_optional_text(value: object, field: str, max_length: int | None = None) -> str | None:
    """Free text sent as given (a description, a code): a string or None, never a number,
    bytes or a list that the JSON body or the query would carry as something else."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInputError(field, f"expected a string, got {type(value).__name__}")
    if max_length is not None and len(value) > max_length:
        raise InvalidInputError(field, f"at most {max_length} characters")
    return value


def check_codes(value: object, field: str, *, required: bool = False) -> list[str]:
    """Document codes: a list (or tuple...) of non-empty strings; not one bare string."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidInputError(field, "expected a list of document codes")
    codes = list(value)
    if required and not codes:
        raise InvalidInputError(field, "expected a non-empty list of document codes")
    for code in codes:
        if not isinstance(code, str) or not code.strip():
            raise InvalidInputError(field, "document codes are non-empty strings")
    return codes


MAX_CONCURRENCY = 256


def check_concurrency(value: object, field: str = "concurrency") -> int:
    """Requests a scan keeps in flight: the one check of ``Limits`` and ``scan()``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY:
        raise InvalidInputError(field, f"expected an integer from 1 to {MAX_CONCURRENCY}")
    return value


def check_page_size(value: object, field: str = "page_size") -> int:
    """A page size between 1 and :data:`MAX_PAGE_SIZE`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PAGE_SIZE:
        raise InvalidInputError(field, f"expected an integer from 1 to {MAX_PAGE_SIZE}")
    return value


def _shown(value: object) -> str:
    """The value for a message, bounded: repr() of a 5000-digit int itself raises."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return "a huge integer"
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "\u2026"


def check_seconds(value: object, field: str = "timeout") -> float:
    """A duration in seconds: a finite number, at least a millisecond (below that no
    request can complete: it would only be sent and retried in vain); not a bool nor a
    string."""
    try:  # an int beyond a float's range (10**400) is no duration either
        seconds = float(value) if isinstance(value, (int, float)) else math.nan
    except OverflowError:
        seconds = math.inf
    if isinstance(value, bool) or not math.isfinite(seconds) or seconds < _MIN_SECONDS:
        raise InvalidInputError(
            field, f"expected a finite number of seconds >= {_MIN_SECONDS:g}, got {_shown(value)}"
        )
    return seconds
