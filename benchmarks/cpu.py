"""CPU per item: decode + structure one page of realistic dossiers, against peers and the floor.

Pages are the simulator's own (about 2 KB per dossier, half in the v1.1 document shape,
half in v1.3). Every variant starts from the bytes of a page and ends with objects
in memory; rounds are interleaved and the median kept. Times are the thread's CPU time
(``time.thread_time``): on a shared machine, wall time mostly measures the wait for a core.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Callable
from typing import Any

import msgspec
import orjson
import pydantic
from pydantic.alias_generators import to_camel

from eattest_async import Document, Dossier, FileInfo, FormField, Indicator
from eattest_async._converter import structure_many
from eattest_async._protocol import decipher, list_content
from eattest_async.simulator._data import DOSSIER_ID_BASE, DataSet
from eattest_async.simulator._render import Renderer

HEADERS = {"Content-Type": "application/json"}


def page_bytes(count: int) -> bytes:
    data = DataSet(seed=11, dossiers=count, thirdparties=None, account_id=119631)
    render = Renderer("captured")  # what the simulator answers by default
    content = [
        render.dossier(data, DOSSIER_ID_BASE + i, "v1.1" if i % 2 else "v1.3") for i in range(count)
    ]
    return orjson.dumps(
        {
            "content": content,
            "messages": {"info": [], "warning": [], "error": []},
            "page": 0,
            "size": count,
            "totalElements": count,
        }
    )


# -- ours -------------------------------------------------------------------------------------


def ours(body: bytes) -> tuple[Dossier, ...]:
    envelope = decipher(200, HEADERS, body, method="GET", request_path="/d", now=0.0)
    return structure_many(list_content(envelope, method="GET", request_path="/d"), Dossier)


# -- the floor: hand-written attrs constructors (same models, same conversions) ---------------


def _dt(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _d(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value[:10]) if value else None


def _file(f: dict[str, Any]) -> FileInfo:
    return FileInfo(
        file_id=f.get("fileId", f.get("id")),
        upload_date=_dt(f.get("uploadDate")),
        file_uuid=f.get("fileUUID"),
        file_creation=_dt(f.get("fileCreation")),
        file_size=f.get("fileSize"),
        expiration_date=_dt(f.get("expirationDate")),
        metadata=f.get("metadata"),
        formdata=tuple(FormField(**x) for x in f.get("formdata") or ()),
    )


def _document(d: dict[str, Any]) -> Document:
    files = d.get("listFileInformation")
    return Document(
        document_id=d.get("documentId"),
        document_code=d.get("documentCode"),
        name=d.get("name", d.get("documentName")),
        name_en=d.get("documentNameEn"),
        request_date=_dt(d.get("requestDate")),
        expiration_date=_dt(d.get("expirationDate")),
        present=d.get("present"),
        files=tuple(_file(f) for f in (files if files is not None else d.get("evidences") or ())),
    )


def _dossier(x: dict[str, Any]) -> Dossier:
    return Dossier(
        dossier_id=x.get("dossierId"),
        account_id=x.get("accountId"),
        thirdparty_id=x.get("thirdpartyId"),
        company_id_type=x.get("companyIdType"),
        company_id_value=x.get("companyIdValue"),
        thirdparty_code=x.get("thirdpartyCode"),
        company_country_code=x.get("companyCountryCode"),
        siren=x.get("siren"),
        siret=x.get("siret"),
        tva=x.get("tva"),
        monitored=x.get("monitored"),
        dossier_reference=x.get("dossierReference"),
        description=x.get("description"),
        purchasing_category=x.get("purchasingCategory"),
        starting_date=_d(x.get("startingDate")),
        expiration_date=_d(x.get("expirationDate")),
        stopping_date=_d(x.get("stoppingDate")),
        stopping_reason=x.get("stoppingReason"),
        state=x.get("state"),
        state_last_change_date=_dt(x.get("stateLastChangeDate")),
        indicators=tuple(
            Indicator(
                code=i.get("indicatorCode", i.get("code")),
                state=i.get("state"),
                last_change_date=_dt(i.get("lastChangeDate")),
            )
            for i in x.get("indicators") or ()
        ),
        documents=tuple(_document(d) for d in x.get("documents") or ()),
    )


def raw_true(body: bytes) -> tuple[Any, ...]:
    """What ``scan(raw=True)`` does to a page: decipher the envelope, hand over the dicts."""
    envelope = decipher(200, HEADERS, body, method="GET", request_path="/d", now=0.0)
    return tuple(list_content(envelope, method="GET", request_path="/d"))


def floor(body: bytes) -> tuple[Dossier, ...]:
    return tuple(_dossier(x) for x in orjson.loads(body)["content"])


def dicts(body: bytes) -> list[dict[str, Any]]:
    return orjson.loads(body)["content"]  # type: ignore[no-any-return]


# -- pydantic v2 ------------------------------------------------------------------------------

_camel = pydantic.ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class PFile(pydantic.BaseModel):
    model_config = _camel
    file_id: int | None = pydantic.Field(
        None, validation_alias=pydantic.AliasChoices("fileId", "id")
    )
    upload_date: dt.datetime | None = None
    file_uuid: str | None = pydantic.Field(None, alias="fileUUID")
    file_creation: dt.datetime | None = None
    file_size: int | None = None
    expiration_date: dt.datetime | None = None
    metadata: dict[str, str] | None = None


class PDocument(pydantic.BaseModel):
    model_config = _camel
    document_id: int | None = None
    document_code: str | None = None
    name: str | None = pydantic.Field(
        None, validation_alias=pydantic.AliasChoices("name", "documentName")
    )
    request_date: dt.datetime | None = None
    present: bool | None = None
    files: tuple[PFile, ...] = pydantic.Field(
        (), validation_alias=pydantic.AliasChoices("listFileInformation", "evidences")
    )


class PIndicator(pydantic.BaseModel):
    model_config = _camel
    code: str | None = pydantic.Field(
        None, validation_alias=pydantic.AliasChoices("indicatorCode", "code")
    )
    state: bool | None = None
    last_change_date: dt.datetime | None = None


class PDossier(pydantic.BaseModel):
    model_config = _camel
    dossier_id: int | None = None
    account_id: int | None = None
    thirdparty_id: int | None = None
    company_id_type: str | None = None
    company_id_value: str | None = None
    thirdparty_code: str | None = None
    company_country_code: str | None = None
    siren: str | None = None
    siret: str | None = None
    tva: str | None = None
    monitored: bool | None = None
    dossier_reference: str | None = None
    description: str | None = None
    purchasing_category: str | None = None
    starting_date: dt.date | None = None
    expiration_date: dt.date | None = None
    stopping_date: dt.date | None = None
    stopping_reason: str | None = None
    state: bool | None = None
    state_last_change_date: dt.datetime | None = None
    indicators: tuple[PIndicator, ...] = ()
    documents: tuple[PDocument, ...] = ()


class PPage(pydantic.BaseModel):
    content: list[PDossier]


def with_pydantic(body: bytes) -> list[PDossier]:
    return PPage.model_validate_json(body).content


# -- msgspec ----------------------------------------------------------------------------------


class MFile(msgspec.Struct, rename="camel", frozen=True):
    file_id: int | None = None
    id: int | None = None
    upload_date: dt.datetime | None = None
    file_u_u_i_d: str | None = msgspec.field(default=None, name="fileUUID")
    file_creation: dt.datetime | None = None
    file_size: int | None = None
    expiration_date: dt.datetime | None = None
    metadata: dict[str, str] | None = None


class MDocument(msgspec.Struct, rename="camel", frozen=True):
    document_id: int | None = None
    document_code: str | None = None
    name: str | None = None
    document_name: str | None = None
    request_date: dt.datetime | None = None
    present: bool | None = None
    list_file_information: tuple[MFile, ...] = ()
    evidences: tuple[MFile, ...] = ()


class MIndicator(msgspec.Struct, rename="camel", frozen=True):
    indicator_code: str | None = None
    state: bool | None = None
    last_change_date: dt.datetime | None = None


class MDossier(msgspec.Struct, rename="camel", frozen=True):
    dossier_id: int | None = None
    account_id: int | None = None
    thirdparty_id: int | None = None
    company_id_type: str | None = None
    company_id_value: str | None = None
    thirdparty_code: str | None = None
    company_country_code: str | None = None
    siren: str | None = None
    siret: str | None = None
    tva: str | None = None
    monitored: bool | None = None
    dossier_reference: str | None = None
    description: str | None = None
    purchasing_category: str | None = None
    starting_date: dt.date | None = None
    expiration_date: dt.date | None = None
    stopping_date: dt.date | None = None
    stopping_reason: str | None = None
    state: bool | None = None
    state_last_change_date: dt.datetime | None = None
    indicators: tuple[MIndicator, ...] = ()
    documents: tuple[MDocument, ...] = ()


class MPage(msgspec.Struct):
    content: list[MDossier]


_msgspec_decoder = msgspec.json.Decoder(MPage)


def with_msgspec(body: bytes) -> list[MDossier]:
    return _msgspec_decoder.decode(body).content


VARIANTS: dict[str, Callable[[bytes], object]] = {
    "orjson.loads (dicts)": dicts,
    "hand-written attrs (floor)": floor,
    "eattest_async": ours,
    "eattest_async raw=True": raw_true,
    "pydantic v2": with_pydantic,
    "msgspec": with_msgspec,
}


def measure(rounds: int = 15) -> dict[str, dict[str, float]]:
    """Median microseconds per dossier, per variant and page size (``rounds`` pages of 1000,
    ten times as many pages of 100)."""
    results: dict[str, dict[str, float]] = {}
    for count in (100, 1000):
        body = page_bytes(count)
        assert len(ours(body)) == count
        assert floor(body) == ours(body)
        samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for _ in range(rounds * 1000 // count):
            for name, variant in VARIANTS.items():  # interleaved: noise hits every variant alike
                started = time.thread_time()
                variant(body)
                samples[name].append((time.thread_time() - started) / count * 1e6)
        results[f"page of {count}"] = {
            name: statistics.median(values) for name, values in samples.items()
        }
        results[f"page of {count}"]["bytes per dossier"] = len(body) / count
    return results


if __name__ == "__main__":
    for page, figures in measure().items():
        print(page)
        floor_us = figures["hand-written attrs (floor)"]
        for name, us in figures.items():
            if name != "bytes per dossier":
                print(f"  {name:28} {us:6.1f} us  {1e6 / us:9,.0f}/s  {floor_us / us:5.2f} x floor")
