"""Structuring answers into models: both seeds, both document shapes, every doc example."""

from __future__ import annotations

import datetime as dt
import json
import pickle
from pathlib import Path
from typing import Any

import attrs
import pytest

from eattest_async import (
    Account,
    AccountStatistics,
    Document,
    Dossier,
    FileInfo,
    Messages,
    ProcessStatus,
    Requirement,
    Thirdparty,
    ThirdpartyDetails,
    UnexpectedResponseError,
)
from eattest_async._converter import _camel, structure, structure_many
from eattest_async._protocol import parse_date, parse_datetime

DATA = Path(__file__).parent / "data"


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def wire_keys(cls: type[Any]) -> dict[str, str]:
    """wire key (or alias) -> attribute name."""
    keys = {}
    for attribute in attrs.fields(cls):
        keys[attribute.metadata.get("key") or _camel(attribute.name)] = attribute.name
        for alias in attribute.metadata.get("aliases", ()):
            keys[alias] = attribute.name
    return keys


def assert_nothing_lost(source: dict[str, Any], model: Any) -> None:
    """Every key of the JSON lands in an attribute, and its value survives (dates parsed)."""
    keys = wire_keys(type(model))
    for key, value in source.items():
        assert key in keys, f"{type(model).__name__} drops {key!r}"
        kept = getattr(model, keys[key])
        if isinstance(value, list) and value and isinstance(value[0], dict):
            assert len(kept) == len(value)
            for item_source, item_model in zip(value, kept, strict=True):
                assert_nothing_lost(item_source, item_model)
        elif isinstance(value, str) and isinstance(kept, (dt.date, dt.datetime)):
            assert kept == (
                parse_datetime(value) if isinstance(kept, dt.datetime) else parse_date(value)
            )
        elif key == "isPresent":
            assert kept is (value == "true")
        elif isinstance(value, list):
            assert list(kept) == value
        else:
            assert kept == value, key


@pytest.mark.parametrize(
    "source",
    [load("seed001_dossiers.json"), load("seed000_dossiers.json")],
    ids=["seed001-v1.1-shape", "seed000-v1.3-shape"],
)
def test_seed_dossiers_structure_without_loss(source: dict[str, Any]) -> None:
    raw = source["content"][0]
    dossier = structure(raw, Dossier)
    assert_nothing_lost(raw, dossier)
    assert dossier.dossier_id == 804127
    assert dossier.indicator("I001") is not None
    assert dossier.documents[0].document_id is not None


def test_both_document_shapes_give_the_same_model() -> None:
    v11 = {
        "documentId": 1,
        "documentCode": "KBIS",
        "name": "Extrait Kbis",
        "present": True,
        "listFileInformation": [
            {"fileId": 9, "fileUUID": "u", "fileSize": 12, "uploadDate": "2024-01-20"}
        ],
    }
    v13 = {
        "documentId": 1,
        "documentCode": "KBIS",
        "documentName": "Extrait Kbis",
        "isPresent": "true",
        "evidences": [{"id": 9, "fileUUID": "u", "fileSize": 12, "uploadDate": "2024-01-20"}],
    }
    assert structure(v11, Document) == structure(v13, Document)
    assert structure(v11, Document).files[0] == FileInfo(
        file_id=9, file_uuid="u", file_size=12, upload_date=dt.datetime(2024, 1, 20)
    )


def test_indicator_variants_and_lenient_values() -> None:
    dossier = structure(
        {
            "dossierId": "42",
            "monitored": "false",
            "state": None,
            "creationDate": "2024-01-15",
            "stateLastChangeDate": "2024-01-15T09:06:15.245+0000",
            "expirationDate": "N/A",
            "indicators": [{"code": "I001", "label": "Obligation de vigilance", "state": True}],
            "documents": None,
            "unknownField": {"x": 1},
        },
        Dossier,
    )
    assert dossier.dossier_id == 42
    assert dossier.monitored is False
    assert dossier.state is None
    assert dossier.creation_date == dt.date(2024, 1, 15)
    assert dossier.state_last_change_date == dt.datetime(
        2024, 1, 15, 9, 6, 15, 245000, tzinfo=dt.timezone.utc
    )
    assert dossier.expiration_date is None  # unreadable: None, the rest survives
    assert dossier.indicators[0].code == "I001"
    assert dossier.documents == ()


@pytest.mark.parametrize(
    "text",
    [
        "2019-03-19T00:22:22.31",
        "2019-03-19T00:22:22.310",
        "2019-03-19T00:22:22.310000",
        "2019-03-19T00:22:22.310+0000",
        "2019-03-19 00:22:22,31",
    ],
)
def test_every_fractional_form_reads_the_same_instant(text: str) -> None:
    parsed = parse_datetime(text)
    assert parsed.replace(tzinfo=None) == dt.datetime(2019, 3, 19, 0, 22, 22, 310000)


def test_every_documented_example_structures() -> None:
    def example(name: str) -> Any:
        return load(f"examples/{name}")

    assert structure_many(example("c-1-account-00.json")["content"], Account)[0].id == 119631
    assert structure(example("api-doc-18.json")["content"]["content"][0], Account).id == 119631
    stats = structure(example("api-doc-19.json")["content"], AccountStatistics)
    assert stats.indicators[0].number_of_dossiers == 70
    tps = structure_many(example("c-2-thirdparties-01.json")["content"], Thirdparty)
    assert tps[0].siret == "50382936800045"
    details = structure(example("api-doc-21.json")["content"], ThirdpartyDetails)
    assert details.global_state is True  # the spec's own typo 'thirdpartyGlobalState"' included
    assert details.users[0].firstname == "some text"
    requirements = structure_many(example("c-4-requirements-00.json")["content"], Requirement)
    assert [r.code for r in requirements] == ["NIT0RSS", "LST_SAL_ETR"]
    files = structure_many(example("c-6-files-00.json")["content"], FileInfo)
    assert files[0].file_id == 4575539
    assert (
        structure(example("api-doc-14.json")["content"], ProcessStatus).errors[0].code
        == "some text"
    )
    dossiers = structure_many(example("api-doc-42.json")["content"], Dossier)
    assert dossiers[0].stopping_reason == "ACTION_VOLONTAIRE"
    assert structure(example("api-doc-39.json"), Messages).warning[0].code == "some text"


def test_plain_string_messages_and_bad_records() -> None:
    messages = structure({"info": ["Dossier creation in progress"], "error": None}, Messages)
    assert messages.info[0].message == "Dossier creation in progress"
    assert messages.error == ()
    with pytest.raises(UnexpectedResponseError, match="Dossier"):
        structure_many(["not an object"], Dossier)


# -- the fast paths of the converter give exactly what __init__ and the lenient readers give --


def test_structured_models_are_the_frozen_models_themselves() -> None:
    source = load("seed001_dossiers.json")["content"][0]  # no metadata dict: hashable
    source["documents"][0]["listFileInformation"] = [{"fileId": 7, "uploadDate": "2024-01-20"}]
    dossier = structure_many([source], Dossier)[0]
    document = dossier.documents[0]
    assert type(dossier) is Dossier
    assert type(document) is Document
    assert type(document.files[0]) is FileInfo
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        dossier.dossier_id = 1  # type: ignore[misc]
    rebuilt = Dossier(**{a.name: getattr(dossier, a.name) for a in attrs.fields(Dossier)})
    assert rebuilt == dossier
    assert hash(rebuilt) == hash(dossier)
    assert repr(rebuilt) == repr(dossier)
    assert pickle.loads(pickle.dumps(dossier)) == dossier
    assert attrs.evolve(dossier, siren="1").siren == "1"


BUILT: list[str] = []


def _doubled(value: int | None) -> int | None:
    return None if value is None else value * 2


@attrs.frozen(kw_only=True)
class Checked:
    count: int | None = attrs.field(default=None, converter=_doubled)
    name: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.max_len(3))
    )

    def __attrs_post_init__(self) -> None:
        BUILT.append(f"{self.name}")


def test_a_model_whose_init_does_more_is_built_through_it() -> None:
    checked = structure({"count": 2, "name": "abc"}, Checked)
    assert checked.count == 4
    assert BUILT == ["abc"]
    with pytest.raises(UnexpectedResponseError, match="Checked"):
        structure({"name": "too long"}, Checked)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-15T10:20:30.12", dt.datetime(2024, 1, 15, 10, 20, 30, 120000)),
        ("2024-01-15T10:20:30.123456", dt.datetime(2024, 1, 15, 10, 20, 30, 123456)),
        ("2024-01-15", dt.datetime(2024, 1, 15)),
        (" 2024-01-15T10:20:30 ", dt.datetime(2024, 1, 15, 10, 20, 30)),
        (
            "2024-01-15T10:20:30+0100",
            dt.datetime(2024, 1, 15, 10, 20, 30, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        ),
        (1705314030, dt.datetime(2024, 1, 15, 10, 20, 30, tzinfo=dt.timezone.utc)),
        (1705314030000, dt.datetime(2024, 1, 15, 10, 20, 30, tzinfo=dt.timezone.utc)),
        ("N/A", None),
        ("", None),
        (True, None),
        ([], None),
    ],
)
def test_datetime_and_date_fields_read_every_form(value: Any, expected: Any) -> None:
    dossier = structure({"stateLastChangeDate": value, "startingDate": value}, Dossier)
    assert dossier.state_last_change_date == expected
    assert dossier.starting_date == (None if expected is None else expected.date())


def test_text_maps_are_copied_and_other_values_become_text() -> None:
    metadata = {"verified": "true", "pages": 3}
    files = structure(
        {"listFileInformation": [{"fileId": 1, "metadata": metadata}, {"metadata": {"a": "b"}}]},
        Document,
    ).files
    assert files[0].metadata == {"verified": "true", "pages": "3"}
    source = {"a": "b"}
    kept = structure({"metadata": source}, FileInfo).metadata
    source["a"] = "changed"
    assert kept == {"a": "b"}
    assert files[1].metadata == {"a": "b"}
