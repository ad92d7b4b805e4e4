"""Required documents (requirements), for the account or a dossier."""

from __future__ import annotations

import attrs

from ._base import field

__all__ = ["Requirement"]


@attrs.frozen(kw_only=True)
class Requirement:
    """A kind of document the account may require; ``code`` is what dossiers ask for."""

    document_id: int | None = field()
    account_id: int | None = field()
    dossier_id: int | None = field()
    code: str | None = field("documentCode")
    name: str | None = field()
    name_en: str | None = field()
    description_category_fr: str | None = field()
    description_category_en: str | None = field()
    description_fr: str | None = field("description")
    description_en: str | None = field()
    validity_period: int | None = field()
