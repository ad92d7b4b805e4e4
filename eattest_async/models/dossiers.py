"""Dossiers, their indicators, documents and files; what is sent to create or update one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import attrs

from ._base import field, items
from .common import Messages, messages_field

__all__ = [
    "Document",
    "Dossier",
    "DossierUpdate",
    "FileInfo",
    "FormField",
    "Indicator",
    "NewDossier",
]


@attrs.frozen(kw_only=True)
class FormField:
    """A field of a form a third party filled in (v1.3 ``formdata``)."""

    type: str | None = field()
    key: str | None = field()
    title: str | None = field()
    order: int | None = field()
    value: str | None = field()


@attrs.frozen(kw_only=True)
class FileInfo:
    """A file (v1.1 ``FileInformation``) or evidence (v1.3): ``file_id`` downloads it."""

    file_id: int | None = field("id")
    upload_date: dt.datetime | None = field()
    file_uuid: str | None = field(key="fileUUID")
    file_creation: dt.datetime | None = field()
    file_size: int | None = field()
    expiration_date: dt.datetime | None = field()
    metadata: Mapping[str, str] | None = field()
    formdata: tuple[FormField, ...] = items()


@attrs.frozen(kw_only=True)
class Document:
    """A required document of a dossier and the files provided for it (either shape)."""

    document_id: int | None = field()
    document_code: str | None = field()
    name: str | None = field("documentName")
    name_en: str | None = field(key="documentNameEn")
    request_date: dt.datetime | None = field()
    expiration_date: dt.datetime | None = field()
    present: bool | None = field("isPresent")
    files: tuple[FileInfo, ...] = items("evidences", key="listFileInformation")
    messages: Messages = messages_field()


@attrs.frozen(kw_only=True)
class Indicator:
    """A compliance indicator (I001: duty of care); ``state`` True when complete."""

    code: str | None = field("code", key="indicatorCode")
    label: str | None = field()
    state: bool | None = field("isComplete")
    last_change_date: dt.datetime | None = field()


@attrs.frozen(kw_only=True)
class Dossier:
    """The monitoring of one third party by the account: its state, indicators and documents."""

    dossier_id: int | None = field()
    account_id: int | None = field()
    thirdparty_id: int | None = field()
    company_id_type: str | None = field()
    company_id_value: str | None = field()
    thirdparty_code: str | None = field()
    company_country_code: str | None = field()
    siren: str | None = field()
    siret: str | None = field()
    tva: str | None = field()
    monitored: bool | None = field("isMonitored")
    dossier_reference: str | None = field()
    description: str | None = field()
    purchasing_category: str | None = field()
    creation_date: dt.date | None = field()
    starting_date: dt.date | None = field()
    expiration_date: dt.date | None = field()
    stopping_date: dt.date | None = field()
    stopping_reason: str | None = field()
    state: bool | None = field("isComplete")
    state_last_change_date: dt.datetime | None = field()
    indicators: tuple[Indicator, ...] = items()
    documents: tuple[Document, ...] = items()
    messages: Messages = messages_field()

    def indicator(self, code: str = "I001") -> Indicator | None:
        """The indicator with this code, if the dossier carries it."""
        return next((i for i in self.indicators if i.code == code), None)


def _strings(value: object) -> tuple[str, ...]:
    # Never raises: what is not a list of strings (5, b"x") is kept, as one item, for the
    # body's checks to refuse with an InvalidInputError naming the field.
    if value is None:
        return ()
    if isinstance(value, (str, bytes)):
        return (value,)  # type: ignore[return-value]
    try:
        return tuple(value)  # type: ignore[arg-type]
    except TypeError:
        return (value,)  # type: ignore[return-value]


def _strings_or_none(value: object) -> tuple[str, ...] | None:
    return None if value is None else _strings(value)


@attrs.frozen(kw_only=True)
class NewDossier:
    """What ``client.dossiers.create()`` sends. Checked locally before anything leaves.

    ``company_id_type`` is CIT001 (SIRET), CIT002 (EU VAT) or CIT003 (DUNS);
    ``company_id_value`` the identifier; ``dossier_reference`` your own key for it.
    """

    company_id_type: str
    company_id_value: str
    dossier_reference: str
    thirdparty_code: str | None = None
    description: str | None = None
    purchasing_category: str | None = None
    expiration_date: dt.date | str | None = None
    required_documents: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    thirdparty_email: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    user_in_charge: tuple[str, ...] = attrs.field(default=(), converter=_strings)


@attrs.frozen(kw_only=True)
class DossierUpdate:
    """What ``client.dossiers.update()`` sends: only the fields you set."""

    dossier_reference: str | None = None
    description: str | None = None
    purchasing_category: str | None = None
    expiration_date: dt.date | str | None = None
    thirdparty_code: str | None = None
    thirdparty_email: tuple[str, ...] | None = attrs.field(default=None, converter=_strings_or_none)
