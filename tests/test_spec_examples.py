"""Nothing the API says is lost: every field of the 44 JSON examples of the documentation
reaches an attribute of what the client returns, through the client's own deciphering.

A field is lost when its key lands in no attribute, or when its value (not null) comes out
as None. Each example is read as the answer (or request body) it documents.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest

from eattest_async import (
    Account,
    AccountStatistics,
    ApiError,
    Document,
    Dossier,
    DossierProcess,
    DossierUpdate,
    FileInfo,
    IndicatorStatistics,
    Messages,
    NewDossier,
    ProcessStatus,
    Requirement,
    Subscription,
    Thirdparty,
    ThirdpartyDetails,
    ThirdpartyUser,
    _protocol,
)
from eattest_async._converter import _camel, structure
from eattest_async.resources._base import messages_of, page_of, with_messages
from eattest_async.resources.dossiers import dossier_update_body, new_dossier_body

EXAMPLES = Path(__file__).parent / "data" / "examples"

# example -> (what it documents, the model). "page": a page of a list operation; "list": a
# list answer; "one": a single-object answer (bare objects included); "messages": an
# action's answer; "body": a request body the client builds; "error": an error answer.
READ_AS: dict[str, tuple[str, Any]] = {
    "api-doc-00": ("page", Dossier),
    "api-doc-01": ("body", NewDossier),
    "api-doc-02": ("create", DossierProcess),
    "api-doc-03": ("one", Dossier),
    "api-doc-04": ("body", DossierUpdate),
    "api-doc-05": ("messages", Messages),
    "api-doc-06": ("list", Document),
    "api-doc-07": ("one", Document),
    "api-doc-08": ("messages", Messages),
    "api-doc-10": ("messages", Messages),
    "api-doc-11": ("list", Requirement),
    "api-doc-13": ("messages", Messages),
    "api-doc-14": ("one", ProcessStatus),
    "api-doc-15": ("list", ProcessStatus),
    "api-doc-16": ("page", Dossier),
    "api-doc-17": ("list", Requirement),
    "api-doc-18": ("one", Account),
    "api-doc-19": ("one", AccountStatistics),
    "api-doc-20": ("page", Thirdparty),
    "api-doc-21": ("one", ThirdpartyDetails),
    "api-doc-22": ("one", Account),
    "api-doc-23": ("one", AccountStatistics),
    "api-doc-24": ("one", IndicatorStatistics),
    "api-doc-25": ("body", NewDossier),
    "api-doc-27": ("one", ProcessStatus),
    "api-doc-28": ("one", Thirdparty),
    "api-doc-29": ("one", ThirdpartyDetails),
    "api-doc-30": ("one", ThirdpartyUser),
    "api-doc-31": ("body", DossierUpdate),
    "api-doc-32": ("one", Dossier),
    "api-doc-33": ("one", Requirement),
    "api-doc-35": ("one", Document),
    "api-doc-36": ("one", FileInfo),
    "api-doc-39": ("one", Messages),
    "api-doc-40": ("one", Subscription),
    "api-doc-41": ("create", DossierProcess),
    "api-doc-42": ("page", Dossier),
    "c-0-response-format-01": ("error", ApiError),
    "c-1-account-00": ("one", Account),
    "c-2-thirdparties-00": ("page", Thirdparty),
    "c-2-thirdparties-01": ("page", Thirdparty),
    "c-4-requirements-00": ("list", Requirement),
    "c-6-files-00": ("list", FileInfo),
    "s-1-jwt-00": ("token", None),
}
# What the client keeps of the token endpoint's answer (Keycloak's, not the API's): the
# tokens and their lifetimes. The others describe the session and are not needed.
TOKEN_KEPT = {"access_token", "refresh_token", "expires_in", "refresh_expires_in"}
TOKEN_NOT_KEPT = {"token_type", "not-before-policy", "session_state", "scope"}


def wire_keys(cls: type[Any]) -> dict[str, attrs.Attribute[Any]]:
    """wire key (and aliases) -> attribute, for the attributes read from the wire."""
    keys = {}
    for attribute in attrs.fields(cls):
        if attribute.metadata.get("envelope"):
            continue
        keys[attribute.metadata.get("key") or _camel(attribute.name)] = attribute
        for alias in attribute.metadata.get("aliases", ()):
            keys[alias] = attribute
    return keys


def lost(source: Any, kept: Any, where: str) -> list[str]:
    """The fields of ``source`` (JSON) that ``kept`` (a model) does not hold."""
    if source is None or source == [] or source == {}:
        return []
    if attrs.has(type(kept)):
        if not isinstance(source, Mapping):
            return [f"{where}: {source!r} read into a {type(kept).__name__}"]
        keys = wire_keys(type(kept))
        found = []
        for key, value in source.items():
            if key not in keys:
                found.append(f"{where}.{key}: no attribute")
                continue
            attribute = keys[key]
            dated = str(attribute.type) in ("dt.datetime | None", "dt.date | None")
            if dated and isinstance(value, str) and not _readable_date(value):
                continue  # the docs' placeholder "string" for a v1.3 date-time: no date
            found += lost(value, getattr(kept, attribute.name), f"{where}.{key}")
        return found
    if isinstance(source, list):
        if not isinstance(kept, tuple) or len(kept) != len(source):
            return [f"{where}: {len(source)} items, kept {kept!r}"]
        return [
            m
            for i, (s, k) in enumerate(zip(source, kept, strict=True))
            for m in lost(s, k, f"{where}[{i}]")
        ]
    if kept is None:
        return [f"{where}: {source!r} read as None"]
    if isinstance(source, Mapping):
        return [f"{where}.{k}: dropped" for k in source if k not in kept]
    if isinstance(kept, (dt.date, str, bool, int, float)):
        return []
    return [f"{where}: {source!r} kept as {kept!r}"]


def _readable_date(text: str) -> bool:
    try:
        _protocol.parse_datetime(text)
    except ValueError:
        return False
    return True


def answer(kind: str, source: Any, model: Any) -> list[str]:
    """Lost fields when ``source`` is the body of a 200 answer read as ``kind``."""
    body = orjson.dumps(source)
    envelope = _protocol.decipher(
        200,
        {"Content-Type": "application/json"},
        body,
        method="GET",
        request_path="/x",
        now=0,
        expect_content=kind != "messages",  # an action's answer has messages only
    )
    request = _protocol.ApiRequest(method="GET", path="/x", operation="x")
    envelope_keys = {"content", "messages", "page", "size", "pageSize", "totalElements"}
    wrapped = isinstance(source, Mapping) and not envelope_keys.isdisjoint(source)
    found: list[str] = []
    if kind == "page":
        page = page_of(envelope, request, model, 0, None)
        found += lost(source["content"], page.items, "content")
        found += lost(source.get("messages"), page.messages, "messages")
        for key, attribute in (("page", "page"), ("totalElements", "total_elements")):
            if key in source and getattr(page, attribute) != source[key]:
                found.append(f"{key}: {source[key]} kept as {getattr(page, attribute)}")
        size = source.get("size", source.get("pageSize"))
        if size is not None and page.size != size:
            found.append(f"size: {size} kept as {page.size}")
        return found
    if kind == "list":
        listed = _protocol.list_content(envelope, method="GET", request_path="/x")
        items = tuple(structure(item, model) for item in listed)
        found += lost(source["content"] if wrapped else source, items, "content")
    elif kind in ("one", "create"):
        data = _protocol.single_content(envelope, method="GET", request_path="/x")
        if model is Messages:
            result: Any = structure(data, Messages)
        elif kind == "create":
            result = with_messages(structure(data, DossierProcess), envelope)
        else:
            result = with_messages(structure(data, model), envelope)
        content = source["content"] if wrapped else source
        if isinstance(content, Mapping) and isinstance(content.get("content"), list):
            content = content["content"]  # the doubly wrapped account example
        if isinstance(content, list):
            content = content[0]
        found += lost(content, result, "content")
        if wrapped and model is not Messages:
            found += lost(source.get("messages"), result.messages, "messages")
    elif kind == "messages":
        found += lost(source.get("messages"), messages_of(envelope), "messages")
    return found


def body_lost(source: Any, model: Any) -> list[str]:
    """Keys of a documented request body that the client's model cannot send."""
    fields = {_camel(a.name): a.name for a in attrs.fields(model)}
    missing = [f"{k}: no attribute" for k in source if k not in fields]
    if missing:
        return missing
    values = {fields[k]: (tuple(v) if isinstance(v, list) else v) for k, v in source.items()}
    values["expiration_date"] = None  # the example's 2018 date is refused as past, rightly
    build = new_dossier_body if model is NewDossier else dossier_update_body
    if model is NewDossier:
        values.update(
            company_id_type="CIT001", company_id_value="50382936800045", dossier_reference="R"
        )
        values["thirdparty_email"] = values["user_in_charge"] = ("a@example.com",)
    else:
        values["thirdparty_email"] = ("a@example.com",)
    sent = build(model(**values))
    return [f"{k}: not sent" for k in source if k not in sent and k != "expirationDate"]


def lost_in(name: str) -> list[str]:
    kind, model = READ_AS[name]
    source = json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))
    if kind == "body":
        return body_lost(source, model)
    if kind == "error":
        error = _protocol.error_from_response(
            404, {}, orjson.dumps(source), method="GET", request_path="/x", now=0
        )
        kept = {**error.details, "status": error.status}
        return [f"{k}: dropped" for k in source if str(kept.get(k)) != str(source[k])]
    if kind == "token":
        return [f"{k}: not kept" for k in source if k not in TOKEN_KEPT | TOKEN_NOT_KEPT]
    return answer(kind, source, model)


def test_every_example_is_read() -> None:
    assert sorted(READ_AS) == sorted(p.stem for p in EXAMPLES.glob("*.json"))
    assert len(READ_AS) == 44


@pytest.mark.parametrize("name", sorted(READ_AS))
def test_no_field_of_the_docs_example_is_lost(name: str) -> None:
    assert lost_in(name) == []
