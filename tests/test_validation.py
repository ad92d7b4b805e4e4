"""Local validation of identifiers, dates, e-mails and page sizes."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eattest_async import InvalidInputError
from eattest_async._validation import (
    check_date,
    check_duns,
    check_email,
    check_page,
    check_page_size,
    check_siren,
    check_siret,
    check_vat,
    fr_vat_key,
    luhn_check_digit,
    luhn_valid,
)

# Published identifiers (the docs' own, La Poste's head office), and a La Poste establishment
# built under its digit-sum rule (sum divisible by 5, not Luhn).
KNOWN_SIRETS = [
    "50382936800045",
    "38071669600063",
    "73282932000074",
    "35600000000048",
    "35600000012341",
]


@pytest.mark.parametrize("siret", KNOWN_SIRETS)
def test_published_sirets_are_accepted(siret: str) -> None:
    assert check_siret(siret) == siret


def test_published_vat_numbers_match_their_siren() -> None:
    assert check_vat("FR69503829368") == "FR69503829368"
    assert check_vat("fr 29 380716696") == "FR29380716696"
    assert fr_vat_key("503829368") == "69"


@pytest.mark.parametrize(
    ("value", "field_error"),
    [
        ("5038293680004", "14 digits"),
        ("50382936800046", "Luhn"),
        ("5038293680004A", "14 digits"),
        (50382936800045, "string"),
    ],
)
def test_bad_siret_names_the_field_and_reason(value: object, field_error: str) -> None:
    with pytest.raises(InvalidInputError, match=field_error) as info:
        check_siret(value, "companyIdValue")
    assert info.value.field == "companyIdValue"


@pytest.mark.parametrize(
    "vat", ["FR70503829368", "XX12345678", "FR6950382936", "DE", "FR69503829369"]
)
def test_bad_vat_numbers_are_refused(vat: str) -> None:
    with pytest.raises(InvalidInputError):
        check_vat(vat)


def test_foreign_vat_numbers_are_accepted_by_shape() -> None:
    assert check_vat("BE0123456789") == "BE0123456789"
    assert check_vat("DE123456789") == "DE123456789"


@given(st.text(alphabet="0123456789", min_size=8, max_size=8))
def test_generated_sirens_round_trip_and_any_single_digit_change_is_caught(body: str) -> None:
    siren = body + luhn_check_digit(body)
    assert check_siren(siren) == siren
    assert check_vat("FR" + fr_vat_key(siren) + siren)
    for position in range(9):
        for digit in "0123456789":
            if digit != siren[position]:
                mutated = siren[:position] + digit + siren[position + 1 :]
                assert not luhn_valid(mutated)


def test_duns_email_date_and_pages() -> None:
    assert check_duns("15-048-3782") == "150483782"
    with pytest.raises(InvalidInputError):
        check_duns("1234")
    assert check_email("a.b@example.com") == "a.b@example.com"
    for bad in ["no-at.example.com", "a@b", "a b@c.com", "a@@c.com"]:
        with pytest.raises(InvalidInputError, match="e-mail"):
            check_email(bad)
    assert check_date("2025-12-31") == dt.date(2025, 12, 31)
    assert check_date(dt.datetime(2025, 1, 2, 3, 4)) == dt.date(2025, 1, 2)
    for bad_date in ["31/12/2025", "2025-13-01", 20251231]:
        with pytest.raises(InvalidInputError, match="date"):
            check_date(bad_date)
    assert check_page(0) == 0
    for bad_page in [-1, True, 1.5]:
        with pytest.raises(InvalidInputError):
            check_page(bad_page)
    assert check_page_size(2000) == 2000
    for bad_size in [0, 2001, "10"]:
        with pytest.raises(InvalidInputError):
            check_page_size(bad_size)
